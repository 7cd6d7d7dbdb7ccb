"""Tags per item from both modalities.

Text tags: the vocabulary's phrases found in title and description, plus the item's own
catalog tags. Image tags: zero-shot matching of the item image against attribute prompts in
the shared text-image space, so an attribute the text leaves out is still found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from tailorgen.data import Dataset
from tailorgen.encoders import encode_catalog
from tailorgen.encoders.zeroshot import ZeroShotTagger
from tailorgen.interests.vocabulary import TagVocabulary


@dataclass
class ItemTags:
    text: list[str]
    image: list[str]

    @property
    def all(self) -> list[str]:
        """Text tags first, then image tags the text did not have."""
        return self.text + [t for t in self.image if t not in self.text]


class TextTagger:
    """Find vocabulary phrases in text (whole words, longest phrase first so 'navy blue' beats 'blue')."""

    def __init__(self, vocabulary: TagVocabulary):
        self.vocabulary = vocabulary
        phrase_to_tag = {}
        for tag, words in vocabulary.synonyms.items():
            for w in words:
                phrase_to_tag.setdefault(w, tag)
        self._phrase_to_tag = phrase_to_tag
        alternation = "|".join(re.escape(p) for p in sorted(phrase_to_tag, key=len, reverse=True))
        self._pattern = re.compile(rf"(?<![\w-])({alternation})(?![\w-])", re.IGNORECASE)

    def tag_text(self, text: str) -> list[str]:
        found = []
        for m in self._pattern.finditer(text or ""):
            tag = self._phrase_to_tag[m.group(1).lower()]
            if tag not in found:
                found.append(tag)
        return found

    def tag_item(self, row: dict) -> list[str]:
        tags = self.tag_text(f"{row.get('title') or ''}. {row.get('description') or ''}")
        known = {t.lower(): t for t in self.vocabulary.synonyms}
        for t in row.get("tags") or []:
            canonical = known.get(str(t).lower())
            if canonical and canonical not in tags:
                tags.append(canonical)
        return tags


class ImageTagger:
    """Zero-shot image tags for the attributes the prompt vocabulary covers.

    ``attributes`` limits which attributes are read (the second colour, for instance, is read
    too unreliably by the embedded encoder to be worth a tag); ``min_margin`` drops a tag when
    the best value beats the runner-up by less than this cosine margin.
    """

    def __init__(
        self,
        zero_shot: ZeroShotTagger,
        attributes: tuple[str, ...] = ("category", "colour", "pattern"),
        min_margin: float = 0.0,
    ):
        self.zero_shot = zero_shot
        self.attributes = attributes
        self.min_margin = min_margin

    def tag_embeddings(self, image_embeddings: np.ndarray) -> list[list[str]]:
        scores = self.zero_shot.scores_from_embeddings(image_embeddings)
        out: list[list[str]] = [[] for _ in range(len(image_embeddings))]
        for attr in self.attributes:
            s = scores[attr]
            top2 = np.sort(s, axis=1)[:, -2:]
            best = s.argmax(axis=1)
            for i in range(len(s)):
                if top2[i, 1] - top2[i, 0] >= self.min_margin:
                    out[i].append(self.zero_shot.values[attr][best[i]])
        return out


def tag_catalog(
    dataset: Dataset, text_tagger: TextTagger, image_tagger: ImageTagger | None = None, progress: bool = False
) -> dict[str, ItemTags]:
    """Tags for every item; image tags come from the (cached) catalog image embeddings."""
    rows = dataset.items.select(["item_id", "title", "description", "tags"]).to_pylist()
    image_tags: dict[str, list[str]] = {}
    if image_tagger is not None:
        ids, emb = encode_catalog(dataset, image_tagger.zero_shot.image_encoder, progress=progress)
        image_tags = dict(zip(ids, image_tagger.tag_embeddings(emb)))
    return {r["item_id"]: ItemTags(text_tagger.tag_item(r), image_tags.get(r["item_id"], [])) for r in rows}

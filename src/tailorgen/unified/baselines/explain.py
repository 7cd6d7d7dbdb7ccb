"""Explanation (review) baselines: retrieve the user's own nearest review, or fill a template from the item's title.

Neither reads anything a dataset does not publish in its tables: reviews come from training
interactions, attributes from an item's title and tags (never from a simulated shop's truth).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

from tailorgen.encoders import TextEncoder, default_encoder, l2_normalize

__all__ = ["AttributeTemplate", "ExplanationBaseline", "NearestReview"]


@runtime_checkable
class ExplanationBaseline(Protocol):
    """Writes the review a user would give a target item: fit on training reviews and item texts."""

    name: str

    def fit(self, train_reviews: Sequence[tuple[str, str, str]], item_texts: Mapping[str, str]) -> Self:
        """``train_reviews``: (user, item, review) triples; ``item_texts``: item id -> its text."""
        ...

    def explain(self, pairs: Sequence[tuple[str, str]]) -> list[str]:
        """One review per (user, target item) pair."""
        ...


def _clean_reviews(train_reviews: Sequence[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    if isinstance(train_reviews, str):
        raise TypeError("train_reviews is a sequence of (user, item, review) triples")
    out = []
    for row in train_reviews:
        user, item, review = row
        if isinstance(review, str) and review.strip():
            out.append((str(user), str(item), review.strip()))
    return out


class NearestReview:
    """The user's own training review of the item most similar to the target (cosine of item-text
    embeddings, MiniLM by default); a user without a training review gets the most frequent review.

    ``encoder``: any tailorgen ``TextEncoder``; ``item_embeddings``: optional precomputed
    (item ids, (n, dim) matrix) from that encoder, e.g. the catalog embedding cache; items not in it
    are encoded from ``item_texts`` when first needed.
    """

    name = "nearest-review"

    def __init__(
        self,
        encoder: TextEncoder | None = None,
        item_embeddings: tuple[Sequence[str], np.ndarray] | None = None,
        batch_size: int = 64,
    ):
        self.encoder = encoder
        self.item_embeddings = item_embeddings
        self.batch_size = batch_size

    def fit(self, train_reviews: Sequence[tuple[str, str, str]], item_texts: Mapping[str, str]) -> Self:
        reviews = _clean_reviews(train_reviews)
        if not reviews:
            raise ValueError("no training review to learn from")
        self.item_texts = {str(k): str(v) for k, v in item_texts.items()}
        self.by_user_: dict[str, list[tuple[str, str]]] = {}
        for user, item, review in reviews:
            self.by_user_.setdefault(user, []).append((item, review))
        # most_common breaks ties by first occurrence, so the fallback is deterministic.
        self.fallback_ = Counter(review for _, _, review in reviews).most_common(1)[0][0]
        self._emb: dict[str, np.ndarray] = {}
        if self.item_embeddings is not None:
            ids, matrix = self.item_embeddings
            matrix = l2_normalize(np.asarray(matrix, np.float32))
            if len(ids) != len(matrix):
                raise ValueError(f"{len(ids)} embedding ids but {len(matrix)} rows")
            self._emb.update({str(i): row for i, row in zip(ids, matrix)})
        self._embed({item for user_reviews in self.by_user_.values() for item, _ in user_reviews})
        return self

    def _embed(self, items: set[str]) -> None:
        missing = sorted(i for i in items if i not in self._emb and i in self.item_texts)
        if missing:
            if self.encoder is None:
                self.encoder = default_encoder("text")
            vecs = self.encoder.encode([self.item_texts[i] for i in missing], batch_size=self.batch_size)
            self._emb.update(zip(missing, vecs))

    def explain(self, pairs: Sequence[tuple[str, str]]) -> list[str]:
        pairs = [(str(u), str(i)) for u, i in pairs]
        self._embed({i for _, i in pairs})
        out = []
        for user, target in pairs:
            own = self.by_user_.get(user)
            if not own:
                out.append(self.fallback_)
                continue
            embedded = [(item, review) for item, review in own if item in self._emb]
            if target not in self._emb or not embedded:
                out.append(own[-1][1])  # nothing to compare: the user's latest review
                continue
            sims = np.stack([self._emb[item] for item, _ in embedded]) @ self._emb[target]
            out.append(embedded[int(np.argmax(sims))][1])
        return out


_STOPWORDS = frozenset(
    ["a", "an", "and", "the", "in", "of", "with", "for", "on", "to", "by", "from", "at", "as", "or", "its", "it"]
)
_WORD = re.compile(r"[^\W\d_][\w&'-]*")


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text) if w.lower() not in _STOPWORDS]


class AttributeTemplate:
    """A fixed template naming the target item's attributes as its own title and tags state them:
    "Love the {title words}. Really happy with the {other tag words}. Great {brand} quality, would
    buy again." The phrasing follows the shop's reviews; the words come only from published item
    fields, so it works on any dataset (without attributes, from the title alone).

    ``item_attributes``: item id -> a record with any of ``title``, ``tags``, ``category``, ``brand``
    (e.g. ``items.set_index("item_id").to_dict("index")``). Without a record the title is the text's
    first sentence (tailorgen's item text is "title. description").
    """

    name = "template"

    def __init__(self, item_attributes: Mapping[str, Mapping[str, Any]] | None = None):
        self.item_attributes = item_attributes

    def fit(self, train_reviews: Sequence[tuple[str, str, str]], item_texts: Mapping[str, str]) -> Self:
        _clean_reviews(train_reviews)  # nothing to learn; checked for the shared interface only
        self.item_texts = {str(k): str(v) for k, v in item_texts.items()}
        self.records_ = {str(k): dict(v) for k, v in (self.item_attributes or {}).items()}
        return self

    def _review(self, item: str) -> str:
        rec = self.records_.get(item, {})
        title = rec.get("title")
        if not isinstance(title, str) or not title.strip():
            title = self.item_texts.get(item, "").split(". ")[0]
        brand = rec.get("brand") if isinstance(rec.get("brand"), str) else ""
        category = rec.get("category") if isinstance(rec.get("category"), str) else ""
        tags = rec.get("tags")
        tags = [str(t) for t in tags] if tags is not None and not isinstance(tags, str) else []
        skip = {w.lower() for w in _words(brand)}
        named, seen = [], set(skip)
        for w in _words(title):
            if w.lower() not in seen:
                named.append(w.lower())
                seen.add(w.lower())
        extra = []
        for w in (w for t in tags for w in _words(t)):
            if w.lower() not in seen and w.lower() not in {c.lower() for c in _words(category)}:
                extra.append(w.lower())
                seen.add(w.lower())
        sentences = []
        if named:
            sentences.append(f"Love the {' '.join(named)}.")
        elif category:
            sentences.append(f"Love the {category}.")
        if extra:
            sentences.append(f"Really happy with the {' '.join(extra)}.")
        if brand:
            sentences.append(f"Great {brand} quality, would buy again.")
        return " ".join(sentences) or "Does the job."

    def explain(self, pairs: Sequence[tuple[str, str]]) -> list[str]:
        return [self._review(str(item)) for _, item in pairs]

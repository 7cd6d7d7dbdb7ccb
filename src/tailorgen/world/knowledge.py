"""What a dataset knows beyond its tables: the shop-only capabilities behind one small interface.

Generic code (tagging, rewriting, generator training) asks ``knowledge_for(dataset)`` and never
branches on where a dataset came from. A simulated shop answers from its attribute vocabulary and
its hidden ground truth (``truth/``, which only this stage and evaluation read); any other dataset
gets the documented fallback of :class:`DatasetKnowledge`:

- ``attribute_words()``: on a shop, the category, colour, pattern, brand and style tags with every
  synonym its texts use; fallback None: the tag vocabulary comes from the items' own tags and categories.
- ``zero_shot_prompts()``: on a shop, text prompts per visual attribute value; fallback None: images
  get no zero-shot tags, only texts are tagged.
- ``looks``: on a shop, each item's (colour, pattern, secondary colour); fallback None.
- ``render_looks()``: on a shop, the item's garment placed once and drawn in several looks (a
  counterfactual); fallback None: a generator trains on catalog images (the next item's own).

Nothing here is the oracle: a user's utility stays with ``world.Oracle``, for evaluation only.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pyarrow.parquet as pq

from tailorgen.common import hash_tree
from tailorgen.data import Dataset
from tailorgen.world.attributes import (
    BRAND_NAMES,
    CATEGORY_WORDS,
    COLOUR_WORDS,
    PATTERN_WORDS,
    STYLES,
    VISUAL_ATTRIBUTES,
    prompt_vocabulary,
)
from tailorgen.world.render import render_looks
from tailorgen.world.silhouettes import SilhouetteBank

SHOP_FORMAT = "tailorgen-shop"
TRUTH = "truth"  # the shop's hidden ground truth, which only this stage and evaluation read
LOOK = ("colour", "pattern", "secondary_colour")  # what a generator may change about an item
Look = tuple[str, str, str]


def shop_attribute_words() -> dict[str, dict[str, list[str]]]:
    """The shop's attributes, each tag with every synonym the shop's texts use."""
    words = {
        attribute: {tag: list(w) for tag, w in table.items()}
        for attribute, table in (("category", CATEGORY_WORDS), ("colour", COLOUR_WORDS), ("pattern", PATTERN_WORDS))
    }
    words["brand"] = {b: [b] for b in BRAND_NAMES}
    words["style"] = {s: [s] for s in STYLES}
    return words


class DatasetKnowledge:
    """The fallback for any dataset: it knows its tables and nothing more."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def attribute_words(self) -> dict[str, dict[str, list[str]]] | None:
        """attribute -> canonical tag -> the words texts use for it; None: derive tags from the data."""
        return None

    def zero_shot_prompts(self) -> dict[str, dict[str, list[str]]] | None:
        """attribute -> value -> text prompts for zero-shot image tagging; None: no image tags."""
        return None

    @property
    def looks(self) -> dict[str, Look] | None:
        """item_id -> its (colour, pattern, secondary colour); None where the dataset does not know them."""
        return None

    def render_looks(self, item_id: str, looks: list[Look], size: int, rng: np.random.Generator):
        """The item's garment, placed once, in each of ``looks`` (uint8 HxWx3 each); None where impossible."""
        return None

    def visual_attributes(self) -> dict[str, dict[str, str]] | None:
        """item_id -> its true visual attributes (what an image shows), for a held-out evaluation; None if unknown."""
        return None

    def truth_hash(self) -> str | None:
        """Content hash of the hidden ground truth a run learned from (its labels or targets), if any."""
        return None


class ShopKnowledge(DatasetKnowledge):
    """A simulated shop: its vocabulary, and counterfactual renders from its hidden item attributes."""

    def attribute_words(self) -> dict[str, dict[str, list[str]]]:
        return shop_attribute_words()

    def zero_shot_prompts(self) -> dict[str, dict[str, list[str]]]:
        return prompt_vocabulary()

    @cached_property
    def _truth(self) -> dict | None:
        """Silhouette index and look per item, where the truth and the silhouettes of the shop's build are at hand."""
        if not self.dataset.has_ground_truth:
            return None
        table = pq.read_table(
            self.dataset.root / TRUTH / "items.parquet",
            columns=["item_id", "silhouette_source", "silhouette_index", *LOOK],
        ).to_pydict()
        world = self.dataset.manifest["source"]["config"]
        bank = SilhouetteBank(use_fashion_mnist=world["use_fashion_mnist"], seed=world["seed"])
        # The indices name images of the bank the shop was built with; any other bank would draw other shapes.
        if set(table["silhouette_source"]) != {bank.source}:
            return None
        looks = {i: tuple(table[k][r] for k in LOOK) for r, i in enumerate(table["item_id"])}
        silhouette = dict(zip(table["item_id"], table["silhouette_index"]))
        return {"looks": looks, "silhouette": silhouette, "bank": bank.images}

    @property
    def looks(self) -> dict[str, Look] | None:
        return None if self._truth is None else self._truth["looks"]

    def silhouette_index(self, item_id: str) -> int:
        return int(self._truth["silhouette"][item_id])

    @property
    def silhouettes(self) -> np.ndarray:
        """The shop's silhouette bank (N, 28, 28), as ``silhouette_index`` numbers it."""
        return self._truth["bank"]

    def render_looks(self, item_id: str, looks: list[Look], size: int, rng: np.random.Generator):
        if self._truth is None:
            return None
        return render_looks(self.silhouettes[self.silhouette_index(item_id)], looks, size, rng)

    def visual_attributes(self) -> dict[str, dict[str, str]] | None:
        if not self.dataset.has_ground_truth:
            return None
        table = pq.read_table(self.dataset.root / TRUTH / "items.parquet", columns=["item_id", *VISUAL_ATTRIBUTES])
        rows = table.to_pylist()
        return {r["item_id"]: {a: r[a] for a in VISUAL_ATTRIBUTES} for r in rows}

    def truth_hash(self) -> str | None:
        return hash_tree(self.dataset.root / TRUTH) if self.dataset.has_ground_truth else None


def is_shop(dataset: Dataset) -> bool:
    return dataset.manifest.get("source", {}).get("format") == SHOP_FORMAT


def knowledge_for(dataset: Dataset) -> DatasetKnowledge:
    """The shop's knowledge for a simulated shop, the fallback for anything else."""
    return ShopKnowledge(dataset) if is_shop(dataset) else DatasetKnowledge(dataset)

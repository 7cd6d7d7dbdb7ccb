"""The keywords of user-guided image generation: words that describe an item, as a user would type them.

Training requests are drawn from the target item's own words: its ``tags`` where the dataset has
them (a shop's are category, brand, style, colour and pattern), else its category and title words.
Each request keeps a random part of them, in their order, so the model learns to draw what the
keywords ask and to fill what they leave open from the user's history.
"""

from __future__ import annotations

import numpy as np

from tailorgen.data import Dataset


class Keywords:
    def __init__(self, words: dict[str, list[str]], keep_first: float = 0.9, keep_other: float = 0.5):
        """``words[item]``: the item's describing words, the most defining (its category) first."""
        self.words, self.keep_first, self.keep_other = words, keep_first, keep_other

    @classmethod
    def of(cls, dataset: Dataset) -> Keywords:
        columns = [c for c in ("item_id", "tags", "category", "title") if c in dataset.items.column_names]
        words: dict[str, list[str]] = {}
        for row in dataset.items.select(columns).to_pylist():
            tags = [str(t).strip() for t in (row.get("tags") or []) if t and str(t).strip()]
            if not tags:
                tags = [str(row["category"])] if row.get("category") else []
                tags += [w for w in str(row.get("title") or "").split() if w.lower() not in {t.lower() for t in tags}]
            words[row["item_id"]] = tags
        return cls(words)

    def all(self, item: str) -> str:
        return " ".join(self.words.get(item, []))

    def draw(self, item: str, rng: np.random.Generator) -> str:
        """A training request for ``item``: the first word with probability ``keep_first``, each other
        word with probability ``keep_other``, in their order."""
        words = self.words.get(item, [])
        keep = rng.random(len(words)) < np.where(np.arange(len(words)) == 0, self.keep_first, self.keep_other)
        return " ".join(w for w, k in zip(words, keep, strict=True) if k)

"""How the unified model names an item: one token per item, or a content-derived semantic id.

- ``"token"`` (the UniMP reference): item ``k`` of the table is the single token ``<item_k>``.
  An item the model never saw as an answer has a token that no gradient ever pointed at.
- ``"semantic"`` (TIGER's idea): each item's text and image embeddings are quantized residually
  into ``levels`` codes of ``codebook_size`` each (k-means on the residual at each level), plus a
  last code that tells apart the items whose codes collide. Similar items share code prefixes, so
  what the model learns about one transfers to its neighbours, and an item never seen in training
  has a meaningful name. TIGER learns its codes with an RQ-VAE; residual k-means (scikit-learn's
  k-means at each level) is the simpler standard variant and needs no training loop of its own.

Both give every item a tuple of tokens; ``IdTrie`` holds those tuples as token ids so decoding can
only name real items.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tailorgen.common import atomic_write_bytes
from tailorgen.unified.vocab import code_token, item_token

SCHEMES = ("token", "semantic")
ITEM_IDS_FILE = "item_ids.json"


@dataclass
class ItemIdentifiers:
    """The model's item table: ``item_ids[k]`` is named by ``names[k]`` (a tuple of token strings)."""

    scheme: str
    item_ids: list[str]
    codes: np.ndarray | None = None  # (n_items, levels + 1) for "semantic"
    codebook_size: int = 0

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(f"id scheme must be one of {SCHEMES}, not {self.scheme!r}")
        self.position = {item: k for k, item in enumerate(self.item_ids)}
        if len(self.position) != len(self.item_ids):
            twice = next(i for k, i in enumerate(self.item_ids) if self.position[i] != k)
            raise ValueError(f"item_ids: the item table lists {twice!r} twice")

    @classmethod
    def tokens(cls, item_ids: Sequence[str]) -> ItemIdentifiers:
        return cls("token", list(item_ids))

    @classmethod
    def semantic(
        cls, item_ids: Sequence[str], content: np.ndarray, levels: int = 3, codebook_size: int = 32, seed: int = 0
    ) -> ItemIdentifiers:
        """Residual k-means codes of ``content`` (one row per item), then a collision code."""
        codes = residual_kmeans_codes(np.asarray(content, np.float32), levels, codebook_size, seed)
        return cls("semantic", list(item_ids), codes=with_collision_code(codes), codebook_size=codebook_size)

    def name(self, item_id: str) -> tuple[str, ...]:
        k = self.position[item_id]
        if self.scheme == "token":
            return (item_token(k),)
        return tuple(code_token(level, c) for level, c in enumerate(self.codes[k]))

    def all_tokens(self) -> list[str]:
        """Every token an item name can use: what the tokenizer must add."""
        if self.scheme == "token":
            return [item_token(k) for k in range(len(self.item_ids))]
        widths = [self.codebook_size] * (self.codes.shape[1] - 1) + [int(self.codes[:, -1].max()) + 1]
        return [code_token(level, c) for level, width in enumerate(widths) for c in range(width)]

    def save(self, folder: str | Path) -> None:
        payload = {"scheme": self.scheme, "item_ids": self.item_ids, "codebook_size": self.codebook_size}
        if self.codes is not None:
            payload["codes"] = self.codes.tolist()
        atomic_write_bytes(Path(folder) / ITEM_IDS_FILE, json.dumps(payload).encode())

    @classmethod
    def load(cls, folder: str | Path) -> ItemIdentifiers:
        payload = json.loads((Path(folder) / ITEM_IDS_FILE).read_text())
        codes = np.asarray(payload["codes"], np.int64) if "codes" in payload else None
        return cls(payload["scheme"], payload["item_ids"], codes=codes, codebook_size=payload["codebook_size"])


def residual_kmeans_codes(content: np.ndarray, levels: int, codebook_size: int, seed: int) -> np.ndarray:
    """(n, levels) codes: level l clusters what levels < l left unexplained."""
    from sklearn.cluster import KMeans

    residual = content.astype(np.float64)
    codes = np.zeros((len(content), levels), np.int64)
    k = min(codebook_size, len(content))
    for level in range(levels):
        km = KMeans(n_clusters=k, n_init=3, random_state=seed + level).fit(residual)
        codes[:, level] = km.labels_
        residual = residual - km.cluster_centers_[km.labels_]
    return codes


def with_collision_code(codes: np.ndarray) -> np.ndarray:
    """Append a code numbering the items that share all other codes (0, 1, ...), so names are unique."""
    seen: dict[tuple, int] = {}
    last = np.zeros(len(codes), np.int64)
    for i, row in enumerate(map(tuple, codes.tolist())):
        last[i] = seen.get(row, 0)
        seen[row] = last[i] + 1
    return np.concatenate([codes, last[:, None]], axis=1)


class IdTrie:
    """Item names as token-id sequences, for decoding that can only name real items."""

    def __init__(self, names: Sequence[Sequence[int]], items: Sequence[str]):
        self.root: dict = {}
        for seq, item in zip(names, items, strict=True):
            node = self.root
            for t in seq:
                node = node.setdefault(int(t), {})
            node[None] = item  # a leaf: the item this path names
        self.length = max(len(s) for s in names)

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        """Token ids that may follow ``prefix`` (an empty list once a name is complete)."""
        node = self.root
        for t in prefix:
            node = node.get(int(t))
            if node is None:
                return []
        return [t for t in node if t is not None]

    def item(self, seq: Sequence[int]) -> str | None:
        node = self.root
        for t in seq:
            node = node.get(int(t))
            if node is None:
                return None
        return node.get(None)

"""Decoupled retrievers, as in I-AM-G ("Rewrite and Retrieve"): text-to-text and image-to-image.

An item's text neighbours and its image neighbours are found separately, each in its own
embedding space and index, because the two modalities disagree usefully: the text knows brand
and material the picture hides, the picture knows the colour and pattern the text leaves out.
Both retrievers are the same code, an ``EmbeddingRetriever`` over one modality's embeddings;
the subclasses only name the modality, so errors and logs say which one failed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Self

import numpy as np

from tailorgen.retrieval.index import Exclude, VectorIndex, exclusion_sets

Neighbour = tuple[str, float]


class EmbeddingTable(Mapping[str, np.ndarray]):
    """id -> embedding, stored as one (N, D) matrix plus a position map.

    A ``dict`` of one small array per item would cost ~100 bytes of overhead per row and make
    gathering a batch of queries a Python loop; this keeps the matrix whole and gathers by
    fancy indexing, while still reading like a mapping.
    """

    def __init__(self, ids: Sequence[str], vectors: np.ndarray):
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise ValueError(f"need one row per id: got {len(ids)} ids and an array of shape {vectors.shape}")
        self.ids = list(ids)
        self.vectors = vectors
        self._pos = {item_id: i for i, item_id in enumerate(self.ids)}
        if len(self._pos) != len(self.ids):
            dup = next(i for i in self.ids if self.ids.count(i) > 1)
            raise ValueError(f"id {dup!r} appears more than once; ids must be unique")

    def __getitem__(self, item_id: str) -> np.ndarray:
        return self.vectors[self._pos[item_id]]

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._pos

    def rows(self, item_ids: Sequence[str], modality: str = "") -> np.ndarray:
        """The embeddings of ``item_ids`` as a (len, D) matrix; a missing id raises KeyError naming it."""
        try:
            idx = [self._pos[i] for i in item_ids]
        except KeyError as e:
            what = f"{modality} embedding" if modality else "embedding"
            hint = " (items without an image have no image embedding)" if modality == "image" else ""
            raise KeyError(f"item {e.args[0]!r} has no {what}{hint}") from None
        return self.vectors[idx]

    @classmethod
    def from_mapping(cls, embeddings: Mapping[str, Any]) -> EmbeddingTable:
        if isinstance(embeddings, EmbeddingTable):
            return embeddings
        ids = list(embeddings)
        if not ids:
            return cls([], np.zeros((0, 0), np.float32))
        return cls(ids, np.stack([np.asarray(embeddings[i], dtype=np.float32) for i in ids]))


class EmbeddingRetriever:
    """Top-k neighbours of catalog items (or of arbitrary query vectors) in one embedding space.

    ``index`` holds the item pool to search (a ``VectorIndex``, or a ``ShardedIndex``: anything with its
    ``search``, ``dim`` and ``kind``); ``embeddings_by_id`` gives each item's own embedding,
    which is the query when asking for that item's neighbours. They are usually the same items,
    but need not be (for example, query items from a new batch against an older pool).
    """

    modality: str = "embedding"

    def __init__(self, index: VectorIndex, embeddings_by_id: Mapping[str, Any]):
        self.index = index
        self.embeddings = EmbeddingTable.from_mapping(embeddings_by_id)
        if len(self.embeddings) and index.dim is not None and self.embeddings.vectors.shape[1] != index.dim:
            raise ValueError(
                f"{self.modality} embeddings have dimension {self.embeddings.vectors.shape[1]} but the index holds "
                f"{index.dim}-dimensional vectors; they must come from the same encoder"
            )

    @classmethod
    def from_embeddings(cls, ids: Sequence[str], vectors: np.ndarray, kind: str = "flat", **params: Any) -> Self:
        """Index ``vectors`` under ``ids`` (a ``VectorIndex(kind, **params)``) and retrieve among them."""
        table = EmbeddingTable(ids, vectors)
        index = VectorIndex(kind, **params).add(table.ids, table.vectors)
        return cls(index, table)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.index!r})"

    def retrieve(
        self, item_ids: Sequence[str], k: int, exclude: Exclude = None, include_self: bool = False
    ) -> list[list[Neighbour]]:
        """For each item, its ``k`` nearest other items as ``(id, score)``, best first.

        The query is the item's own embedding. The item itself is excluded unless
        ``include_self`` (it would always rank first and tell the caller nothing); ``exclude``
        adds ids to leave out, one set for all items or one set per item (e.g. the user's history).
        """
        if isinstance(item_ids, str):
            raise TypeError("item_ids must be a list of ids; wrap a single id in a list")
        item_ids = list(item_ids)
        queries = self.embeddings.rows(item_ids, self.modality)
        sets = exclusion_sets(exclude, len(item_ids)) or [set() for _ in item_ids]
        if not include_self:
            sets = [s | {item_id} for s, item_id in zip(sets, item_ids)]
        return self.retrieve_vectors(queries, k, exclude=sets)

    def retrieve_vectors(self, queries: np.ndarray, k: int, exclude: Exclude = None) -> list[list[Neighbour]]:
        """The ``k`` nearest items to each query vector, as ``(id, score)`` lists, best first."""
        ids, scores = self.index.search(queries, k, exclude=exclude)
        return [[(i, float(s)) for i, s in zip(row, srow)] for row, srow in zip(ids, scores)]


class TextRetriever(EmbeddingRetriever):
    """Text-to-text retrieval: neighbours by the similarity of item texts (title + description)."""

    modality = "text"


class ImageRetriever(EmbeddingRetriever):
    """Image-to-image retrieval: neighbours by the similarity of item images."""

    modality = "image"

"""Text search baselines: MiniLM dense retrieval and BM25 (``bm25s``) over item texts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, Self, runtime_checkable

import numpy as np

from tailorgen.encoders import TextEncoder, default_encoder, l2_normalize

__all__ = ["BM25Search", "DenseSearch", "SearchBaseline"]


@runtime_checkable
class SearchBaseline(Protocol):
    """Scores every item for each query: fit on item texts, score (n_queries, n_items)."""

    name: str

    def fit(self, item_ids: Sequence[str], item_texts: Sequence[str]) -> Self: ...

    def score(self, queries: Sequence[str]) -> np.ndarray:
        """(len(queries), len(item_ids)) float32, higher is better, columns in the order of fit."""
        ...


def _check_items(item_ids: Sequence[str], item_texts: Sequence[str]) -> None:
    if isinstance(item_ids, str) or isinstance(item_texts, str):
        raise TypeError("item_ids and item_texts are sequences, not one string")
    if len(item_ids) != len(item_texts):
        raise ValueError(f"{len(item_ids)} item ids but {len(item_texts)} item texts")
    if not item_ids:
        raise ValueError("no items to search")


def _check_queries(queries: Sequence[str]) -> list[str]:
    if isinstance(queries, str):
        raise TypeError("queries is a sequence of strings; wrap one query in a list")
    return [str(q) for q in queries]


class DenseSearch:
    """Cosine similarity of the query's text embedding and each item text's (MiniLM by default).

    ``encoder``: any tailorgen ``TextEncoder`` (default: the embedded MiniLM). ``item_embeddings``:
    an (n_items, dim) matrix already computed with that encoder for the texts given to ``fit``
    (e.g. the catalog embedding cache), so ``fit`` does not encode them again.
    """

    name = "dense"

    def __init__(
        self,
        encoder: TextEncoder | None = None,
        item_embeddings: np.ndarray | None = None,
        batch_size: int = 64,
    ):
        self.encoder = encoder
        self.item_embeddings = item_embeddings
        self.batch_size = batch_size

    def _encoder(self) -> TextEncoder:
        if self.encoder is None:
            self.encoder = default_encoder("text")
        return self.encoder

    def fit(self, item_ids: Sequence[str], item_texts: Sequence[str]) -> Self:
        _check_items(item_ids, item_texts)
        self.item_ids = list(item_ids)
        if self.item_embeddings is not None:
            emb = np.asarray(self.item_embeddings, np.float32)
            if emb.ndim != 2 or len(emb) != len(item_ids):
                raise ValueError(f"item_embeddings must be ({len(item_ids)}, dim), not {emb.shape}")
        else:
            emb = self._encoder().encode([str(t) for t in item_texts], batch_size=self.batch_size)
        self.item_matrix_ = l2_normalize(emb)
        return self

    def score(self, queries: Sequence[str]) -> np.ndarray:
        queries = _check_queries(queries)
        if not queries:
            return np.zeros((0, len(self.item_ids)), np.float32)
        q = self._encoder().encode(queries, batch_size=self.batch_size)
        if q.shape[1] != self.item_matrix_.shape[1]:
            raise ValueError(f"query embeddings have {q.shape[1]} dims, item embeddings {self.item_matrix_.shape[1]}")
        return (l2_normalize(q) @ self.item_matrix_.T).astype(np.float32)


class BM25Search:
    """Okapi BM25 (``bm25s``, Lucene variant) over the item texts, English stopwords removed, no stemming."""

    name = "bm25"

    def __init__(self, k1: float = 1.5, b: float = 0.75, stopwords: str | None = "en"):
        self.k1 = k1
        self.b = b
        self.stopwords = stopwords

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(texts, stopwords=self.stopwords, return_ids=False, show_progress=False)

    def fit(self, item_ids: Sequence[str], item_texts: Sequence[str]) -> Self:
        import bm25s

        _check_items(item_ids, item_texts)
        self.item_ids = list(item_ids)
        self.retriever_ = bm25s.BM25(k1=self.k1, b=self.b)
        self.retriever_.index(self._tokenize([str(t) for t in item_texts]), show_progress=False)
        return self

    def score(self, queries: Sequence[str]) -> np.ndarray:
        queries = _check_queries(queries)
        out = np.zeros((len(queries), len(self.item_ids)), np.float32)
        for r, tokens in enumerate(self._tokenize(queries) if queries else []):
            if tokens:  # a query of stopwords only (or no word) matches nothing: a zero row
                out[r] = self.retriever_.get_scores(tokens)
        return out

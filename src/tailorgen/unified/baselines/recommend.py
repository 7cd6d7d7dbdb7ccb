"""Next-item recommenders the UniMP benchmark compares against: popularity, SASRec and GRU4Rec.

Every recommender is fitted on each user's chronologically ordered training items and scores
*any* history afterwards (a test user's history may be their training items plus a validation
item). SASRec and GRU4Rec are cornac's (``cornac.models.SASRec``, ``cornac.models.GRU4Rec``);
this module only turns id sequences into cornac's ``SequentialDataset`` (one session per user)
and back into a score matrix over the item ids given to ``fit``, in their order.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Protocol, Self, runtime_checkable

import numpy as np

__all__ = [
    "GRU4RecRecommender",
    "MostPopular",
    "Recommender",
    "SASRecRecommender",
    "top_k",
]


@runtime_checkable
class Recommender(Protocol):
    """A next-item recommender: fit on training sequences, score the next item for any history."""

    name: str

    def fit(self, train: Mapping[str, Sequence[str]], item_ids: Sequence[str], seed: int = 0) -> Self:
        """``train``: user id -> that user's training items, oldest first; ``item_ids``: the catalog,
        in the order of the columns of ``score``."""
        ...

    def score(self, histories: Sequence[Sequence[str]]) -> np.ndarray:
        """(len(histories), len(item_ids)) float32, higher is better; unknown history items are ignored."""
        ...


def top_k(
    scores: np.ndarray, item_ids: Sequence[str], k: int, exclude: Sequence[Sequence[str]] | None = None
) -> list[list[str]]:
    """The k best item ids of each row of ``scores``, best first, never one of that row's ``exclude`` ids."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    if scores.ndim != 2 or scores.shape[1] != len(item_ids):
        raise ValueError(f"scores must be (n, {len(item_ids)}), not {scores.shape}")
    if exclude is not None:
        if len(exclude) != len(scores):
            raise ValueError(f"exclude has {len(exclude)} rows for {len(scores)} rows of scores")
        col = {item: j for j, item in enumerate(item_ids)}
        for row, items in enumerate(exclude):
            cols = [col[i] for i in items if i in col]
            scores[row, cols] = -np.inf
    k = min(k, scores.shape[1])
    out = []
    for row in scores:
        allowed = np.flatnonzero(np.isfinite(row))
        order = allowed[np.argsort(-row[allowed], kind="stable")][:k]
        out.append([item_ids[j] for j in order])
    return out


def _check_train(train: Mapping[str, Sequence[str]], item_ids: Sequence[str]) -> dict[str, int]:
    if isinstance(item_ids, str):
        raise TypeError("item_ids must be a sequence of ids, not one string")
    col = {item: j for j, item in enumerate(item_ids)}
    if len(col) != len(item_ids):
        raise ValueError("item_ids has duplicates")
    if not col:
        raise ValueError("item_ids is empty")
    if not any(any(i in col for i in items) for items in train.values()):
        raise ValueError("no training interaction names an item of item_ids")
    return col


def _popularity(train: Mapping[str, Sequence[str]], col: Mapping[str, int]) -> np.ndarray:
    counts = np.zeros(len(col), np.float32)
    for items in train.values():
        for i in items:
            if i in col:
                counts[col[i]] += 1
    return counts


class MostPopular:
    """Scores every item by its number of training interactions, whatever the history.

    Written as a count rather than through ``cornac.models.MostPop`` because that is all MostPop
    does, and a count also covers catalog items absent from training (score 0) without building a
    cornac dataset.
    """

    name = "mostpop"

    def fit(self, train: Mapping[str, Sequence[str]], item_ids: Sequence[str], seed: int = 0) -> Self:
        col = _check_train(train, item_ids)
        self.item_ids = list(item_ids)
        self.counts_ = _popularity(train, col)
        return self

    def score(self, histories: Sequence[Sequence[str]]) -> np.ndarray:
        return np.tile(self.counts_, (len(histories), 1)).astype(np.float32)


class _CornacSequential:
    """Shared plumbing for cornac's next-item models.

    The catalog is given to cornac as its item id map up front, so cornac's item index j is column j
    of ``score`` and catalog items absent from training still have a (never trained) row; their
    scores are set to each row's minimum, as nothing was learned about them. A history with no known
    item falls back to training popularity (cornac would return a constant row).
    """

    name: str
    max_len: int

    def _make_model(self, seed: int):
        raise NotImplementedError

    def _score_known(self, histories: list[list[int]]) -> np.ndarray:
        raise NotImplementedError

    def fit(self, train: Mapping[str, Sequence[str]], item_ids: Sequence[str], seed: int = 0) -> Self:
        import torch
        from cornac.data import SequentialDataset

        col = _check_train(train, item_ids)
        self.item_ids = list(item_ids)
        self._col = col
        self.popularity_ = _popularity(train, col)
        self._trained = self.popularity_ > 0
        # USIT rows: (user, session, item, time); one session per user, its items in training order.
        rows = [(u, u, i, t) for u, items in train.items() for t, i in enumerate(i for i in items if i in col)]
        dataset = SequentialDataset.build(
            rows, fmt="USIT", global_iid_map=OrderedDict((i, j) for j, i in enumerate(self.item_ids)), seed=seed
        )
        # cornac seeds its own sampling rng from `seed`; weights and dropout use torch's global rng
        # (GRU4Rec's init also reseeds numpy's global rng with 42), so both are set here and numpy's
        # global state is given back afterwards.
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            torch.manual_seed(seed)
            np.random.seed(seed)
            self.model_ = self._make_model(seed).fit(dataset)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        return self

    def score(self, histories: Sequence[Sequence[str]]) -> np.ndarray:
        if isinstance(histories, str):
            raise TypeError("histories must be a sequence of item-id sequences")
        out = np.empty((len(histories), len(self.item_ids)), np.float32)
        known = [[self._col[i] for i in h if i in self._col] for h in histories]
        rows = [r for r, h in enumerate(known) if h]
        if rows:
            out[rows] = self._score_known([known[r][-self.max_len :] for r in rows])
        for r, h in enumerate(known):
            if not h:
                out[r] = self.popularity_
            else:
                out[r, ~self._trained] = out[r, self._trained].min() if self._trained.any() else 0.0
        return out


class SASRecRecommender(_CornacSequential):
    """SASRec (Kang & McAuley 2018) through ``cornac.models.SASRec``: a causal self-attention encoder
    over the last ``max_len`` items, scoring items by dot product with their embeddings.

    Defaults are sized for a shop of about 2,000 items and 1,200 users of ~20 interactions on a CPU:
    a 64-dim, 2-block model over the last 30 items, sampled softmax (256 shared negatives), 10 epochs.
    Measured on the 300-user demo shop (5,900 interactions): fit takes 23 s on one torch thread. Give
    torch only free cores: two threads on two cores shared with another torch job took 7x longer per epoch.
    """

    name = "sasrec"

    def __init__(
        self,
        embedding_dim: int = 64,
        num_blocks: int = 2,
        num_heads: int = 1,
        n_epochs: int = 10,
        learning_rate: float = 1e-3,
        max_len: int = 30,
        batch_size: int = 128,
        n_sample: int = 256,
        dropout: float = 0.2,
        loss: str = "ce",
        device: str = "cpu",
        verbose: bool = False,
    ):
        self.embedding_dim = embedding_dim
        self.num_blocks = num_blocks
        self.num_heads = num_heads
        self.n_epochs = n_epochs
        self.learning_rate = learning_rate
        self.max_len = max_len
        self.batch_size = batch_size
        self.n_sample = n_sample
        self.dropout = dropout
        self.loss = loss
        self.device = device
        self.verbose = verbose

    def _make_model(self, seed: int):
        from cornac.models import SASRec

        return SASRec(
            embedding_dim=self.embedding_dim,
            num_blocks=self.num_blocks,
            num_heads=self.num_heads,
            n_epochs=self.n_epochs,
            learning_rate=self.learning_rate,
            max_len=self.max_len,
            batch_size=self.batch_size,
            n_sample=self.n_sample,
            dropout=self.dropout,
            loss=self.loss,
            device=self.device,
            verbose=self.verbose,
            seed=seed,
        )

    def _score_known(self, histories: list[list[int]], chunk: int = 512) -> np.ndarray:
        import torch

        # cornac's SASRec.score takes one history at a time; its model's predict() takes a padded
        # batch (the same left padding SASRec.score builds), so whole chunks are scored at once.
        model, pad = self.model_.model, self.model_.pad_idx
        model.eval()
        out = []
        for s in range(0, len(histories), chunk):
            seqs = [[pad] * (self.max_len - len(h)) + h for h in histories[s : s + chunk]]
            with torch.no_grad():
                scores = model.predict(None, torch.tensor(seqs, dtype=torch.long, device=self.device))
            out.append(np.asarray(scores, np.float32).reshape(len(seqs), -1))
        return np.concatenate(out)[:, : len(self.item_ids)]


class GRU4RecRecommender(_CornacSequential):
    """GRU4Rec (Hidasi et al. 2015) through ``cornac.models.GRU4Rec``: a GRU over the history, trained
    session-parallel with sampled cross-entropy; the last ``max_len`` items of a history are read.

    Defaults: one 100-unit layer, Adagrad at cornac's 0.05, 20 epochs (6 s on the 300-user demo shop).
    """

    name = "gru4rec"

    def __init__(
        self,
        hidden: int = 100,
        n_layers: int = 1,
        n_epochs: int = 20,
        learning_rate: float = 0.05,
        max_len: int = 50,
        batch_size: int = 64,
        n_sample: int = 512,
        dropout_hidden: float = 0.0,
        loss: str = "cross-entropy",
        device: str = "cpu",
        verbose: bool = False,
    ):
        self.hidden = hidden
        self.n_layers = n_layers
        self.n_epochs = n_epochs
        self.learning_rate = learning_rate
        self.max_len = max_len
        self.batch_size = batch_size
        self.n_sample = n_sample
        self.dropout_hidden = dropout_hidden
        self.loss = loss
        self.device = device
        self.verbose = verbose

    def _make_model(self, seed: int):
        from cornac.models import GRU4Rec

        return GRU4Rec(
            layers=[self.hidden] * self.n_layers,
            n_epochs=self.n_epochs,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            n_sample=self.n_sample,
            dropout_p_hidden=self.dropout_hidden,
            loss=self.loss,
            device=self.device,
            verbose=self.verbose,
            seed=seed,
        )

    def _score_known(self, histories: list[list[int]]) -> np.ndarray:
        import torch

        with torch.no_grad():
            rows = [np.asarray(self.model_.score(None, h), np.float32) for h in histories]
        return np.stack(rows)[:, : len(self.item_ids)]

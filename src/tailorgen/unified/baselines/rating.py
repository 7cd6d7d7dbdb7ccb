"""Rating-prediction baselines: the user/item-mean (bias) baseline and biased matrix factorization (cornac MF)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, Self, runtime_checkable

import numpy as np

__all__ = ["BiasedMean", "MatrixFactorization", "RatingBaseline"]


@runtime_checkable
class RatingBaseline(Protocol):
    """Predicts a user's rating of an item, within the rating scale seen in fit, for any user and item."""

    name: str

    def fit(self, users: Sequence[str], items: Sequence[str], ratings: Sequence[float], seed: int = 0) -> Self: ...

    def predict(self, users: Sequence[str], items: Sequence[str]) -> np.ndarray:
        """float32 ratings, one per (user, item) pair; unseen users/items fall back to biases or the mean."""
        ...


def _check(users: Sequence[str], items: Sequence[str], ratings: Sequence[float] | None = None) -> None:
    if isinstance(users, str) or isinstance(items, str):
        raise TypeError("users and items are sequences of ids, not one string")
    if len(users) != len(items) or (ratings is not None and len(ratings) != len(users)):
        raise ValueError("users, items and ratings must have the same length")
    if ratings is not None:
        if not len(ratings):
            raise ValueError("no ratings to fit")
        if not np.all(np.isfinite(np.asarray(ratings, np.float64))):
            raise ValueError("ratings must be finite numbers")


class BiasedMean:
    """Global mean + user bias + item bias, each bias shrunk toward 0 (Koren 2010, eq. 2-3).

    A few lines of numpy rather than ``cornac.models.BaselineOnly``: the closed-form shrunk means are
    the textbook "user/item-mean" baseline (BaselineOnly fits the same model by SGD), they need no
    seed, and unseen users/items simply get a zero bias.
    """

    name = "mean"

    def __init__(self, reg_item: float = 10.0, reg_user: float = 5.0):
        self.reg_item = reg_item
        self.reg_user = reg_user

    def fit(self, users: Sequence[str], items: Sequence[str], ratings: Sequence[float], seed: int = 0) -> Self:
        _check(users, items, ratings)
        r = np.asarray(ratings, np.float64)
        self.min_, self.max_ = float(r.min()), float(r.max())
        self.mean_ = float(r.mean())
        item_codes, item_index = np.unique(np.asarray(items, dtype=object), return_inverse=True)
        resid = r - self.mean_
        bi = np.bincount(item_index, resid) / (self.reg_item + np.bincount(item_index))
        resid = resid - bi[item_index]
        user_codes, user_index = np.unique(np.asarray(users, dtype=object), return_inverse=True)
        bu = np.bincount(user_index, resid) / (self.reg_user + np.bincount(user_index))
        self.item_bias_ = dict(zip(item_codes.tolist(), bi.tolist()))
        self.user_bias_ = dict(zip(user_codes.tolist(), bu.tolist()))
        return self

    def predict(self, users: Sequence[str], items: Sequence[str]) -> np.ndarray:
        _check(users, items)
        pred = np.array(
            [self.mean_ + self.user_bias_.get(u, 0.0) + self.item_bias_.get(i, 0.0) for u, i in zip(users, items)],
            np.float64,
        )
        return np.clip(pred, self.min_, self.max_).astype(np.float32)


class MatrixFactorization:
    """Biased matrix factorization by SGD (``cornac.models.MF``, ``use_bias=True``; Koren et al. 2009).

    Seeded, so cornac trains it on one thread. A known user with an unknown item gets the global mean
    plus the user's bias; an unknown user gets the global mean plus the item's bias (cornac's own rule).
    """

    name = "mf"

    def __init__(self, k: int = 16, max_iter: int = 50, learning_rate: float = 0.01, lambda_reg: float = 0.05):
        self.k = k
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.lambda_reg = lambda_reg

    def fit(self, users: Sequence[str], items: Sequence[str], ratings: Sequence[float], seed: int = 0) -> Self:
        from cornac.data import Dataset
        from cornac.models import MF

        _check(users, items, ratings)
        r = np.asarray(ratings, np.float64)
        self.min_, self.max_ = float(r.min()), float(r.max())
        data = [(str(u), str(i), float(x)) for u, i, x in zip(users, items, r)]
        self.model_ = MF(
            k=self.k,
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            lambda_reg=self.lambda_reg,
            use_bias=True,
            seed=seed,
        ).fit(Dataset.from_uir(data, seed=seed))
        return self

    def predict(self, users: Sequence[str], items: Sequence[str]) -> np.ndarray:
        _check(users, items)
        m = self.model_
        pred = np.empty(len(users), np.float64)
        for n, (u, i) in enumerate(zip(users, items)):
            u_idx, i_idx = m.uid_map.get(str(u)), m.iid_map.get(str(i))
            if i_idx is not None:
                pred[n] = m.score(u_idx if u_idx is not None else -1, i_idx)
            else:
                pred[n] = m.global_mean + (m.u_biases[u_idx] if u_idx is not None else 0.0)
        return np.clip(pred, self.min_, self.max_).astype(np.float32)

"""Users of the simulated shop: hidden taste, its slow drift, and the behaviour it drives.

A user's utility for an item at time t is

    utility = sum_a importance[a] * w_a(t)[value_a]  -  price_sensitivity * log(price / base_price)

with w_a(t) moving linearly from the user's past taste w0_a to their future taste w1_a over
the shop's horizon (so what a user wants later differs from what their history shows).
Choices add a popularity bias and Gumbel noise over a random set of items the user was shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tailorgen.world.attributes import PREFERENCE_ATTRIBUTES

# How many values of each attribute a user strongly likes.
N_FAVOURITES = {"category": 3, "colour": 2, "pattern": 2, "secondary_colour": 2, "brand": 2}
# Chance that one favourite of an attribute is replaced between past and future taste.
P_DRIFT = 0.5


@dataclass
class UserTaste:
    """Every user's hidden preferences as arrays (row u belongs to user_ids[u])."""

    user_ids: np.ndarray  # (U,) str
    w0: dict[str, np.ndarray]  # attribute -> (U, n_values) past taste
    w1: dict[str, np.ndarray]  # attribute -> (U, n_values) future taste
    importance: np.ndarray  # (U, n_attributes) in PREFERENCE_ATTRIBUTES order
    price_sensitivity: np.ndarray  # (U,)
    popularity_bias: np.ndarray  # (U,)

    @property
    def attributes(self) -> list[str]:
        return list(PREFERENCE_ATTRIBUTES)

    def weights_at(self, attribute: str, users: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Interpolated taste for ``users`` at drift fraction ``s`` in [0, 1]; shape (len(users), n_values)."""
        s = np.asarray(s, np.float32)[..., None]
        return (1 - s) * self.w0[attribute][users] + s * self.w1[attribute][users]


def sample_taste(n_users: int, rng: np.random.Generator) -> UserTaste:
    width = len(str(n_users - 1))
    user_ids = np.array([f"u{u:0{width}d}" for u in range(n_users)])
    w0, w1 = {}, {}
    for attr, values in PREFERENCE_ATTRIBUTES.items():
        n_values = len(values)
        base = rng.normal(0, 0.25, (n_users, n_values)).astype(np.float32)
        past, future = base.copy(), base.copy()
        k = N_FAVOURITES[attr]
        for u in range(n_users):
            favs = rng.choice(n_values, size=k, replace=False)
            boost = rng.uniform(1.0, 2.0, size=k).astype(np.float32)
            past[u, favs] += boost
            new_favs = favs.copy()
            if rng.random() < P_DRIFT:
                others = np.setdiff1d(np.arange(n_values), favs)
                new_favs[int(rng.integers(k))] = rng.choice(others)
            future[u, new_favs] += boost
        w0[attr], w1[attr] = past, future
    importance = rng.dirichlet(np.full(len(PREFERENCE_ATTRIBUTES), 2.0), size=n_users) * len(PREFERENCE_ATTRIBUTES)
    return UserTaste(
        user_ids=user_ids,
        w0=w0,
        w1=w1,
        importance=importance.astype(np.float32),
        price_sensitivity=rng.uniform(0.0, 1.0, n_users).astype(np.float32),
        popularity_bias=rng.uniform(0.0, 0.8, n_users).astype(np.float32),
    )


def utility_matrix(
    taste: UserTaste,
    users: np.ndarray,
    s: np.ndarray,
    item_values: dict[str, np.ndarray],
    log_price_ratio: np.ndarray | None,
) -> np.ndarray:
    """Utility of items for users, broadcast over rows.

    users, s: shape (R,). item_values[a]: value indices, shape (R, C) (or (C,)).
    Attributes missing from item_values contribute nothing. Returns (R, C).
    """
    users = np.asarray(users)
    total = None
    for j, attr in enumerate(taste.attributes):
        if attr not in item_values:
            continue
        w = taste.weights_at(attr, users, s)  # (R, V)
        idx = np.broadcast_to(item_values[attr], (len(users), np.shape(item_values[attr])[-1]))
        part = taste.importance[users, j][:, None] * np.take_along_axis(w, idx, axis=1)
        total = part if total is None else total + part
    if total is None:
        raise ValueError(f"no known attribute given; expected some of {taste.attributes}")
    if log_price_ratio is not None:
        total = total - taste.price_sensitivity[users][:, None] * log_price_ratio
    return total

"""The oracle: the true utility any user has for any attribute set at any time.

It reads the hidden ground truth that `tailorgen world build` stores under DATASET/truth/,
so it also scores generated images once the judge has read their attributes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from tailorgen.common import read_json
from tailorgen.data import UnknownIdError
from tailorgen.world.attributes import CATEGORY_PRICE, PREFERENCE_ATTRIBUTES
from tailorgen.world.users import UserTaste, utility_matrix


def load_taste(truth_dir: Path) -> UserTaste:
    with np.load(truth_dir / "users.npz", allow_pickle=False) as z:
        return UserTaste(
            user_ids=z["user_ids"],
            w0={a: z[f"w0_{a}"] for a in PREFERENCE_ATTRIBUTES},
            w1={a: z[f"w1_{a}"] for a in PREFERENCE_ATTRIBUTES},
            importance=z["importance"],
            price_sensitivity=z["price_sensitivity"],
            popularity_bias=z["popularity_bias"],
        )


def save_taste(taste: UserTaste, path: Path) -> None:
    arrays = {f"w0_{a}": w for a, w in taste.w0.items()} | {f"w1_{a}": w for a, w in taste.w1.items()}
    np.savez_compressed(
        path,
        user_ids=taste.user_ids,
        importance=taste.importance,
        price_sensitivity=taste.price_sensitivity,
        popularity_bias=taste.popularity_bias,
        **arrays,
    )


class Oracle:
    """``utility(user_id, attributes, t)`` for a shop built by tailorgen.

    ``attributes`` maps any of category, colour, pattern, secondary_colour, brand (and
    optionally price) to values; attributes left out contribute nothing, so compare two
    things on the same attribute set (for images: the four the judge reads).
    ``t`` is a timestamp on the shop's clock (seconds, as in interactions.parquet).
    """

    def __init__(self, taste: UserTaste, horizon: int, item_truth=None):
        self.taste = taste
        self.horizon = int(horizon)
        self.user_index = {u: i for i, u in enumerate(taste.user_ids.tolist())}
        self.value_index = {a: {v: i for i, v in enumerate(vals)} for a, vals in PREFERENCE_ATTRIBUTES.items()}
        self.item_truth = item_truth

    @classmethod
    def load(cls, dataset_dir: str | os.PathLike) -> Oracle:
        truth = Path(dataset_dir) / "truth"
        if not truth.is_dir():
            raise FileNotFoundError(
                f"{dataset_dir} has no ground truth (truth/); "
                "only shops built by `tailorgen world build` have an oracle"
            )
        world = read_json(truth / "world.json")
        return cls(load_taste(truth), world["horizon_seconds"], pq.read_table(truth / "items.parquet"))

    def drift_fraction(self, t: float) -> float:
        return float(np.clip(t / self.horizon, 0.0, 1.0))

    def _encode(self, attributes: dict) -> tuple[dict[str, np.ndarray], float | None]:
        values = {}
        for attr, value in attributes.items():
            if attr in ("price",) or value is None:
                continue
            if attr not in self.value_index:
                raise KeyError(f"unknown attribute '{attr}'; the oracle knows {list(self.value_index)} and price")
            try:
                values[attr] = np.array([[self.value_index[attr][value]]])
            except KeyError:
                raise KeyError(f"unknown {attr} '{value}'; known: {list(self.value_index[attr])}") from None
        log_price = None
        if attributes.get("price") is not None and attributes.get("category") in CATEGORY_PRICE:
            log_price = np.array([[np.log(float(attributes["price"]) / CATEGORY_PRICE[attributes["category"]])]])
        return values, log_price

    def utility(self, user_id: str, attributes: dict, t: float) -> float:
        try:
            u = self.user_index[user_id]
        except KeyError:
            raise UnknownIdError("user", user_id, known=list(self.user_index)) from None
        values, log_price = self._encode(attributes)
        return float(
            utility_matrix(self.taste, np.array([u]), np.array([self.drift_fraction(t)]), values, log_price)[0, 0]
        )

    def utilities(self, user_id: str, rows: list[dict], t: float) -> np.ndarray:
        """``utility`` of many attribute sets (no price) for one user at one time, in one pass: (len(rows),).
        Every row must name the same attributes."""
        if not rows:
            return np.zeros(0)
        u = self.user_index.get(user_id)
        if u is None:
            raise UnknownIdError("user", user_id, known=list(self.user_index))
        attrs = [a for a in rows[0] if a != "price" and rows[0][a] is not None]
        values = {a: np.array([[self.value_index[a][r[a]] for r in rows]]) for a in attrs}
        return utility_matrix(self.taste, np.array([u]), np.array([self.drift_fraction(t)]), values, None)[0]

    def item_attributes(self, item_id: str, visual_only: bool = False) -> dict:
        """The true attributes of a catalog item."""
        if self.item_truth is None:
            raise RuntimeError("this oracle was built without item truth")
        if not hasattr(self, "_item_rows"):
            self._item_rows = {i: r for r, i in enumerate(self.item_truth.column("item_id").to_pylist())}
        row = self.item_truth.slice(self._item_rows[item_id], 1).to_pylist()[0]
        keys = ("category", "colour", "pattern", "secondary_colour")
        keys = keys if visual_only else (*keys, "brand", "price")
        return {k: row[k] for k in keys}

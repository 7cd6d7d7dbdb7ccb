"""User interest profiles: tag counts over the items a user interacted with, optionally recency-weighted."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from tailorgen.common import atomic_write_bytes
from tailorgen.interests.tagging import ItemTags


@dataclass
class InterestProfile:
    user_id: str
    weights: dict[str, float]  # tag -> (weighted) count
    n_items: int

    def top(self, n: int = 5, exclude: Iterable[str] = (), only: Iterable[str] | None = None) -> list[str]:
        """The n heaviest tags (of ``only``, if given); ties broken alphabetically so profiles are reproducible."""
        skip = set(exclude)
        keep = None if only is None else set(only)
        ranked = sorted((-w, t) for t, w in self.weights.items() if t not in skip and (keep is None or t in keep))
        return [t for _, t in ranked[:n]]


def recency_weights(n: int, recency_half_life: float | None) -> list[float]:
    """Weights of a history of ``n`` items, oldest first: with half-life h, an item k steps before
    the latest counts 0.5 ** (k / h), so recent interests weigh more (users drift); all 1 without."""
    if recency_half_life is None:
        return [1.0] * n
    return [0.5 ** ((n - 1 - i) / recency_half_life) for i in range(n)]


MODALITIES = ("all", "text", "image")


def build_profile(
    user_id: str,
    history: list[str],
    item_tags: dict[str, ItemTags],
    recency_half_life: float | None = None,
    modality: str = "all",
) -> InterestProfile:
    """Count tags over ``history`` (oldest first), weighted by :func:`recency_weights`.

    ``modality`` picks which tags count: both modalities' (``"all"``), or only the text's or the
    image's. The image tags name what an item looks like (its primary colour, for one), while
    text also names accents and details, so a user's look is best counted over image tags.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, not {modality!r}")
    weights: dict[str, float] = {}
    for item_id, w in zip(history, recency_weights(len(history), recency_half_life)):
        tags = item_tags.get(item_id)
        if tags is None:
            continue
        for t in getattr(tags, modality):
            weights[t] = weights.get(t, 0.0) + w
    return InterestProfile(user_id, weights, len(history))


def build_profiles(
    histories: dict[str, list[str]], item_tags: dict[str, ItemTags], recency_half_life: float | None = None
) -> dict[str, InterestProfile]:
    return {u: build_profile(u, h, item_tags, recency_half_life) for u, h in histories.items()}


def save_profiles(profiles: dict[str, InterestProfile], path: str | os.PathLike) -> None:
    """One Parquet row per (user, tag), written atomically."""
    rows = [(p.user_id, t, w, p.n_items) for p in profiles.values() for t, w in sorted(p.weights.items())]
    table = pa.table(
        {
            "user_id": [r[0] for r in rows],
            "tag": [r[1] for r in rows],
            "weight": pa.array([r[2] for r in rows], pa.float64()),
            "n_items": pa.array([r[3] for r in rows], pa.int64()),
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def load_profiles(path: str | os.PathLike) -> dict[str, InterestProfile]:
    table = pq.read_table(path).to_pydict()
    profiles: dict[str, InterestProfile] = {}
    for u, t, w, n in zip(table["user_id"], table["tag"], table["weight"], table["n_items"]):
        profiles.setdefault(u, InterestProfile(u, {}, n)).weights[t] = w
    return profiles

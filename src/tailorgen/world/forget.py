"""Forgetting a simulated user: their hidden taste leaves the shop's ground truth."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from tailorgen.world.oracle import load_taste, save_taste

TRUTH = "truth"


def truth_without_user(dataset: Path, user: str) -> bool:
    """Rewrite ``dataset``'s taste file without ``user``'s row (temp file, then rename); False if
    the dataset has no ground truth or the user is not in it."""
    truth = Path(dataset) / TRUTH
    if not (truth / "users.npz").is_file():
        return False
    taste = load_taste(truth)
    keep = np.asarray(taste.user_ids) != user
    if keep.all():
        return False
    kept = replace(
        taste,
        user_ids=taste.user_ids[keep],
        w0={a: w[keep] for a, w in taste.w0.items()},
        w1={a: w[keep] for a, w in taste.w1.items()},
        importance=taste.importance[keep],
        price_sensitivity=taste.price_sensitivity[keep],
        popularity_bias=taste.popularity_bias[keep],
    )
    tmp = truth / ".users.partial.npz"
    save_taste(kept, tmp)
    os.replace(tmp, truth / "users.npz")
    return True

"""Describe a dataset: sizes, sparsity, history lengths, ratings.

The numbers a person checks before training anything: is the dataset as big as expected, how
sparse it is (which decides whether k-core filtering is needed), how long user histories are
(which decides the window length of sequential models) and how ratings are distributed (a
rating model on a dataset that is 80% five-star needs a different baseline).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from tailorgen.data.store import Dataset, count_items_with_image

# Ratings with more distinct values than this are summarised by a histogram instead of value counts.
_MAX_RATING_VALUES = 20


def _histogram_edges(lengths: np.ndarray, bins: int) -> np.ndarray:
    """Integer bin edges over [min, max]: one bin per value when few values, else ``bins`` equal-width bins."""
    lo, hi = int(lengths.min()), int(lengths.max())
    width = max(1, int(np.ceil((hi - lo + 1) / bins)))
    return np.arange(lo, hi + width + 1, width)


def dataset_stats(dataset_dir: str | os.PathLike, bins: int = 12) -> dict[str, Any]:
    """Counts, sparsity, history-length summary and histogram, rating distribution, as a JSON-ready dict."""
    ds = Dataset(dataset_dir)
    items, inter, queries = ds.items, ds.interactions, ds.queries
    n_users = len(pc.unique(inter.column("user_id")))
    n_items = len(items)
    n_inter = len(inter)
    stats: dict[str, Any] = {
        "dataset": str(Path(dataset_dir)),
        "counts": {
            "users": n_users,
            "items": n_items,
            "interactions": n_inter,
            "queries": len(queries) if queries is not None else 0,
            "items_with_image": count_items_with_image(items),
            "items_with_interactions": len(pc.unique(inter.column("item_id"))),
        },
        # Share of the user x item matrix that is empty; 1.0 when there is nothing to fill it.
        "sparsity": 1.0 - n_inter / (n_users * n_items) if n_users and n_items else 1.0,
    }
    if n_inter:
        counts = inter.group_by("user_id").aggregate([([], "count_all")]).column("count_all").to_numpy()
        edges = _histogram_edges(counts, bins)
        hist, _ = np.histogram(counts, bins=edges)
        stats["history_length"] = {
            "min": int(counts.min()),
            "max": int(counts.max()),
            "mean": float(counts.mean()),
            "median": float(np.median(counts)),
            "p90": float(np.percentile(counts, 90)),
            # Bin i holds lengths in [lo, hi] (inclusive; edges are integers).
            "histogram": [
                {"lo": int(lo), "hi": int(hi) - 1, "users": int(n)} for lo, hi, n in zip(edges[:-1], edges[1:], hist)
            ],
        }
        per_item = inter.group_by("item_id").aggregate([([], "count_all")]).column("count_all").to_numpy()
        stats["interactions_per_item"] = {
            "mean": float(per_item.mean()),
            "median": float(np.median(per_item)),
            "max": int(per_item.max()),
        }
    else:
        stats["history_length"] = None
    stats["ratings"] = _rating_stats(inter.column("rating").drop_null().to_numpy())
    return stats


def _rating_stats(ratings: np.ndarray) -> dict[str, Any] | None:
    """Distribution of the finite ratings; NaN or infinite ones (which imports refuse, but a dataset written
    by other code may hold) are counted apart, so no statistic is ever NaN or infinite."""
    ratings = ratings.astype(np.float64)  # a float32 mean of large ratings could overflow to infinity
    finite = np.isfinite(ratings)
    non_finite = int((~finite).sum())
    ratings = ratings[finite]
    if not len(ratings):
        return {"n": 0, "non_finite": non_finite} if non_finite else None
    values, value_counts = np.unique(ratings, return_counts=True)
    dist: dict[str, Any] = {
        "n": int(len(ratings)),
        "mean": float(ratings.mean()),
        "min": float(ratings.min()),
        "max": float(ratings.max()),
    }
    if non_finite:
        dist["non_finite"] = non_finite
    if len(values) <= _MAX_RATING_VALUES:
        dist["counts"] = {f"{v:g}": int(c) for v, c in zip(values, value_counts)}
    else:
        hist, edges = np.histogram(ratings, bins=10)
        dist["histogram"] = [
            {"lo": float(lo), "hi": float(hi), "n": int(n)} for lo, hi, n in zip(edges[:-1], edges[1:], hist)
        ]
    return dist


def _bar(n: int, most: int, width: int) -> str:
    return "█" * (round(width * n / most) if most else 0)


def format_stats(stats: dict[str, Any], width: int = 40) -> str:
    """Human-readable text with bar-chart histograms for the terminal."""
    c = stats["counts"]
    lines = [
        f"dataset       {stats['dataset']}",
        f"users         {c['users']:,}",
        f"items         {c['items']:,}  ({c['items_with_interactions']:,} with interactions, "
        f"{c['items_with_image']:,} with an image)",
        f"interactions  {c['interactions']:,}",
        f"queries       {c['queries']:,}",
        f"sparsity      {stats['sparsity']:.6f}",
    ]
    h = stats["history_length"]
    if h:
        lines.append(
            f"history       mean {h['mean']:.2f}, median {h['median']:g}, min {h['min']}, "
            f"p90 {h['p90']:g}, max {h['max']}"
        )
        lines.append("")
        lines.append("history length (interactions per user)")
        most = max(b["users"] for b in h["histogram"])
        labels = [f"{b['lo']}" if b["lo"] == b["hi"] else f"{b['lo']}-{b['hi']}" for b in h["histogram"]]
        pad = max(len(s) for s in labels)
        for label, b in zip(labels, h["histogram"]):
            lines.append(f"  {label:>{pad}} | {_bar(b['users'], most, width)} {b['users']}")
    r = stats["ratings"]
    if r and r.get("non_finite"):
        lines.append("")
        lines.append(f"ratings: {r['non_finite']:,} are NaN or infinite and left out of every statistic")
    if r and r["n"]:
        lines.append("")
        lines.append(f"ratings ({r['n']:,} rated, mean {r['mean']:.2f})")
        if "counts" in r:
            rows = list(r["counts"].items())
        else:
            rows = [(f"{b['lo']:.2g}-{b['hi']:.2g}", b["n"]) for b in r["histogram"]]
        most = max(n for _, n in rows)
        pad = max(len(k) for k, _ in rows)
        for label, n in rows:
            lines.append(f"  {label:>{pad}} | {_bar(n, most, width)} {n}")
    return "\n".join(lines)


def plot_history_lengths(dataset_dir: str | os.PathLike, out_png: str | os.PathLike) -> Path:
    """Write a PNG histogram of interactions per user (log-scaled count axis when the tail is long)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    ds = Dataset(dataset_dir)
    counts = ds.interactions.group_by("user_id").aggregate([([], "count_all")]).column("count_all").to_numpy()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    try:
        if len(counts):
            ax.hist(counts, bins=_histogram_edges(counts, 30), color="#4c72b0", edgecolor="white")
            if counts.max() > 20 * max(1.0, float(np.median(counts))):
                ax.set_yscale("log")
        ax.set_xlabel("interactions per user")
        ax.set_ylabel("users")
        ax.set_title(f"History lengths: {ds.root.name} ({len(counts):,} users)")
        fig.tight_layout()
        fig.savefig(out)
    finally:
        plt.close(fig)
    return out

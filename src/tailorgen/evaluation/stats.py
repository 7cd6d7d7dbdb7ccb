"""Statistics for evaluation reports: bootstrap confidence intervals, paired tests, per-user breakdowns.

Every number tailorgen reports comes with its uncertainty. The intervals are percentile
bootstraps computed by ``scipy.stats.bootstrap`` with a fixed seed, so a report reproduces
exactly; the paired tests are scipy's Wilcoxon signed-rank test and paired t-test.

Bad input fails loudly: empty arrays, NaNs and infinities raise ``ValueError`` naming the
argument, because a silently dropped NaN is a silently wrong mean.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = [
    "as_finite_array",
    "bootstrap_ci",
    "paired_bootstrap_ci",
    "paired_test",
    "per_user_breakdown",
    "summarize_metric",
]


def as_finite_array(values: Any, name: str = "values", min_size: int = 1) -> np.ndarray:
    """``values`` as a 1-D float64 array; ``ValueError`` if it is empty, not 1-D, or holds NaN/inf.

    ``name`` is used in the error message, so callers pass the argument or metric name.
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: expected numbers, got {type(values).__name__} ({e})") from e
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of per-item values, got shape {arr.shape}")
    if arr.size < min_size:
        raise ValueError(f"{name}: need at least {min_size} value(s), got {arr.size}")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.flatnonzero(bad)
        raise ValueError(
            f"{name}: {bad.sum()} of {arr.size} values are NaN or infinite (first at index {int(where[0])}); "
            "drop or impute them explicitly before computing statistics"
        )
    return arr


def bootstrap_ci(
    values: Any,
    stat: Callable[..., Any] = np.mean,
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Percentile bootstrap confidence interval of ``stat`` over ``values``.

    Returns ``(estimate, low, high)``: ``estimate = stat(values)`` on the full sample and the
    ``ci`` central interval of ``stat`` over ``n_boot`` resamples with replacement
    (``scipy.stats.bootstrap`` with ``method="percentile"`` and ``rng=seed``, so the same
    input always gives the same interval). A constant sample gives a zero-width interval.

    ``stat`` is any function of a 1-D array; one that accepts ``axis=`` (as numpy reductions
    do) is evaluated vectorized. Needs at least two values.
    """
    arr = as_finite_array(values, "bootstrap_ci values", min_size=2)
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    estimate = float(stat(arr))
    if np.all(arr == arr[0]):
        # Every resample equals the sample: the interval is the point (scipy would warn about a degenerate
        # distribution and return the same numbers).
        return estimate, estimate, estimate
    res = sps.bootstrap((arr,), stat, n_resamples=n_boot, confidence_level=ci, method="percentile", rng=seed)
    return estimate, float(res.confidence_interval.low), float(res.confidence_interval.high)


def _paired(a: Any, b: Any, min_size: int) -> tuple[np.ndarray, np.ndarray]:
    x = as_finite_array(a, "a", min_size=min_size)
    y = as_finite_array(b, "b", min_size=min_size)
    if x.shape != y.shape:
        raise ValueError(f"paired arrays differ in length: a has {x.size}, b has {y.size}")
    return x, y


def paired_bootstrap_ci(
    a: Any, b: Any, n_boot: int = 2000, ci: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Bootstrap CI of the mean paired difference ``mean(a - b)``: ``(estimate, low, high)``.

    ``a[i]`` and ``b[i]`` are two measurements of the same unit (user, item, prompt), so the
    units are resampled together; that is the bootstrap of the per-unit differences.
    """
    x, y = _paired(a, b, min_size=2)
    return bootstrap_ci(x - y, np.mean, n_boot=n_boot, ci=ci, seed=seed)


def paired_test(a: Any, b: Any, n_boot: int = 2000, ci: float = 0.95, seed: int = 0) -> dict[str, float | int]:
    """Is ``a`` different from ``b`` on the same units? Two-sided paired tests plus the effect size.

    Returns ``{"n", "mean_diff", "ci_low", "ci_high", "wilcoxon_p", "ttest_p"}`` where
    ``mean_diff = mean(a - b)`` with its bootstrap CI, ``wilcoxon_p`` is the Wilcoxon
    signed-rank test p-value (``scipy.stats.wilcoxon``, no normality assumption) and
    ``ttest_p`` the paired t-test p-value (``scipy.stats.ttest_rel``).

    Degenerate cases scipy answers with NaN get defined values: when every difference is
    zero both p-values are 1.0 (no evidence of a difference); when every difference is the
    same non-zero number the t-test p-value is 0.0 (zero variance, infinite t).
    """
    x, y = _paired(a, b, min_size=2)
    d = x - y
    mean_diff, low, high = bootstrap_ci(d, np.mean, n_boot=n_boot, ci=ci, seed=seed)
    if np.all(d == 0):
        wilcoxon_p, ttest_p = 1.0, 1.0
    else:
        wilcoxon_p = float(sps.wilcoxon(x, y).pvalue)
        ttest_p = 0.0 if np.all(d == d[0]) else float(sps.ttest_rel(x, y).pvalue)
    return {
        "n": int(d.size),
        "mean_diff": mean_diff,
        "ci_low": low,
        "ci_high": high,
        "wilcoxon_p": wilcoxon_p,
        "ttest_p": ttest_p,
    }


def _py(key: Hashable) -> Hashable:
    """numpy scalars -> Python scalars, so the keys survive ``json.dumps``."""
    return key.item() if isinstance(key, np.generic) else key


def per_user_breakdown(values: Any, user_ids: Sequence[Hashable] | np.ndarray) -> dict[Hashable, dict[str, float]]:
    """Per-user mean and count of a per-item metric: ``{user_id: {"mean": m, "count": n}}``.

    ``values[i]`` belongs to ``user_ids[i]``. Users appear in sorted order of their ids.
    """
    arr = as_finite_array(values, "per_user_breakdown values")
    users = np.asarray(user_ids)
    if users.ndim != 1 or users.size != arr.size:
        raise ValueError(f"user_ids must be 1-D with one id per value: got shape {users.shape} for {arr.size} values")
    grouped = pd.Series(arr).groupby(users, sort=True).agg(["mean", "count"])
    return {_py(u): {"mean": float(row["mean"]), "count": int(row["count"])} for u, row in grouped.iterrows()}


def summarize_metric(
    values: Any, n_boot: int = 2000, ci: float = 0.95, seed: int = 0, name: str = "values"
) -> dict[str, float | int | None]:
    """A metric's per-item values as a JSON-ready summary ``{"mean", "ci_low", "ci_high", "n"}``.

    The interval is the percentile bootstrap of the mean (:func:`bootstrap_ci`). With a single
    value there is no interval: ``ci_low`` and ``ci_high`` are ``None`` (JSON ``null``, since
    NaN is not valid JSON).
    """
    arr = as_finite_array(values, name)
    if arr.size == 1:
        return {"mean": float(arr[0]), "ci_low": None, "ci_high": None, "n": 1}
    mean, low, high = bootstrap_ci(arr, np.mean, n_boot=n_boot, ci=ci, seed=seed)
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": int(arr.size)}

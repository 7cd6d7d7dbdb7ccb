"""A benchmark's record: per-unit values of its methods on its tasks, summarized, tested, written.

A benchmark is a set of tasks; each task runs its methods on the same units (users, requests,
queries), so every metric pairs up across methods by unit. The benchmark computes the per-unit
values (with the tested functions of :mod:`tailorgen.evaluation.metrics`) and declares its tasks
and the comparisons it wants tested; :func:`build_record` does the rest the same way for every
benchmark: a bootstrap interval per (task, method, metric) and a paired test per declared
comparison. :func:`write_record` stores the record as ``<benchmark>_benchmark.json``, and
``tailorgen eval`` (:mod:`tailorgen.evaluation.report`) renders any record. Nothing here knows
what the units, the methods or the outputs are; the metrics must be registered in
:mod:`tailorgen.evaluation.registry`, the one place tables read labels from.

The layout (JSON):

- ``benchmark``, ``what``, ``created``, ``dataset``: which benchmark, what it measures, when, on what data;
- ``config``, ``seeds``, ``versions``, ``checkpoints``, ``seconds``: what reproduces it, and how long it took;
- ``tasks[task] = {"methods", "metrics", "primary_metric", "unit", "units"}``: the methods compared, the metrics
  declared (in table order; one that no method has here is shown as n/a), the headline metric, what a unit is
  ("user") and the units' ids, e.g. ``{"user_id": [...], "item_id": [...]}``;
- ``results[task][method][metric] = {"mean", "ci_low", "ci_high", "n"}`` (95% percentile bootstrap);
- ``paired[task][metric]["A vs B"] = {"a", "b", "diff", "ci_low", "ci_high", "p", "ttest_p", "n"}``: ``diff`` is
  mean(A - B) over units with its bootstrap interval, ``p`` the paired Wilcoxon signed-rank test, ``ttest_p`` the
  paired t-test; a comparison of two metrics of the same units (A's ``metric`` against B's) adds ``"b_metric"``;
- ``per_unit[task][method][metric]``: one value per unit, in the order of the task's ``units``; a metric measured
  on fewer units (an expensive one) covers the first ``n`` of them, the same ones for every method;
- ``extras``: whatever else the benchmark measured, by name. Names the report knows: ``not_computed`` (metric ->
  why this run could not compute it), ``image_quality``, ``latency_seconds``, ``examples`` (an image in the run
  folder).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tailorgen.common import read_json, write_json
from tailorgen.common.manifest import environment_versions, now_utc
from tailorgen.evaluation.registry import metric_info
from tailorgen.evaluation.stats import as_finite_array, bootstrap_ci, paired_test, summarize_metric

RECORD_SUFFIX = "_benchmark.json"
# task -> method -> metric -> one value per unit
PerUnit = Mapping[str, Mapping[str, Mapping[str, Any]]]


@dataclass(frozen=True)
class Comparison:
    """Method ``a`` against method ``b`` on ``metric`` (or ``a``'s ``metric`` against ``b``'s ``b_metric``)."""

    a: str
    b: str
    metric: str
    b_metric: str | None = None
    label: str | None = None  # the key in ``paired``; default "A vs B"

    @property
    def key(self) -> str:
        return self.label or f"{self.a} vs {self.b}"


def against(reference: str, others: Iterable[str], metrics: Iterable[str]) -> list[Comparison]:
    """``reference`` vs each of ``others``, on each metric (metric by metric, in the order given)."""
    others = [o for o in others if o != reference]
    return [Comparison(reference, o, m) for m in metrics for o in others]


@dataclass(frozen=True)
class Task:
    """What a task compares: its methods, its metrics (table order), its headline metric, its units."""

    name: str
    methods: tuple[str, ...]
    metrics: tuple[str, ...]
    primary_metric: str
    comparisons: tuple[Comparison, ...] = ()
    units: Mapping[str, Sequence] = field(default_factory=dict)
    unit: str = "user"

    def describe(self) -> dict:
        return {
            "methods": list(self.methods),
            "metrics": list(self.metrics),
            "primary_metric": self.primary_metric,
            "unit": self.unit,
            "units": {k: [str(x) for x in v] for k, v in self.units.items()},
        }


def _rms(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.sqrt(np.mean(np.square(x), axis=axis))


def summarize(values: Any, metric: str, n_boot: int = 2000, seed: int = 0, name: str | None = None) -> dict:
    """``{"mean", "ci_low", "ci_high", "n"}`` of one metric's per-unit values, aggregated as the registry says.

    "mean" metrics are :func:`stats.summarize_metric` exactly; "rms" metrics (RMSE from per-unit
    errors) report the root mean square in ``mean``, with the bootstrap interval of that statistic.
    """
    name = name or metric
    if metric_info(metric).aggregate == "mean":
        return summarize_metric(values, n_boot=n_boot, seed=seed, name=name)
    arr = as_finite_array(values, name)
    if arr.size == 1:
        return {"mean": float(abs(arr[0])), "ci_low": None, "ci_high": None, "n": 1}
    value, low, high = bootstrap_ci(arr, _rms, n_boot=n_boot, seed=seed)
    return {"mean": value, "ci_low": low, "ci_high": high, "n": int(arr.size)}


def summarize_task(values: Mapping[str, Mapping[str, Any]], n_boot: int = 2000, seed: int = 0, task: str = "") -> dict:
    """``results[task]``: every (method, metric) of one task's per-unit values, summarized."""
    return {
        method: {
            metric: summarize(v, metric, n_boot=n_boot, seed=seed, name=f"{task}.{method}.{metric}")
            for metric, v in by_metric.items()
        }
        for method, by_metric in values.items()
    }


def paired_comparisons(
    values: Mapping[str, Mapping[str, Any]], comparisons: Iterable[Comparison], n_boot: int = 2000, seed: int = 0
) -> dict:
    """``paired[task]``: each comparison's paired test on the units both cells cover, grouped by metric."""
    out: dict[str, dict[str, dict]] = {}
    for c in comparisons:
        b_metric = c.b_metric or c.metric
        if "rms" in (metric_info(c.metric).aggregate, metric_info(b_metric).aggregate):
            raise ValueError(
                f"comparison '{c.key}': paired tests compare per-unit means; '{c.metric}' is a root mean "
                "square (compare its per-unit absolute errors under a mean metric such as 'mae')"
            )
        t = paired_test(values[c.a][c.metric], values[c.b][b_metric], n_boot=n_boot, seed=seed)
        out.setdefault(c.metric, {})[c.key] = paired_entry(c, t)
    return out


def paired_entry(c: Comparison, test: Mapping[str, Any]) -> dict:
    """A ``paired`` entry from :func:`stats.paired_test`'s result: ``diff`` and ``p`` (Wilcoxon) by those names."""
    entry = {"a": c.a, "b": c.b} | ({"b_metric": c.b_metric} if c.b_metric else {})
    return (
        entry
        | {k: test[k] for k in ("ci_low", "ci_high", "ttest_p", "n")}
        | {
            "diff": test["mean_diff"],
            "p": test["wilcoxon_p"],
        }
    )


def _check_task(task: Task, values: Mapping[str, Mapping[str, Any]]) -> None:
    """Clear errors for values that do not fit the task: unknown methods or metrics, unpaired lengths."""
    where = f"task '{task.name}'"
    for name in (*task.metrics, task.primary_metric):
        metric_info(name)
    if task.primary_metric not in task.metrics:
        raise ValueError(f"{where}: primary metric '{task.primary_metric}' is not among its metrics {task.metrics}")
    if unknown := set(values) - set(task.methods):
        raise ValueError(f"{where}: values for methods {sorted(unknown)} it does not declare ({task.methods})")
    if missing := [m for m in task.methods if m not in values]:
        raise ValueError(f"{where}: no values for methods {missing}")
    n_units = len(next(iter(task.units.values()))) if task.units else None
    lengths: dict[str, int] = {}
    for method, by_metric in values.items():
        for metric, v in by_metric.items():
            metric_info(metric)  # registered, so every table can show it
            if metric not in task.metrics:
                raise ValueError(f"{where}: method '{method}' has metric '{metric}' the task does not declare")
            n = len(v)
            if lengths.setdefault(metric, n) != n:
                raise ValueError(
                    f"{where}: '{metric}' has {n} values for '{method}' but {lengths[metric]} for another "
                    "method; methods must be measured on the same units to pair up"
                )
            if n_units is not None and n > n_units:
                raise ValueError(f"{where}: '{metric}' of '{method}' has {n} values for {n_units} units")
    for c in task.comparisons:
        for method, metric in ((c.a, c.metric), (c.b, c.b_metric or c.metric)):
            if metric not in values.get(method, {}):
                raise ValueError(f"{where}: comparison '{c.key}' needs '{metric}' of '{method}', which is missing")


def build_record(
    *,
    benchmark: str,
    what: str,
    tasks: Sequence[Task],
    per_unit: PerUnit,
    config: Mapping[str, Any],
    seeds: Sequence[int],
    checkpoints: Mapping[str, str],
    started: float,
    dataset: str | None = None,
    extras: Mapping[str, Any] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    paired_seed: int = 0,
) -> dict:
    """The record of one run in the common layout (module docstring); JSON-ready.

    ``started`` is the run's ``time.perf_counter()`` at its start; ``seconds`` counts to the end of
    the statistics. Intervals are bootstrapped with ``seed``, paired intervals with ``paired_seed``
    (0 unless given: the I-AM-G benchmark always used 0 there, so its published numbers reproduce).
    """
    if not tasks:
        raise ValueError("a benchmark record needs at least one task")
    if unknown := set(per_unit) - {t.name for t in tasks}:
        raise ValueError(f"values for tasks {sorted(unknown)} that are not declared")
    for task in tasks:
        _check_task(task, per_unit.get(task.name, {}))
    results = {t.name: summarize_task(per_unit[t.name], n_boot, seed, t.name) for t in tasks}
    paired = {t.name: paired_comparisons(per_unit[t.name], t.comparisons, n_boot, paired_seed) for t in tasks}
    return {
        "benchmark": benchmark,
        "what": what,
        "created": now_utc(),
        "dataset": dataset,
        "config": dict(config),
        "seeds": [int(s) for s in seeds],
        "tasks": {t.name: t.describe() for t in tasks},
        "results": results,
        "paired": paired,
        "extras": dict(extras or {}),
        "checkpoints": dict(checkpoints),
        "seconds": round(time.perf_counter() - started, 1),
        "versions": environment_versions(),
        "per_unit": {
            task: {m: {k: np.asarray(v, dtype=np.float64).tolist() for k, v in d.items()} for m, d in methods.items()}
            for task, methods in per_unit.items()
        },
    }


def write_record(record: Mapping, out_dir: str | Path) -> Path:
    """Write ``OUT_DIR/<benchmark>_benchmark.json`` (temp file, then rename); returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{record['benchmark']}{RECORD_SUFFIX}"
    write_json(path, record)
    return path


def find_record(run_dir: str | Path) -> Path:
    """The one ``*_benchmark.json`` in a run folder; a clear error if there is none or more than one."""
    run_dir = Path(run_dir)
    found = sorted(run_dir.glob(f"*{RECORD_SUFFIX}"))
    if not found:
        raise FileNotFoundError(
            f"{run_dir} holds no *{RECORD_SUFFIX} (a benchmark's record, e.g. iamg{RECORD_SUFFIX} from "
            f"`tailorgen bench iamg --out {run_dir}`)"
        )
    if len(found) > 1:
        raise ValueError(
            f"{run_dir} holds {len(found)} benchmark records ({[p.name for p in found]}); keep one a folder"
        )
    return found[0]


def read_record(path: str | Path) -> dict:
    """A record written by :func:`write_record` (a file, or the run folder that holds it)."""
    path = Path(path)
    if path.is_dir():
        path = find_record(path)
    record = read_json(path)
    missing = [k for k in ("benchmark", "tasks", "results", "paired") if k not in record]
    if missing:
        raise ValueError(f"{path}: not a benchmark record in the common layout (no {', '.join(missing)})")
    return record

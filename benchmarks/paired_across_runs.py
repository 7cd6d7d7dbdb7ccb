"""Paired tests between methods of benchmark runs, on the same units, pooled over several runs.

A run folder holds one record in the runner's layout (``tailorgen bench ... --out DIR``). Each pair of
runs (the i-th of ``--a`` with the i-th of ``--b``) must list the same units (e.g. the same users of
the same shop); the per-unit differences of all the pairs are pooled into one paired test. Uses:

- one method trained two ways, each in its own run (two RL settings, same shop and seed; runs that
  share a ``--work-dir`` retrain each other's model, so keep the records, or the work dirs, apart):
  ``--a runs/rl-a --b runs/rl-b --method-a gnr --method-b gnr``;
- a comparison inside runs, pooled over shop seeds:
  ``--a runs/s0,runs/s1 --b runs/s0,runs/s1 --method-a gnr --method-b gnr-sft``;
- two metrics of one method: ``--method-a gnr --method-b gnr --metric future_similarity --metric-b past_similarity``.

    python benchmarks/paired_across_runs.py --a A1,A2 --b B1,B2 --task next_item \\
        --method-a gnr --method-b gnr-sft --metric future_utility [--json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tailorgen.evaluation.runner import read_record
from tailorgen.evaluation.stats import paired_test


def record_of(run: Path) -> dict:
    try:
        return read_record(run)
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None


def unit_values(record: dict, run: Path, task: str, method: str, metric: str) -> tuple[list, np.ndarray]:
    try:
        units = record["tasks"][task]["units"]
        values = record["per_unit"][task][method][metric]
    except KeyError as e:
        raise SystemExit(f"error: {run}: no {e} (task {task!r}, method {method!r}, metric {metric!r})") from None
    if not units:
        raise SystemExit(f"error: {run}: task {task!r} lists no units")
    return [tuple(ids) for ids in zip(*units.values(), strict=True)], np.asarray(values, dtype=float)


def pooled(args) -> dict:
    a_runs, b_runs = [Path(p) for p in args.a.split(",")], [Path(p) for p in args.b.split(",")]
    if len(a_runs) != len(b_runs):
        raise SystemExit(f"error: --a names {len(a_runs)} runs and --b {len(b_runs)}; they pair one to one")
    xs, ys = [], []
    for ra, rb in zip(a_runs, b_runs, strict=True):
        ids_a, x = unit_values(record_of(ra), ra, args.task, args.method_a, args.metric)
        ids_b, y = unit_values(record_of(rb), rb, args.task, args.method_b, args.metric_b or args.metric)
        if ids_a != ids_b:
            raise SystemExit(f"error: {ra} and {rb} list different units; a paired test needs the same ones")
        xs.append(x)
        ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    a_names, b_names = (",".join(map(str, runs)) for runs in (a_runs, b_runs))
    label = f"{args.method_a} {args.metric} ({a_names}) vs {args.method_b} {args.metric_b or args.metric} ({b_names})"
    return {"comparison": label, "mean_a": float(x.mean()), "mean_b": float(y.mean())} | paired_test(x, y)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, help="Run folders, comma-separated.")
    p.add_argument("--b", required=True, help="Run folders paired one to one with --a, comma-separated.")
    p.add_argument("--task", default="next_item")
    p.add_argument("--method-a", required=True)
    p.add_argument("--method-b", required=True)
    p.add_argument("--metric", default="future_utility")
    p.add_argument("--metric-b", help="Another metric for --b (e.g. future_similarity against past_similarity).")
    p.add_argument("--json", action="store_true", help="Print the result as JSON.")
    args = p.parse_args()
    r = pooled(args)
    if args.json:
        print(json.dumps(r, indent=2))
        return
    print(r["comparison"])
    print(f"  n {r['n']}: {r['mean_a']:.3f} vs {r['mean_b']:.3f}, difference {r['mean_diff']:+.3f} "
          f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}], Wilcoxon p = {r['wilcoxon_p']:.2g}")  # fmt: skip


if __name__ == "__main__":
    main()

"""Paired comparison of two `tailorgen bench shop` runs that differ only in the generator or its sampling.

    python benchmarks/compare_generators.py runs/bench/shop_new runs/bench/shop_old
    python benchmarks/compare_generators.py runs/bench/unipc8 runs/bench/ddim25 --methods full --metric fidelity

Both runs draw the same (user, item) pairs and the same starting noise per pair on each seed, so
the per-user gains pair up. Per seed and method: new minus old, with the paired bootstrap interval
and Wilcoxon p of `evaluation.stats.paired_test`, then every seed's users pooled. The script
refuses runs whose pairs differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tailorgen.evaluation.bench_iamg import TASK
from tailorgen.evaluation.report import load_run
from tailorgen.evaluation.stats import paired_test


def seeds(run: Path) -> dict[int, Path]:
    return {int(p.name.removeprefix("iamg-seed")): p for p in run.glob("iamg-seed*")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("new", type=Path)
    p.add_argument("old", type=Path)
    p.add_argument("--methods", nargs="+", default=["plain", "rewrite", "retrieval", "full"])
    p.add_argument("--metric", default="gain_intended", help="a per-user metric of the runs (default: the gain)")
    args = p.parse_args()
    new, old = seeds(args.new), seeds(args.old)
    print(f"| seed | method | {args.metric}: {args.new.name} minus {args.old.name} [95% CI] | Wilcoxon p |")
    print("|---|---|---:|---:|")
    pooled: dict[str, tuple[list, list]] = {}
    for seed in sorted(new.keys() & old.keys()):
        a, b = (load_run(r[seed]) for r in (new, old))
        if a["tasks"][TASK]["units"] != b["tasks"][TASK]["units"]:
            sys.exit(f"seed {seed}: the two runs drew different (user, item) pairs; they do not pair up")
        a, b = a["per_unit"][TASK], b["per_unit"][TASK]
        for method in args.methods:
            pooled.setdefault(method, ([], []))
            pooled[method][0].extend(a[method][args.metric])
            pooled[method][1].extend(b[method][args.metric])
            row(seed, method, paired_test(a[method][args.metric], b[method][args.metric]))
    for method, (a, b) in pooled.items():
        row("all, pooled", method, paired_test(a, b))


def row(seed, method: str, t: dict) -> None:
    ci = f"{t['mean_diff']:+.3f} [{t['ci_low']:+.3f}, {t['ci_high']:+.3f}]"
    print(f"| {seed} | {method} | {ci} | {t['wilcoxon_p']:.2g} |")


if __name__ == "__main__":
    main()

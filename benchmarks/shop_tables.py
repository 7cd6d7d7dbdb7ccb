"""Print the markdown tables of docs/benchmarks.md from a `tailorgen bench shop` output folder.

    python benchmarks/shop_tables.py runs/bench/shop

One row per (seed, method) with 95% bootstrap intervals, then one line of paired tests and
latency per seed: the numbers are copied from each seed's iamg_benchmark.json, never recomputed.
Columns, their headers and digits come from the run's declared metrics and
``evaluation.registry`` (what the HTML report shows, in its order).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tailorgen.evaluation.bench_iamg import TASK
from tailorgen.evaluation.registry import metric_info
from tailorgen.evaluation.report import load_run


def _ci(s: dict, digits: int = 2) -> str:
    return f"{s['mean']:.{digits}f} [{s['ci_low']:.{digits}f}, {s['ci_high']:.{digits}f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="the --out folder of `tailorgen bench shop`")
    args = ap.parse_args()
    runs = sorted(args.folder.glob("iamg-seed*/iamg_benchmark.json"), key=lambda p: int(p.parent.name[9:]))
    if not runs:
        raise SystemExit(f"no iamg-seed*/iamg_benchmark.json under {args.folder}")
    records = [load_run(p.parent) for p in runs]
    cols = records[0]["tasks"][TASK]["metrics"]
    header = ("seed", "method", *(metric_info(c).column for c in cols), "KID")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    lines = []
    for d in records:
        seed, task, extras = d["config"]["seed"], d["tasks"][TASK], d["extras"]
        kid = extras["image_quality"]["methods"]
        for m in task["methods"]:
            s = d["results"][TASK][m]
            cells = [_ci(s[c], metric_info(c).digits) if c in s else "n/a" for c in cols]
            k = kid.get(m, {}).get("kid")
            print(f"| {seed} | {m} | " + " | ".join(cells) + f" | {'n/a' if k is None else f'{k:.3f}'} |")
        tests = "; ".join(
            f"{name.replace('full ', '')} {t['diff']:+.3f} [{t['ci_low']:+.2f}, {t['ci_high']:+.2f}] (p={t['p']:.2g})"
            for name, t in d["paired"][TASK][task["primary_metric"]].items()
        )
        lat = extras["latency_seconds"]
        shares = ", ".join(f"{k} {v:.0%}" for k, v in lat["share"].items())
        lines.append(f"- seed {seed}: full {tests}. Latency {lat['total']:.2f} s ({shares}); run {d['seconds']:.0f} s.")
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()

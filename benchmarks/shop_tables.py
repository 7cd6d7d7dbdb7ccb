"""Print the markdown tables of docs/benchmarks.md from a `tailorgen bench shop` output folder.

    python benchmarks/shop_tables.py runs/bench/shop

One row per (seed, method) with 95% bootstrap intervals, then one line of paired tests and
latency per seed: the numbers are copied from each seed's iamg_benchmark.json, never recomputed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tailorgen.evaluation.report import METRICS

DIGITS = {"text_alignment": 1, "history_similarity": 3}


def _ci(s: dict, digits: int = 2) -> str:
    return f"{s['mean']:.{digits}f} [{s['ci_low']:.{digits}f}, {s['ci_high']:.{digits}f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="the --out folder of `tailorgen bench shop`")
    args = ap.parse_args()
    runs = sorted(args.folder.glob("iamg-seed*/iamg_benchmark.json"), key=lambda p: int(p.parent.name[9:]))
    if not runs:
        raise SystemExit(f"no iamg-seed*/iamg_benchmark.json under {args.folder}")
    cols = tuple(METRICS)  # the HTML report's columns, in its order
    header = ("seed", "method", "gain, intended user", "gain, mismatched user", "fidelity", "history similarity")
    header += ("text alignment", "novelty (not a near-copy)", "diversity", "KID")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    lines = []
    for path in runs:
        d = json.loads(path.read_text())
        seed = d["config"]["seed"]
        kid = d["image_quality"]["methods"]
        for m in d["methods"]:
            s = d["summary"][m]
            cells = [_ci(s[c], DIGITS.get(c, 2)) if c in s else "n/a" for c in cols]
            k = kid.get(m, {}).get("kid")
            print(f"| {seed} | {m} | " + " | ".join(cells) + f" | {'n/a' if k is None else f'{k:.3f}'} |")
        tests = "; ".join(
            f"{name.replace('full_', '').replace('_', ' ')} {t['mean_diff']:+.3f}"
            f" [{t['ci_low']:+.2f}, {t['ci_high']:+.2f}] (p={t['wilcoxon_p']:.2g})"
            for name, t in d["paired_tests"].items()
        )
        lat = d["latency_seconds"]
        shares = ", ".join(f"{k} {v:.0%}" for k, v in lat["share"].items())
        lines.append(f"- seed {seed}: full {tests}. Latency {lat['total']:.2f} s ({shares}); run {d['seconds']:.0f} s.")
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()

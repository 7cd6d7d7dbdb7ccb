"""Print the markdown tables of docs/benchmarks.md from `tailorgen bench unimp --out DIR` folders.

    python benchmarks/unimp_tables.py runs/u0 runs/u1

Per task: one row per (seed, method) with 95% bootstrap intervals on the task's headline metrics,
then unimp's paired differences (Wilcoxon p). Numbers are copied from each unimp_benchmark.json,
never recomputed; headers and digits come from ``evaluation.registry``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tailorgen.evaluation.registry import metric_info
from tailorgen.evaluation.report import load_run

COLUMNS = {
    "recommendation": ("ndcg@10", "hr@10", "mrr@10"),
    "recommendation_unseen": ("ndcg@10", "hr@10"),
    "search": ("ndcg@10", "hr@10", "mrr@10"),
    "rating": ("rmse", "mae"),
    "explanation": ("bleu4", "unigram_precision", "rouge_1", "rouge_2", "rouge_l", "factual"),
}
PAIRED = {
    "recommendation": "ndcg@10",
    "recommendation_unseen": "ndcg@10",
    "search": "ndcg@10",
    "rating": "mae",
    "explanation": "rouge_l",
}


def _ci(s: dict | None, digits: int) -> str:
    if s is None:
        return "n/a"
    return f"{s['mean']:.{digits}f} [{s['ci_low']:.{digits}f}, {s['ci_high']:.{digits}f}]"


def task_table(runs: list[dict], task: str) -> list[str]:
    cols = [c for c in COLUMNS[task] if any(c in m for r in runs for m in r["results"].get(task, {}).values())]
    lines = ["| seed | method | " + " | ".join(metric_info(c).column for c in cols) + " |"]
    lines.append("|---" * (len(cols) + 2) + "|")
    for run in runs:
        for method, metrics in run["results"].get(task, {}).items():
            cells = [_ci(metrics.get(c), metric_info(c).digits + 1) for c in cols]
            lines.append(f"| {run['seeds'][0]} | {method} | " + " | ".join(cells) + " |")
    metric = PAIRED[task]
    for run in runs:
        pairs = run["paired"].get(task, {}).get(metric, {})
        text = "; ".join(f"{k.split(' vs ')[1]} {c['diff']:+.3f} (p = {c['p']:.2g})" for k, c in pairs.items())
        lines.append(f"\nSeed {run['seeds'][0]}, unimp minus each on {metric_info(metric).column}: {text}.")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", type=Path, nargs="+", help="--out folders of `tailorgen bench unimp`")
    runs = [load_run(f) for f in ap.parse_args().folders]
    for task in COLUMNS:
        if any(task in r["results"] for r in runs):
            print(f"\n**{task}**\n")
            print("\n".join(task_table(runs, task)))


if __name__ == "__main__":
    main()

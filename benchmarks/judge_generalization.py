"""Does the judge read shops it never saw, and silhouettes it never saw? Accuracy with 95% CIs.

    python benchmarks/judge_generalization.py --judge src/tailorgen/assets/judge runs/work/bench-*-2000-300

Scores the judge on its held-out shop (seed 3002) and on any other shops given (the benchmark
shops: each is built by `tailorgen bench iamg --seed S`), pooled, and split by whether the item's
Fashion-MNIST silhouette also appears in the judge's training shop (seed 3001). Every shop draws
its silhouettes from the same bank, so a judge that memorized silhouettes would read the seen
ones far better than the unseen ones. Intervals: percentile bootstrap of the mean (2,000 draws).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from tailorgen.data import Dataset
from tailorgen.evaluation.judge import ATTRIBUTES, Judge, JudgeTrainConfig
from tailorgen.evaluation.stats import summarize_metric


def fmt(values: list[bool]) -> str:
    s = summarize_metric(np.array(values, float), seed=0)
    return f"{s['mean']:.1%} [{s['ci_low']:.1%}, {s['ci_high']:.1%}] (n={s['n']})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shops", nargs="*", type=Path, help="more shops with ground truth")
    ap.add_argument("--judge", type=Path, default=None, help="judge folder (default: the shipped one)")
    ap.add_argument("--work-dir", type=Path, default=Path("runs/work"))
    args = ap.parse_args()

    cfg = JudgeTrainConfig()
    train_shop = args.work_dir / f"judge-{cfg.train_seed}-{cfg.train_items}"
    held_out = args.work_dir / f"judge-{cfg.eval_seed}-{cfg.eval_items}"
    for shop in (train_shop, held_out):
        if not (shop / "truth" / "items.parquet").exists():
            raise SystemExit(f"{shop} is missing: `tailorgen train judge` builds it")
    trained_on = pq.read_table(train_shop / "truth" / "items.parquet", columns=["silhouette_index"])
    seen = set(trained_on.column(0).to_pylist())
    judge = Judge(args.judge)
    print(f"judge {judge.fingerprint}")
    correct: dict[str, list[bool]] = {a: [] for a in ATTRIBUTES}
    category_by_seen: dict[bool, list[bool]] = {True: [], False: []}
    for shop in (held_out, *args.shops):
        truth = pq.read_table(shop / "truth" / "items.parquet").to_pydict()
        ds = Dataset(shop)
        reads = judge.read([ds.load_image(i) for i in truth["item_id"]])
        hits = {a: [r[a] == v for r, v in zip(reads, truth[a])] for a in ATTRIBUTES}
        print(f"{shop}: " + ", ".join(f"{a} {np.mean(h):.1%}" for a, h in hits.items()))
        for a in ATTRIBUTES:
            correct[a] += hits[a]
        for s, hit in zip(truth["silhouette_index"], hits["category"]):
            category_by_seen[s in seen].append(hit)
    print("pooled:")
    for a in ATTRIBUTES:
        print(f"  {a}: {fmt(correct[a])}")
    print(f"category, silhouette in the judge's training shop: {fmt(category_by_seen[True])}")
    print(f"category, silhouette never seen in training:       {fmt(category_by_seen[False])}")


if __name__ == "__main__":
    main()

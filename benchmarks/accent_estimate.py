"""How well the pixels name the second colour: ``interests.accent`` against the shop's truth.

    python benchmarks/accent_estimate.py --seed 7

On a shop (built or reused as ``tailorgen bench iamg`` does), two numbers:

1. per item: ``main_and_accent``'s accent, named by the nearest palette colour over shades (the
   naming is evaluation only), against the item's true second colour ("none" below the
   single-colour share), for each accent threshold; split by pattern;
2. per user: ``history_accent`` over the whole history and over the last 8 items, against the
   second colour the history shows most, recency-weighted (``generation.train.history_look``:
   what the generator is trained to draw).

Diagnostics only; nothing here trains.
"""

from __future__ import annotations

import argparse
import collections

import numpy as np
import torch

from tailorgen.data import Dataset
from tailorgen.encoders.image import rgb_array
from tailorgen.evaluation.bench_iamg import IAMGBenchConfig, benchmark_shop
from tailorgen.generation.train import history_look
from tailorgen.interests import recency_weights
from tailorgen.interests.accent import ACCENT_TOL, history_accent, main_and_accent
from tailorgen.world import Oracle
from tailorgen.world.attributes import COLOURS, NO_SECONDARY
from tailorgen.world.knowledge import LOOK

NAMES = list(COLOURS)
PALETTE = np.array([COLOURS[c] for c in NAMES], np.float32) / 255


def colour_name(rgb: np.ndarray) -> str:
    """The palette colour some shade of which (the renderer shades by x0.78 to x1.0) is nearest."""
    x = (np.asarray(rgb) + 1) / 2
    distance = [min(np.linalg.norm(x - s * p) for s in np.linspace(0.75, 1.0, 6)) for p in PALETTE]
    return NAMES[int(np.argmin(distance))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=7, help="shop seed (default: the development seed 7)")
    ap.add_argument("--work-dir", default="runs/work")
    ap.add_argument("--min-share", type=float, default=0.1, help="history_accent's single-colour share")
    ap.add_argument("--half-life", type=float, default=10.0, help="recency half-life, in items")
    args = ap.parse_args()

    cfg = IAMGBenchConfig(seed=args.seed)
    shop = benchmark_shop(cfg, args.work_dir)
    ds, oracle = Dataset(shop), Oracle.load(shop)
    ids = list(ds.item_row)
    truth = {i: oracle.item_attributes(i, visual_only=True) for i in ids}
    pixels = torch.from_numpy(np.stack([rgb_array(ds.load_image(i), 32).transpose(2, 0, 1) for i in ids]))
    pixels = pixels.float() / 127.5 - 1

    def named(row: np.ndarray) -> str:
        return colour_name(row[3:6]) if row[6] >= args.min_share else NO_SECONDARY

    print(f"shop seed {args.seed}: {len(ids)} items")
    for tol in (0.35, 0.25, ACCENT_TOL, 0.15):
        rows = main_and_accent(pixels, accent_tol=tol).numpy()
        hits, counts = collections.Counter(), collections.Counter()
        for i, row in zip(ids, rows):
            counts[truth[i]["pattern"]] += 1
            hits[truth[i]["pattern"]] += named(row) == truth[i]["secondary_colour"]
        by_pattern = ", ".join(f"{p} {hits[p] / counts[p]:.0%}" for p in sorted(counts))
        print(f"per item, accent threshold {tol}: {sum(hits.values()) / len(ids):.1%} ({by_pattern})")

    rows = dict(zip(ids, main_and_accent(pixels, accent_tol=ACCENT_TOL).numpy()))
    looks = {i: tuple(t[a] for a in LOOK) for i, t in truth.items()}
    whole, last8 = [], []
    for history in ds.user_histories().values():
        if len(history) < 3:
            continue
        wanted = history_look(looks, history, args.half_life)[2]
        for part, out in ((history, whole), (history[-8:], last8)):
            weights = np.array(recency_weights(len(part), args.half_life))
            est = history_accent(np.stack([rows[i] for i in part]), weights, min_share=args.min_share)
            out.append((colour_name(est[:3]) if est[3] else NO_SECONDARY) == wanted)
    print(
        f"per user ({len(whole)}): history_accent names the history's top second colour for "
        f"{np.mean(whole):.1%} (whole history) and {np.mean(last8):.1%} (last 8 items)"
    )


if __name__ == "__main__":
    main()

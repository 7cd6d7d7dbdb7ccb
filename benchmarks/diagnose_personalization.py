"""Why does (or doesn't) the generator personalize? Three numbers on one shop, from the oracle's truth.

    python benchmarks/diagnose_personalization.py --seed 7 --users 40 --guidance 2 4 7

On the same (user, unseen item) draws as ``tailorgen bench iamg --seed S --users N``:

1. headroom: the oracle-utility gain if the target item took the user's most frequent true look
   (colour, pattern, second colour) from their history, and the best look among their history
   items. If this is near zero, the tags cannot help; if it is large, the generator is the limit.
2. what the generator draws: how often the colour and pattern the judge reads on ``full``
   outputs equal the user's most frequent ones (chance: 1 / number of values), and the gain and
   fidelity of ``plain`` and ``full`` at each guidance scale.
3. the training signal: over every history position >= 3, how often the next item's colour and
   pattern equal the most frequent ones before it.

Diagnostics only: the judge and the oracle measure, nothing here trains.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np

from tailorgen.data import Dataset
from tailorgen.evaluation.bench_iamg import IAMGBenchConfig, _pick, last_interaction_times
from tailorgen.evaluation.judge import Judge
from tailorgen.generation.iamg import IAMGGenerator
from tailorgen.world import Oracle, WorldConfig
from tailorgen.world.build import ensure_shop

LOOK = ("colour", "pattern", "secondary_colour")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=7, help="shop seed (default: the development seed 7)")
    ap.add_argument("--users", type=int, default=40)
    ap.add_argument("--guidance", type=float, nargs="+", default=[2.0])
    ap.add_argument("--generator", default=None, help="generator folder (default: the shipped one)")
    ap.add_argument("--work-dir", default="runs/work")
    args = ap.parse_args()

    cfg = IAMGBenchConfig(seed=args.seed, users=args.users)
    shop = ensure_shop(
        Path(args.work_dir) / f"bench-{cfg.seed}-{cfg.shop_items}-{cfg.shop_users}",
        WorldConfig(n_items=cfg.shop_items, n_users=cfg.shop_users, seed=cfg.seed),
    )
    ds, oracle, judge = Dataset(shop), Oracle.load(shop), Judge()
    truth = {i: oracle.item_attributes(i, visual_only=True) for i in ds.item_row}
    histories = ds.user_histories()
    now = last_interaction_times(ds)

    def top(user: str, attr: str) -> str:
        return collections.Counter(truth[h][attr] for h in histories[user]).most_common(1)[0][0]

    users, targets, mismatched = _pick(cfg, histories, list(truth))
    original = judge.read([ds.load_image(i) for i in targets])
    base = [oracle.utility(u, r, now[u]) for u, r in zip(users, original)]
    top_look = [
        oracle.utility(u, truth[i] | {a: top(u, a) for a in LOOK}, now[u]) - b for u, i, b in zip(users, targets, base)
    ]
    best = [
        max(oracle.utility(u, truth[i] | {a: truth[h][a] for a in LOOK}, now[u]) for h in histories[u]) - b
        for u, i, b in zip(users, targets, base)
    ]
    print(f"shop seed {args.seed}, {len(users)} users")
    print(f"headroom: user's top look {np.mean(top_look):+.2f} (positive for {np.mean(np.array(top_look) > 0):.0%})")
    print(f"          best look among the user's history items {np.mean(best):+.2f}")

    pairs = list(zip(users, targets))
    for g in args.guidance:
        gen = IAMGGenerator(ds, args.generator, guidance_scale=g, num_inference_steps=cfg.steps)
        for method in ("plain", "full"):
            reads = judge.read([x.images[0] for x in gen.generate_batch(pairs, seed=cfg.seed, method=method)])
            gain = np.array([oracle.utility(u, r, now[u]) for u, r in zip(users, reads)]) - base
            kept = np.mean([r["category"] == truth[i]["category"] for r, i in zip(reads, targets)])
            line = f"guidance {g:g} {method:<5}: gain {gain.mean():+.2f}, fidelity {kept:.2f}"
            if method == "full":
                for a in ("colour", "pattern"):
                    line += f", {a} = user's top {np.mean([r[a] == top(u, a) for r, u in zip(reads, users)]):.0%}"
            print(line)

    values = {a: len({t[a] for t in truth.values()}) for a in ("colour", "pattern")}
    signal = {a: [] for a in values}
    for h in histories.values():
        for j in range(3, len(h)):
            for a in signal:
                before = collections.Counter(truth[x][a] for x in h[:j]).most_common(1)[0][0]
                signal[a].append(truth[h[j]][a] == before)
    for a, hits in signal.items():
        print(
            f"training signal: next item's {a} = most frequent before it in {np.mean(hits):.0%}"
            f" (chance {1 / values[a]:.0%})"
        )


if __name__ == "__main__":
    main()

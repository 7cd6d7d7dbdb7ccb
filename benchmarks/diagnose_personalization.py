"""Why does (or doesn't) the generator personalize? Three numbers on one shop, from the oracle's truth.

    python benchmarks/diagnose_personalization.py --seed 7 --users 40 --guidance 2 4 7

On the same (user, unseen item) draws as ``tailorgen bench iamg --seed S --users N``:

1. headroom: the oracle-utility gain if the target item took the user's most frequent true look
   (colour, pattern, second colour) from their history, and the best look among their history
   items. If this is near zero, the tags cannot help; if it is large, the generator is the limit.
2. what the generator draws: per method (``--methods``) and guidance scale, the gain and
   fidelity, and per look attribute the share of outputs whose judged value is the one the
   generator was trained to draw (the history's recency-weighted top, ``history_look``; chance is
   1 / number of values) and that attribute's part of the gain (the utility is a sum over
   attributes). This says which condition carries which attribute: the rewrite names colour and
   pattern, so only the interest tokens can carry the second colour.
3. the training signal: over every history position >= 3, how often the next item's colour and
   pattern equal the most frequent ones before it.

Diagnostics only: the judge and the oracle measure, nothing here trains.
"""

from __future__ import annotations

import argparse
import collections

import numpy as np

from tailorgen.data import Dataset
from tailorgen.evaluation.bench_iamg import IAMGBenchConfig, benchmark_shop, last_interaction_times, pick_users
from tailorgen.evaluation.judge import Judge
from tailorgen.evaluation.metrics import attribute_preservation, personalization_gain
from tailorgen.generation.iamg import METHODS, IAMGGenerator
from tailorgen.generation.train import history_look
from tailorgen.world import Oracle
from tailorgen.world.attributes import NO_SECONDARY
from tailorgen.world.knowledge import LOOK


def _second_colour_breakdown(reads, wanted, histories, truth) -> str:
    """Where each output's judged second colour comes from: the user's top one, another one of the
    user's history, none (a solid garment), or elsewhere. Which of these an output lands in says
    whether the generator reads accents off the history at all, or reads them but not the top one.
    """
    where = collections.Counter()
    for r, w, h in zip(reads, wanted, histories):
        s = r["secondary_colour"]
        if s == w["secondary_colour"]:
            where["the user's top"] += 1
        elif s == NO_SECONDARY:
            where["none"] += 1
        elif any(s == truth[x]["secondary_colour"] for x in h):
            where["another of the history's"] += 1
        else:
            where["elsewhere"] += 1
    order = ("the user's top", "another of the history's", "none", "elsewhere")
    # Solid garments score whenever the user's top is "none"; where it is a colour, only reading the
    # history's accent (or chance) can draw it.
    coloured = [
        r["secondary_colour"] == w["secondary_colour"]
        for r, w in zip(reads, wanted)
        if w["secondary_colour"] != NO_SECONDARY
    ]
    line = ", ".join(f"{k} {where[k] / len(reads):.0%}" for k in order)
    return (
        line + f"; where the top is a colour (n={len(coloured)}): drawn in {np.mean(coloured) if coloured else 0:.0%}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=7, help="shop seed (default: the development seed 7)")
    ap.add_argument("--users", type=int, default=40)
    ap.add_argument("--guidance", type=float, nargs="+", default=[2.0])
    ap.add_argument("--generator", default=None, help="generator folder (default: the shipped one)")
    ap.add_argument("--methods", nargs="+", default=["plain", "full"], choices=list(METHODS))
    ap.add_argument("--work-dir", default="runs/work")
    args = ap.parse_args()

    cfg = IAMGBenchConfig(seed=args.seed, users=args.users)
    shop = benchmark_shop(cfg, args.work_dir)
    ds, oracle, judge = Dataset(shop), Oracle.load(shop), Judge()
    truth = {i: oracle.item_attributes(i, visual_only=True) for i in ds.item_row}
    histories = ds.user_histories()
    now = last_interaction_times(ds)

    def top(user: str, attr: str) -> str:
        return collections.Counter(truth[h][attr] for h in histories[user]).most_common(1)[0][0]

    users, targets, mismatched = pick_users(cfg, histories, list(truth))
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
    n_values = {a: len({t[a] for t in truth.values()}) for a in LOOK}
    print(
        "look attribute: share drawn in the history's top value (chance) / its part of the gain /"
        " share that keeps the item's own value"
    )
    looks = {i: tuple(t[a] for a in LOOK) for i, t in truth.items()}
    for g in args.guidance:
        gen = IAMGGenerator(ds, args.generator, guidance_scale=g, num_inference_steps=cfg.steps)
        half_life = gen.context.settings.recency_half_life
        wanted = [dict(zip(LOOK, history_look(looks, histories[u], half_life))) for u in users]
        for method in args.methods:
            reads = judge.read([x.images[0] for x in gen.generate_batch(pairs, seed=cfg.seed, method=method)])
            gain = personalization_gain([oracle.utility(u, r, now[u]) for u, r in zip(users, reads)], base)
            kept = attribute_preservation(reads, [truth[i] for i in targets], ("category",))
            line = f"guidance {g:g} {method:<9}: gain {gain.mean():+.2f}, fidelity {kept:.2f}"
            for a in LOOK:
                hit = np.mean([r[a] == w[a] for r, w in zip(reads, wanted)])
                part = np.mean(
                    [
                        oracle.utility(u, {a: r[a]}, now[u]) - oracle.utility(u, {a: o[a]}, now[u])
                        for u, r, o in zip(users, reads, original)
                    ]
                )
                # Kept from the item itself (its pixels are the UNet's input) rather than taken from the user.
                own = np.mean([r[a] == truth[i][a] for r, i in zip(reads, targets)])
                line += f" | {a} {hit:.0%} ({1 / n_values[a]:.0%}) {part:+.2f} own {own:.0%}"
            print(line)
            print(
                f"  {method} second colour: "
                + _second_colour_breakdown(reads, wanted, [histories[u] for u in users], truth)
            )

    signal = {a: [] for a in ("colour", "pattern")}
    for h in histories.values():
        for j in range(3, len(h)):
            for a in signal:
                before = collections.Counter(truth[x][a] for x in h[:j]).most_common(1)[0][0]
                signal[a].append(truth[h[j]][a] == before)
    for a, hits in signal.items():
        print(
            f"training signal: next item's {a} = most frequent before it in {np.mean(hits):.0%}"
            f" (chance {1 / n_values[a]:.0%})"
        )


if __name__ == "__main__":
    main()

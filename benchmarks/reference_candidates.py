"""How often does a candidate reference image show the look the generator's target takes?

    python benchmarks/reference_candidates.py

For random (user, history position, catalog item) requests of the generator's training shop
(seed 5001, sampled by benchmarks/probe_conditions.py's ``training_shop_requests``), the label is the look the history
before that position shows most (recency-weighted, ``generation.train.history_look``: the
training target's colour, pattern and second colour). Printed per candidate: the share of
requests in which it shows the label's value of each attribute. The candidates: the top image
neighbour from the catalog, the user's most recent item, the reference ``IAMGSettings.
reference_image`` picks (``PersonalizationContext.reference_item``), and a ceiling that picks the
best of the last 8 items with the truth. Diagnostics only: the truth labels requests here.
"""

from __future__ import annotations

import argparse

import numpy as np

from probe_conditions import training_shop_requests  # run as a script: benchmarks/ is on sys.path
from tailorgen.generation.context import IAMGSettings
from tailorgen.generation.train import LOOK, GeneratorTrainConfig, history_look


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work-dir", default="runs/work")
    args = ap.parse_args()

    ctx, truth, examples = training_shop_requests(
        args.work_dir, args.examples, args.seed, IAMGSettings(reference_image=True)
    )
    histories = [h for *_, h in examples]
    labels = [history_look(truth, h, ctx.settings.recency_half_life) for h in histories]
    requests = ctx.requests(
        [(u, x) for u, x, _ in examples], histories, exclude=[set(ctx.histories[u]) for u, *_ in examples]
    )
    window = ctx.settings.reference_window

    def best(history, label):
        return max(history[-window:], key=lambda i: sum(truth[i][a] == v for a, v in zip(LOOK, label)))

    candidates = {
        "top catalog image neighbour": [r.image_neighbours[0][0] for r in requests],
        "the user's most recent item": [h[-1] for h in histories],
        f"the reference (most typical of the last {window})": [r.reference_item for r in requests],
        f"ceiling: best of the last {window}, chosen with the truth": [best(h, v) for h, v in zip(histories, labels)],
    }
    print(f"{len(requests)} requests of shop seed {GeneratorTrainConfig().train_seed}; share showing the label's value")
    for name, picks in candidates.items():
        hit = np.array([[truth[p][a] == v for a, v in zip(LOOK, label)] for p, label in zip(picks, labels)])
        print(
            f"{name}: colour {hit[:, 0].mean():.2f}, pattern {hit[:, 1].mean():.2f}, second colour"
            f" {hit[:, 2].mean():.2f}, pattern and second colour {(hit[:, 1] & hit[:, 2]).mean():.2f}"
        )


if __name__ == "__main__":
    main()

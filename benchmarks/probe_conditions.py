"""What do the generator's conditions know about the user's look? Linear probes on a shop.

    python benchmarks/probe_conditions.py --mix 0.5 0.2 0

For random (user, history position, catalog item) examples of the generator's training shop
(seed 5001), the label is the colour the history before that position shows most
(recency-weighted, ``generation.train.history_look``: the training target's colour). A logistic
regression is fitted on 80% of the examples and scored on the rest, reading the label off:

- the mean image embedding of the history itself (the ceiling: everything the history shows),
- the rewritten text's sentence embedding and the mean of the K text neighbours, with the
  paper's plain ranking of user tags and with the user's look first
  (``IAMGSettings.look_attributes``; the share of requests whose user tags name the label is
  printed too),
- the mean of the K image neighbours for each image-query mix
  (``IAMGSettings.image_query_mix``: weight of the item's own image in the query).

If a probe is near chance, the generator cannot learn the user's colour from that condition,
however long it trains. Also printed: the share of image neighbours whose true colour is the
label. Diagnostics only: the oracle's truth labels examples, nothing here trains the generator.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.linear_model import LogisticRegression

from tailorgen.data import Dataset
from tailorgen.generation.context import IAMGSettings, PersonalizationContext
from tailorgen.generation.train import GeneratorTrainConfig, ensure_training_shop, history_look
from tailorgen.world import Oracle


def probe(x: np.ndarray, y: np.ndarray, split: int) -> float:
    clf = LogisticRegression(max_iter=2000, C=10).fit(x[:split], y[:split])
    return float(clf.score(x[split:], y[split:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=3000)
    ap.add_argument("--mix", type=float, nargs="+", default=[0.5, 0.2, 0.0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work-dir", default="runs/work")
    args = ap.parse_args()

    cfg = GeneratorTrainConfig()
    shop = ensure_training_shop(cfg, args.work_dir)
    ds, oracle = Dataset(shop), Oracle.load(shop)
    truth = {i: oracle.item_attributes(i, visual_only=True) for i in ds.item_row}
    ctx = PersonalizationContext(ds)
    half_life = ctx.settings.recency_half_life
    rng = np.random.default_rng(args.seed)
    items = list(truth)
    positions = [(u, j) for u, h in ctx.histories.items() for j in range(cfg.min_history, len(h))]
    chosen = rng.choice(len(positions), size=min(args.examples, len(positions)), replace=False)
    examples = []
    for k in chosen:
        u, j = positions[k]
        examples.append((u, items[int(rng.integers(len(items)))], ctx.histories[u][:j]))
    pairs, histories = [(u, x) for u, x, _ in examples], [h for *_, h in examples]
    exclude = [set(ctx.histories[u]) for u, *_ in examples]
    y = np.array([history_look(truth, h, half_life)[0] for h in histories])
    split = int(0.8 * len(y))
    image_emb, text_emb = ctx.image_retriever.embeddings, ctx.text_retriever.embeddings
    values, counts = np.unique(y, return_counts=True)
    own = np.mean([truth[x]["colour"] == c for (_, x), c in zip(pairs, y)])
    top = counts.max() / len(y)
    print(f"{len(y)} examples of shop seed {cfg.train_seed}; {len(values)} colours, the most common {top:.2f}")
    print(f"the item's own colour is the label in {own:.2f}")
    ceiling = probe(np.stack([image_emb.rows(h).mean(0) for h in histories]), y, split)
    print(f"history mean image embedding (ceiling): {ceiling:.2f}")

    patterns = [history_look(truth, h, half_life)[1] for h in histories]
    for look in ((), IAMGSettings().look_attributes):
        ctx.settings.look_attributes = look
        requests = ctx.requests(pairs, histories, exclude=exclude)
        colour_named = np.mean([c in r.user_tags for r, c in zip(requests, y)])
        pattern_named = np.mean([p in r.user_tags for r, p in zip(requests, patterns)])
        text = ctx.text_encoder.encode([r.rewrite.text for r in requests])
        text_nb = np.stack([text_emb.rows([i for i, _ in r.text_neighbours]).mean(0) for r in requests])
        print(
            f"rewrite with look_attributes={look}: the user tags name the label's colour in {colour_named:.2f}"
            f" and the history's pattern in {pattern_named:.2f}; probes: rewritten text"
            f" {probe(text, y, split):.2f}, text neighbours {probe(text_nb, y, split):.2f}"
        )

    for mix in args.mix:
        ctx.settings.image_query_mix = mix
        requests = ctx.requests(pairs, histories, exclude=exclude)
        image_nb = np.stack([image_emb.rows([i for i, _ in r.image_neighbours]).mean(0) for r in requests])
        share = np.mean([[truth[i]["colour"] == c for i, _ in r.image_neighbours] for r, c in zip(requests, y)])
        acc = probe(image_nb, y, split)
        print(f"image neighbours, query mix {mix:g}: probe {acc:.2f}, neighbours of the label's colour {share:.2f}")


if __name__ == "__main__":
    main()

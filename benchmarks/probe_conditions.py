"""What do the generator's conditions know about the user's look? Linear probes on a shop.

    python benchmarks/probe_conditions.py --mix 0.5 0.2 0

For random (user, history position, catalog item) examples of the generator's training shop
(seed 5001), the labels are the look the history before that position shows most
(recency-weighted, ``generation.train.history_look``: the training target's colour, pattern and
second colour). A logistic regression is fitted on 80% of the examples and scored on the rest,
reading each label off:

- the recency-weighted mean image embedding of the history itself (the ceiling of what the
  frozen image encoder passes on),
- the rewritten text's sentence embedding and the mean of the K text neighbours (colour only),
  with the paper's plain ranking of user tags and with the user's look first
  (``IAMGSettings.look_attributes``; the share of requests whose user tags name the label is
  printed too),
- the mean of the K image neighbours for each image-query mix
  (``IAMGSettings.image_query_mix``: weight of the item's own image in the query).

With ``--generator DIR`` (a generator trained with history images), also what its conditioner
makes of them: the history CNN's features (mean over the user's last images) and the interest
tokens (mean of the fusion's output).

If a probe is near chance, the generator cannot learn that attribute from that condition,
however long it trains. Also printed: the share of image neighbours that show the label, and how
often the most frequent value over the last ``history_images`` items (the pixels the interest
attention reads) is the label. Diagnostics only: the oracle's truth labels examples, nothing
here trains the generator.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses

import numpy as np
from sklearn.linear_model import LogisticRegression

from tailorgen.data import Dataset
from tailorgen.generation.context import IAMGSettings, PersonalizationContext
from tailorgen.generation.train import GeneratorTrainConfig, history_look
from tailorgen.generation.train.dataset import generator_shop
from tailorgen.interests import recency_weights
from tailorgen.world import Oracle
from tailorgen.world.knowledge import LOOK


def probe(x: np.ndarray, y: np.ndarray, split: int) -> float:
    clf = LogisticRegression(max_iter=2000, C=10).fit(x[:split], y[:split])
    return float(clf.score(x[split:], y[split:]))


def training_shop_requests(
    work_dir: str, n: int, seed: int, settings: IAMGSettings | None = None
) -> tuple[PersonalizationContext, dict, list[tuple[str, str, list[str]]]]:
    """The training shop's context, its item truth and ``n`` random (user, catalog item, history before a position)."""
    cfg = GeneratorTrainConfig()
    ds = Dataset(generator_shop(cfg, work_dir).path)
    oracle = Oracle.load(ds.root)
    truth = {i: oracle.item_attributes(i, visual_only=True) for i in ds.item_row}
    ctx = PersonalizationContext(ds, settings)
    rng = np.random.default_rng(seed)
    items = list(truth)
    positions = [(u, j) for u, h in ctx.histories.items() for j in range(cfg.min_history, len(h))]
    chosen = rng.choice(len(positions), size=min(n, len(positions)), replace=False)
    examples = []
    for k in chosen:
        u, j = positions[k]
        examples.append((u, items[int(rng.integers(len(items)))], ctx.histories[u][:j]))
    return ctx, truth, examples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=3000)
    ap.add_argument("--mix", type=float, nargs="*", default=[0.5, 0.2, 0.0])
    ap.add_argument("--generator", default=None, help="also probe this generator's history CNN and interest tokens")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work-dir", default="runs/work")
    args = ap.parse_args()

    cfg = GeneratorTrainConfig()
    ctx, truth, examples = training_shop_requests(args.work_dir, args.examples, args.seed)
    half_life = ctx.settings.recency_half_life
    pairs, histories = [(u, x) for u, x, _ in examples], [h for *_, h in examples]
    exclude = [set(ctx.histories[u]) for u, *_ in examples]
    looks = {i: tuple(t[a] for a in LOOK) for i, t in truth.items()}
    labels = dict(zip(LOOK, np.array([history_look(looks, h, half_life) for h in histories]).T))
    y = labels["colour"]
    split = int(0.8 * len(y))
    image_emb, text_emb = ctx.image_retriever.embeddings, ctx.text_retriever.embeddings
    print(f"{len(y)} examples of shop seed {cfg.train_seed}")
    weights = [np.array(recency_weights(len(h), half_life)) for h in histories]
    history_mean = np.stack([(w[:, None] * image_emb.rows(h)).sum(0) / w.sum() for w, h in zip(weights, histories)])
    recent = 8  # the shipped generator's history images
    for attr, label in labels.items():
        values, counts = np.unique(label, return_counts=True)
        own = np.mean([truth[x][attr] == v for (_, x), v in zip(pairs, label)])
        last = np.mean(
            [
                collections.Counter(truth[i][attr] for i in h[-recent:]).most_common(1)[0][0] == v
                for h, v in zip(histories, label)
            ]
        )
        print(
            f"{attr}: {len(values)} values, the most common {counts.max() / len(label):.2f}; the item's own"
            f" {own:.2f}; most frequent over the last {recent} history items {last:.2f};"
            f" probe on the history's mean image embedding (ceiling) {probe(history_mean, label, split):.2f}"
        )

    patterns = labels["pattern"]
    for look in ((), IAMGSettings().look_attributes):
        ctx.settings.look_attributes = look
        requests = ctx.requests(pairs, histories, exclude=exclude)
        colour_named = np.mean([c in r.user_tags for r, c in zip(requests, y)])
        pattern_named = np.mean([p in r.user_tags for r, p in zip(requests, patterns)])
        text = ctx.text_encoder.encode([r.rewrite.text for r in requests])
        text_nb = np.stack([text_emb.rows([i for i, _ in r.text_neighbours]).mean(0) for r in requests])
        print(
            f"rewrite with look_attributes={look}: the user tags name the label's colour in {colour_named:.2f}"
            f" and the history's pattern in {pattern_named:.2f}; colour probes: rewritten text"
            f" {probe(text, y, split):.2f}, text neighbours {probe(text_nb, y, split):.2f}"
        )

    for mix in args.mix:
        ctx.settings.image_query_mix = mix
        requests = ctx.requests(pairs, histories, exclude=exclude)
        image_nb = np.stack([image_emb.rows([i for i, _ in r.image_neighbours]).mean(0) for r in requests])
        line = f"image neighbours, query mix {mix:g}:"
        for attr, label in labels.items():
            share = np.mean([[truth[i][attr] == v for i, _ in r.image_neighbours] for r, v in zip(requests, label)])
            line += f" {attr} probe {probe(image_nb, label, split):.2f} (neighbours showing it {share:.2f})"
        print(line)

    if args.generator:
        probe_generator(args.generator, ctx, pairs, histories, exclude, labels, split)


def probe_generator(path, ctx, pairs, histories, exclude, labels, split) -> None:
    """Probe what a generator's conditioner makes of the history images: CNN features and interest tokens."""
    import torch

    from tailorgen.generation import PersonalizedImagePipeline

    conditioner = PersonalizedImagePipeline.from_pretrained(path).conditioner.eval()
    n_images = conditioner.config.history_images
    if not n_images:
        raise SystemExit(f"{path}: this generator reads no history images")
    ctx.settings.image_query_mix = IAMGSettings().image_query_mix
    ctx.spec = dataclasses.replace(ctx.spec, history_images=n_images)
    features, interest, histograms = [], [], []
    with torch.inference_mode():
        for s in range(0, len(pairs), 256):
            requests = ctx.requests(pairs[s : s + 256], histories[s : s + 256], exclude=exclude[s : s + 256])
            c = ctx.conditions(requests)
            b, h = c.history_pixels.shape[:2]
            cnn = conditioner.history_encoder(c.history_pixels.flatten(0, 1)).view(b, h, -1)
            real = c.history_mask.float()[..., None]
            features.append(((cnn * real).sum(1) / real.sum(1).clamp_min(1)).numpy())
            cells = colour_histogram(c.history_pixels.flatten(0, 1), 4).view(b, h, -1)
            histograms.append(((cells * real).sum(1) / real.sum(1).clamp_min(1)).numpy())
            tokens = cnn + conditioner.history_position.weight[:h]
            fused = conditioner.fusion(
                c.text_neighbours, c.image_neighbours, extra_image_tokens=tokens, extra_padding=~c.history_mask
            )
            interest.append(fused.mean(1).numpy())
    features, interest, histograms = (np.concatenate(x) for x in (features, interest, histograms))
    for name, x in (
        ("history CNN (mean over images)", features),
        ("interest tokens (mean)", interest),
        ("the same images' colour histograms (mean; no model)", histograms),
    ):
        line = f"generator {path}, {name}:"
        for attr, label in labels.items():
            line += f" {attr} {probe(x, label, split):.2f}"
        print(line)


def colour_histogram(images, levels: int):
    """(B, 3, H, W) images in [-1, 1] -> (B, levels**3) share of pixels per RGB cell: colours, no model."""
    import torch.nn.functional as F

    q = ((images + 1) / 2 * levels).long().clamp(0, levels - 1)
    cell = (q[:, 0] * levels + q[:, 1]) * levels + q[:, 2]
    counts = F.one_hot(cell.flatten(1), levels**3).sum(1).float()
    return counts / counts.sum(1, keepdim=True)


if __name__ == "__main__":
    main()

"""The generator's training set: every example's conditions (float16) and its images (uint8, NCHW), precomputed.

Segments are dropped at random later, in the loop; here each personalize example is conditioned
on its rewritten text or, with ``p_plain_text``, on the plain text (keeping the interest tokens,
so no personalize example loses every user signal); reconstruct examples always on the plain text.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from tailorgen.data import Dataset
from tailorgen.generation.context import IAMGSettings, PersonalizationContext
from tailorgen.generation.train.config import GeneratorTrainConfig
from tailorgen.generation.train.examples import SourceTargetImages, pick_examples
from tailorgen.training import setup, training_shop
from tailorgen.world import WorldConfig
from tailorgen.world.knowledge import knowledge_for

CONDITION_KEYS = ("text_tokens", "text_mask", "image_embedding", "text_neighbours", "image_neighbours")
CHUNK = 256  # examples whose requests and conditions are computed together


def build_training_set(cfg: GeneratorTrainConfig, ctx: PersonalizationContext, rng, progress=True) -> dict:
    """Arrays of every example (conditions, texts, flags) and ``renders`` x examples (source, target) images.

    Image row ``r * examples + i`` is render r of example i, so the loop maps an image row to its
    example's conditions by ``row % examples``.
    """
    examples = pick_examples(ctx, cfg.examples, cfg.p_reconstruct, cfg.min_history, rng)
    images = SourceTargetImages(knowledge_for(ctx.dataset), cfg.seed, ctx.settings.recency_half_life)
    parts: dict[str, list] = {}
    renders: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(cfg.renders)]
    for s in tqdm(range(0, len(examples), CHUNK), desc="conditions", unit="batch", disable=not progress):
        chunk = examples[s : s + CHUNK]
        requests = ctx.requests(
            [(u, x) for u, x, *_ in chunk],
            [h for _, _, _, h, _ in chunk],
            # The whole history, not only the part before the target: the item chosen next sets the
            # target and must not also appear among the neighbours the model reads.
            exclude=[set(ctx.histories[u]) for u, *_ in chunk],
        )
        plain = [kind == "reconstruct" or rng.random() < cfg.p_plain_text for *_, kind in chunk]
        for use_plain in (False, True):
            idx = [i for i, p in enumerate(plain) if p == use_plain]
            if idx:
                _add_conditions(parts, ctx, [requests[i] for i in idx], [chunk[i] for i in idx], use_plain)
                for r in range(cfg.renders):  # with one render, the draws are those of the sets before renders
                    renders[r] += [images(chunk[i]) for i in idx]
                if images.counterfactual:  # what the renderer drew, so a pack can draw it again elsewhere
                    parts.setdefault("looks", []).append(np.array([images.target_looks(chunk[i]) for i in idx]))
    data = {k: np.concatenate(v) for k, v in parts.items()}
    for k, side in (("source", 0), ("target", 1)):
        data[k] = np.stack([pair[side] for render in renders for pair in render]).transpose(0, 3, 1, 2)
    data["n_personalize"] = int(data["keep_interest"].sum())
    data["counterfactual_targets"] = images.counterfactual
    return data


def _add_conditions(parts: dict, ctx: PersonalizationContext, requests, chunk, use_plain: bool) -> None:
    c = ctx.conditions(requests, rewritten=not use_plain)
    keys = CONDITION_KEYS + (("history_accent",) if ctx.spec.reads_history_accent else ())
    for k in keys:
        v = getattr(c, k).numpy()
        parts.setdefault(k, []).append(v.astype(np.float16) if v.dtype == np.float32 else v)
    if ctx.spec.history_images:  # back to uint8: a quarter of the memory, exact (they were uint8)
        parts.setdefault("history_pixels", []).append(((c.history_pixels + 1) * 127.5).round().to(torch.uint8).numpy())
        parts.setdefault("history_mask", []).append(c.history_mask.numpy())
    # The texts and the source items travel with the arrays, so a pack can rebuild the set elsewhere.
    parts.setdefault("text", []).append(np.array([r.item_text if use_plain else r.rewrite.text for r in requests]))
    parts.setdefault("source_item", []).append(np.array([x for _, x, *_ in chunk]))
    parts.setdefault("keep_interest", []).append(np.array([e[4] == "personalize" for e in chunk]))
    parts.setdefault("rewritten", []).append(np.full(len(chunk), not use_plain))


def generator_shop(cfg: GeneratorTrainConfig, work_dir, progress: bool = True):
    """The generator's own shop (built once under ``work_dir``, then reused), with its content hashes."""
    world = WorldConfig(n_items=cfg.train_items, n_users=cfg.train_users, seed=cfg.train_seed)
    path = f"{work_dir}/generator-{cfg.train_seed}-{cfg.train_items}-{cfg.train_users}"
    return training_shop(path, world, progress=progress)


def prepare_training_set(
    cfg: GeneratorTrainConfig, work_dir, progress: bool = True, device: str = "cpu"
) -> tuple[dict, PersonalizationContext, np.random.Generator, dict]:
    """Seed, then build the generator's shop and its training set.

    Returns (data, context, rng, data hashes): the loop goes on drawing from ``rng``.
    """
    setup(cfg.seed, cfg.threads, device)
    rng = np.random.default_rng(cfg.seed)
    shop = generator_shop(cfg, work_dir, progress)
    ctx = PersonalizationContext(Dataset(shop.path), IAMGSettings(), progress=progress, spec=cfg.spec)
    return build_training_set(cfg, ctx, rng, progress), ctx, rng, shop.hashes

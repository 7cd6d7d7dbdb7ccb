"""Train the personalized generator (UNet + conditioner with its interest attention) on a shop.

Training examples come from users' histories. For a user and their j-th item y:
- "personalize" (the I-AM-G task): the source item x is another catalog item of y's category;
  the conditions are x's rewritten text (x's text + the user's top tags from items before y),
  x's image embedding and the neighbours retrieved for (user, x), and x's pixels; the target is
  x's garment in the look the user's history shows: per look attribute (colour, pattern, second
  colour), the most frequent value over the items before y, recency-weighted like the interest
  profile (``target_look="history"``). On a simulated shop the renderer draws that
  counterfactual exactly (same silhouette, same placement: see ``world.render.render_looks``); on
  a dataset without ground truth the target is y's own image. The model learns to keep x and
  move its colour and pattern toward what the user's history shows.
  Why not y's own look (``target_look="next_item"``, the 2026-11-25 checkpoint): a single next
  choice shares the user's dominant colour only about a quarter of the time, so that target is
  mostly noise about the user and the model learned the catalog's looks, not the user's
  (docs/benchmarks.md, "Why no gain").
- "reconstruct": x = y with x's plain text and no interest tokens; the target is x itself, so
  without user information the model renders the item as it is.
Segments are dropped at random (interest tokens when the text is rewritten; the rewrite replaced
by the plain text, keeping the interest tokens; all conditions for classifier-free guidance), so
every I-AM-G ablation is in distribution and no personalize example is left without a user signal.
Which parts train: the UNet and the conditioner (projections + interest attention) train
together from scratch; the text encoder (MiniLM) and the image encoder are frozen. With
``look_loss_weight`` > 0 a linear head, used only here and never saved, also trains; with
``accent_loss_weight`` > 0 two more (``main_and_accent``). With ``init_from`` the UNet and the
conditioner start from a saved generator (fine-tuning) instead of from scratch; options that add
weights (``history_accent``'s token projection, ``accent_film``'s class embedding) add them fresh.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from tailorgen.common import atomic_dir, write_json
from tailorgen.common.manifest import environment_versions, now_utc
from tailorgen.data import Dataset
from tailorgen.encoders.image import rgb_array
from tailorgen.generation.conditioning import PersonalizationConditioner
from tailorgen.generation.context import IAMGSettings, PersonalizationContext
from tailorgen.generation.pipeline import PersonalizedImagePipeline
from tailorgen.generation.unet import REFERENCE_CHANNELS, add_accent_embedding, build_unet, reads_accent
from tailorgen.interests import recency_weights
from tailorgen.interests.accent import HISTORY_ACCENT_DIM, accent_pixels, main_and_accent
from tailorgen.world import WorldConfig
from tailorgen.world.build import ensure_shop
from tailorgen.world.render import render_looks
from tailorgen.world.silhouettes import SilhouetteBank

IMAGE_SIZE = 32
LOOK = ("colour", "pattern", "secondary_colour")


@dataclass
class GeneratorTrainConfig:
    train_items: int = 4000
    train_users: int = 1200
    train_seed: int = 5001  # its own shop: no benchmark or encoder/judge seed
    examples: int = 16000
    # "history": the look the user's history before the target shows most (recency-weighted);
    # "next_item": the look of the item the user chose next.
    target_look: str = "history"
    # The user's last N history images the interest attention reads from their pixels (0: none).
    history_images: int = 0
    # The history images' tokens also join the interest segment, so the UNet attends to each of them
    # directly (PersonalizationConditioner.history_tokens); otherwise only the fusion reads them.
    history_tokens: bool = False
    # The interest segment also carries the accent colour the user's whole history shows most, read
    # from the items' pixels (IAMGSettings.history_accent): one token, the only condition that names
    # the target's second colour outright.
    history_accent: bool = False
    # The UNet reads that accent too, through its class embedding: added to the timestep embedding,
    # it shifts the ResNet blocks' features at 16x16 and 8x8 (at 32x32 one channel per GroupNorm
    # group normalises a shift away; see build_unet), where the tokens reach only the 8x8
    # attention. Fine-tuning adds it to a saved UNet at zero.
    accent_film: bool = False
    # Extra weight of the denoising loss on the target's accent pixels (``interests.accent.accent_pixels``):
    # each pixel counts 1 + this. The accent covers at most ~40% of the fabric, and with the
    # condition that names it in front of the UNet (history_accent, accent_film), a fine-tune still
    # drew it no more often: its pixels are a small part of a flat loss. 0: off.
    accent_pixel_weight: float = 0.0
    # The UNet also reads the pixels of the user's most typical recent item with the interest
    # segment (IAMGSettings.reference_image).
    reference_image: bool = False
    p_reconstruct: float = 0.35
    p_plain_text: float = 0.25  # personalize examples conditioned on the plain (not rewritten) text
    # Weight of an auxiliary loss on the interest tokens: a training-only linear head must predict
    # the target image's colour histogram from them (look_levels per RGB channel). Without it the
    # UNet learned to follow the rewrite's words and barely read the interest segment, so the
    # fusion had no reason to carry what only images show (docs/benchmarks.md). 0: off.
    look_loss_weight: float = 0.0
    look_levels: int = 4
    # Weight of an auxiliary loss that asks the conditioner for each image's main and accent colour
    # (``main_and_accent``; no labels): training-only linear heads read them off the history CNN's
    # feature of every history image and off the interest tokens for the target. The target's second
    # colour comes only from the history's pixels, and the CNN, trained through the denoising loss
    # alone, learned colour and pattern but barely the accent (docs/benchmarks.md, attempt 7). 0: off.
    accent_loss_weight: float = 0.0
    # Start from a saved pipeline (fine-tuning) instead of from scratch; its conditioner must read
    # as many history images as this run's settings.
    init_from: str | None = None
    p_drop_interest: float = 0.25
    p_drop_all: float = 0.1  # classifier-free guidance
    min_history: int = 3
    block_out_channels: tuple[int, ...] = (32, 64, 128)
    cross_attention_dim: int = 128
    # 0.82 s a step at batch 32 on 2 CPU cores: ~41 min (+ ~6 min of example preparation), inside the
    # 60-minute target. At a fixed budget of images, more and smaller steps learned faster.
    steps: int = 3000
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 200
    # v-prediction: near pure noise the model predicts the image (mostly a copy of the source
    # garment), near the clean image the noise; epsilon-prediction learned the copy far slower.
    prediction_type: str = "v_prediction"
    ema_decay: float = 0.999  # the ceiling; the decay warms up (diffusers' use_ema_warmup) so early weights fade
    seed: int = 0
    threads: int = 2

    @classmethod
    def from_dict(cls, config: dict) -> GeneratorTrainConfig:
        """The config a training report or pack recorded (JSON turns the channel tuple into a list)."""
        return cls(**config | {"block_out_channels": tuple(config["block_out_channels"])})

    @property
    def reads_history_accent(self) -> bool:
        """Whether the model reads the history accent (a token or the UNet's class embedding), so the set needs it."""
        return self.history_accent or self.accent_film


def colour_histogram(images: torch.Tensor, levels: int) -> torch.Tensor:
    """(B, 3, H, W) images in [-1, 1] -> (B, levels**3) share of pixels per RGB cell.

    The cheapest summary of which colours an image shows and how much of each (a second colour
    on a quarter of the fabric is a quarter of the mass), for any dataset, labels or not.
    """
    q = ((images + 1) / 2 * levels).long().clamp(0, levels - 1)
    cell = (q[:, 0] * levels + q[:, 1]) * levels + q[:, 2]
    counts = F.one_hot(cell.flatten(1), levels**3).sum(1).float()
    return counts / counts.sum(1, keepdim=True)


def _accent_loss(predicted: torch.Tensor, summary: torch.Tensor) -> torch.Tensor:
    """Squared error against ``main_and_accent``; the accent colour counts only where the image has one."""
    err = (predicted - summary) ** 2
    has_accent = (summary[:, 6] > 0.02).float()
    return (err[:, :3].sum(1) + has_accent * err[:, 3:6].sum(1) + err[:, 6]).mean()


def _interest_mean(tokens: torch.Tensor, mask: torch.Tensor, n_interest: int) -> torch.Tensor:
    """Mean over the interest segment's real tokens (the last ``n_interest``; a short history pads)."""
    m = mask[:, -n_interest:, None].float()
    return (tokens[:, -n_interest:] * m).sum(1) / m.sum(1).clamp_min(1)


def _load_for_fine_tuning(cfg: GeneratorTrainConfig, settings: IAMGSettings):
    """(unet, conditioner) of a saved pipeline, checked against the run's config and the training set's settings.

    ``history_tokens`` may be switched on: it adds no weights, only what the UNet attends to.
    ``history_accent`` may be switched on too: its token's projection starts from scratch, all
    else from the saved weights; so may ``accent_film``, whose class embedding starts at zero.
    """
    path = cfg.init_from
    pipe = PersonalizedImagePipeline.from_pretrained(path)
    conditioner = pipe.conditioner
    switched = {
        k: getattr(cfg, k)
        for k in ("history_tokens", "history_accent")
        if getattr(cfg, k) != conditioner.config.get(k, False)
    }
    if switched:
        conditioner = PersonalizationConditioner.from_config(conditioner.config, **switched)
        missing, unexpected = conditioner.load_state_dict(pipe.conditioner.state_dict(), strict=False)
        if unexpected or any(not k.startswith("accent_proj.") for k in missing):
            raise ValueError(f"cannot fine-tune {path} with {switched}: missing {missing}, unexpected {unexpected}")
    unet = pipe.unet
    if cfg.accent_film and not reads_accent(unet):
        unet = add_accent_embedding(unet, HISTORY_ACCENT_DIM)
    elif reads_accent(unet) and not cfg.accent_film:
        raise ValueError(f"cannot fine-tune {path} without accent_film: its UNet reads the history accent")
    got = {k: conditioner.config[k] for k in ("history_images", "reference_image")}
    want = {"history_images": settings.history_images, "reference_image": settings.reference_image}
    if got != want:
        raise ValueError(
            f"cannot fine-tune {path}: its conditioner reads {got}, but the training set was built for {want}"
        )
    # The report records the run's config as the model's: they must agree.
    shapes = {
        "block_out_channels": tuple(pipe.unet.config.block_out_channels),
        "cross_attention_dim": pipe.unet.config.cross_attention_dim,
    }
    asked = {"block_out_channels": tuple(cfg.block_out_channels), "cross_attention_dim": cfg.cross_attention_dim}
    if asked != shapes:
        raise ValueError(f"cannot fine-tune {path}: it has {shapes}, but the config asks for {asked}; give its shapes")
    return unet, conditioner


def _pick_examples(cfg: GeneratorTrainConfig, ctx: PersonalizationContext, rng: np.random.Generator):
    """(user, source item, target item, history before target, kind) tuples."""
    items = ctx.dataset.items.select(["item_id", "category"]).to_pydict()
    by_category: dict[str, list[str]] = {}
    for i, c in zip(items["item_id"], items["category"]):
        by_category.setdefault(c, []).append(i)
    category = dict(zip(items["item_id"], items["category"]))
    positions = [(u, j) for u, h in ctx.histories.items() for j in range(cfg.min_history, len(h))]
    chosen = rng.choice(len(positions), size=min(cfg.examples, len(positions)), replace=False)
    out = []
    for k in chosen:
        u, j = positions[k]
        h = ctx.histories[u]
        y = h[j]
        if rng.random() < cfg.p_reconstruct:
            out.append((u, y, y, h[:j], "reconstruct"))
        else:
            pool = by_category[category[y]]
            x = pool[int(rng.integers(len(pool)))]
            out.append((u, x, y, h[:j], "personalize"))
    return out


def history_look(looks: dict[str, dict], history: list[str], recency_half_life: float | None) -> tuple[str, str, str]:
    """Per look attribute, the value with the largest recency-weighted count over ``history`` (oldest first).

    The weights are the interest profile's (``interests.recency_weights``), so the target's look
    is the one the rewrite's user tags name whenever those tags are look tags.
    """
    weights = recency_weights(len(history), recency_half_life)
    out = []
    for attr in LOOK:
        weight: dict[str, float] = {}
        for item, w in zip(history, weights):
            value = looks[item][attr]
            weight[value] = weight.get(value, 0.0) + w
        out.append(max(weight, key=weight.__getitem__))  # first-seen value wins a tie: deterministic
    return tuple(out)


class _SourceTargetImages:
    """(source, target) uint8 images for an example: counterfactual renders on a shop, catalog images elsewhere."""

    def __init__(self, dataset: Dataset, seed: int, recency_half_life: float | None = None):
        self.dataset = dataset
        self.recency_half_life = recency_half_life
        self.rng = np.random.default_rng([seed, 77])
        truth_path = dataset.root / "truth" / "items.parquet"
        self.truth = None
        if truth_path.exists():
            t = pq.read_table(truth_path, columns=["item_id", "silhouette_source", "silhouette_index", *LOOK])
            t = t.to_pydict()
            world = dataset.manifest["source"]["config"]
            bank = SilhouetteBank(use_fashion_mnist=world["use_fashion_mnist"], seed=world["seed"])
            # The indices name images of the bank the shop was built with; any other bank would draw other shapes.
            if set(t["silhouette_source"]) == {bank.source}:
                self.silhouettes = bank.images
                self.truth = {i: {k: t[k][r] for k in ("silhouette_index", *LOOK)} for r, i in enumerate(t["item_id"])}

    def _catalog(self, item_id: str) -> np.ndarray:
        return rgb_array(self.dataset.load_image(item_id), IMAGE_SIZE)

    def render_spec(
        self, source_id: str, target_id: str, history: list[str] | None = None
    ) -> tuple[int, list[tuple[str, str, str]]]:
        """What the renderer draws for an example: the source's silhouette index and its (source, target) looks.

        With ``history``, the target takes the look ``history`` shows most; otherwise ``target_id``'s look.
        """
        x = self.truth[source_id]
        look = (
            history_look(self.truth, history, self.recency_half_life)
            if history
            else tuple(self.truth[target_id][k] for k in LOOK)
        )
        return x["silhouette_index"], [tuple(x[k] for k in LOOK), look]

    def __call__(
        self, source_id: str, target_id: str, history: list[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.truth is None:
            return self._catalog(source_id), self._catalog(target_id)
        return self.render(*self.render_spec(source_id, target_id, history))

    def render(self, silhouette: int, looks: list[tuple[str, str, str]]) -> tuple[np.ndarray, np.ndarray]:
        source, target = render_looks(self.silhouettes[silhouette], looks, IMAGE_SIZE, self.rng)
        return source, target


def build_training_set(cfg: GeneratorTrainConfig, ctx: PersonalizationContext, rng, progress=True) -> dict:
    """Precompute every example's conditions (float16) and its source and target images (uint8, NCHW)."""
    if cfg.target_look not in ("history", "next_item"):
        raise ValueError(f"target_look must be 'history' or 'next_item', not {cfg.target_look!r}")
    examples = _pick_examples(cfg, ctx, rng)
    images = _SourceTargetImages(ctx.dataset, cfg.seed, ctx.settings.recency_half_life)
    keys = ("text_tokens", "text_mask", "image_embedding", "text_neighbours", "image_neighbours")
    keys += ("history_accent",) if ctx.settings.history_accent else ()
    history = ("history_pixels", "history_mask") if ctx.settings.history_images else ()
    history += ("reference", "reference_present") if ctx.settings.reference_image else ()
    # The texts and, on a shop, what the renderer drew travel with the arrays, so the set can be
    # rebuilt elsewhere from far fewer bytes (scripts/device_train.py).
    spec = ("silhouette_index", "looks") if images.truth is not None else ()
    parts: dict[str, list] = {
        k: [] for k in (*keys, *history, "source", "target", "keep_interest", "rewritten", "text", *spec)
    }
    batch = 256
    by_history = cfg.target_look == "history"
    for s in tqdm(range(0, len(examples), batch), desc="conditions", unit="batch", disable=not progress):
        chunk = examples[s : s + batch]
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
            if not idx:
                continue
            c = ctx.conditions([requests[i] for i in idx], rewritten=not use_plain)
            for k in keys:
                v = getattr(c, k).numpy()
                parts[k].append(v.astype(np.float16) if v.dtype == np.float32 else v)
            if ctx.settings.history_images:  # back to uint8: a quarter of the memory, exact (they were uint8)
                parts["history_pixels"].append(((c.history_pixels + 1) * 127.5).round().to(torch.uint8).numpy())
                parts["history_mask"].append(c.history_mask.numpy())
            if ctx.settings.reference_image:
                pixels, present = ctx.reference_pixels([requests[i] for i in idx])
                parts["reference"].append(pixels.astype(np.uint8))
                parts["reference_present"].append(present)
            sources = [
                (x, y, h if by_history and kind == "personalize" else None)
                for _, x, y, h, kind in (chunk[i] for i in idx)
            ]
            parts["text"].append(
                np.array([r.item_text if use_plain else r.rewrite.text for r in (requests[i] for i in idx)])
            )
            if spec:
                specs = [images.render_spec(*s) for s in sources]
                pairs = [images.render(*sp) for sp in specs]
                parts["silhouette_index"].append(np.array([s for s, _ in specs], np.int32))
                parts["looks"].append(np.array([looks for _, looks in specs]))
            else:
                pairs = [images(*s) for s in sources]
            parts["source"].append(np.stack([p[0] for p in pairs]).transpose(0, 3, 1, 2))
            parts["target"].append(np.stack([p[1] for p in pairs]).transpose(0, 3, 1, 2))
            parts["keep_interest"].append(np.array([chunk[i][4] == "personalize" for i in idx]))
            parts["rewritten"].append(np.full(len(idx), not use_plain))
    data = {k: np.concatenate(v) for k, v in parts.items()}
    data["n_personalize"] = int(data["keep_interest"].sum())
    data["counterfactual_targets"] = images.truth is not None
    return data


def ensure_training_shop(cfg: GeneratorTrainConfig, work_dir: str | Path, progress: bool = True) -> Path:
    """The generator's own shop (built once under ``work_dir``, then reused)."""
    return ensure_shop(
        Path(work_dir) / f"generator-{cfg.train_seed}-{cfg.train_items}-{cfg.train_users}",
        WorldConfig(n_items=cfg.train_items, n_users=cfg.train_users, seed=cfg.train_seed),
        progress=progress,
    )


def prepare_training_set(
    cfg: GeneratorTrainConfig, work_dir: str | Path, progress: bool = True
) -> tuple[dict, PersonalizationContext, np.random.Generator]:
    """Seed, then build the generator's shop and its training set.

    Returns (data, context, rng): ``fit_generator`` goes on drawing from ``rng``.
    """
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    shop = ensure_training_shop(cfg, work_dir, progress)
    settings = IAMGSettings(
        history_images=cfg.history_images,
        reference_image=cfg.reference_image,
        history_accent=cfg.reads_history_accent,
    )
    ctx = PersonalizationContext(Dataset(shop), settings, progress=progress)
    return build_training_set(cfg, ctx, rng, progress), ctx, rng


def train_generator(
    cfg: GeneratorTrainConfig, out: str | Path, work_dir: str | Path, progress: bool = True, device: str = "cpu"
) -> dict:
    """Build the generator's shop and training set, then train it (``fit_generator``)."""
    t0 = time.perf_counter()
    data, ctx, rng = prepare_training_set(cfg, work_dir, progress)
    return fit_generator(cfg, data, ctx.settings, out, rng, time.perf_counter() - t0, progress, device)


def fit_generator(
    cfg: GeneratorTrainConfig,
    data: dict,
    settings: IAMGSettings,
    out: str | Path,
    rng: np.random.Generator,
    prep_seconds: float = 0.0,
    progress: bool = True,
    device: str = "cpu",
) -> dict:
    """Train the UNet and the conditioner on a prepared set (``build_training_set``) and save the pipeline.

    ``rng`` draws the batches and the dropped segments; torch's generator draws the noise and the
    timesteps (``train_generator`` seeds both).
    """
    t0 = time.perf_counter()
    n = len(data["target"])
    reference = settings.reference_image
    if cfg.reads_history_accent and "history_accent" not in data:
        raise ValueError(
            "the config reads the history accent but the training set has none: build it with"
            " IAMGSettings.history_accent (prepare_training_set does when the config asks)"
        )
    if cfg.init_from:
        unet, conditioner = _load_for_fine_tuning(cfg, settings)
    else:
        unet = build_unet(
            IMAGE_SIZE,
            cfg.block_out_channels,
            cfg.cross_attention_dim,
            reference_channels=REFERENCE_CHANNELS if reference else 0,
            accent_dim=HISTORY_ACCENT_DIM if cfg.accent_film else 0,
        )
        conditioner = PersonalizationConditioner(
            embed_dim=data["text_tokens"].shape[-1],
            cross_attention_dim=cfg.cross_attention_dim,
            max_neighbours=max(8, data["text_neighbours"].shape[1]),
            history_images=settings.history_images,
            reference_image=reference,
            history_tokens=cfg.history_tokens,
            history_accent=cfg.history_accent,
        )
    unet, conditioner = unet.to(device).train(), conditioner.to(device).train()
    params = [*unet.parameters(), *conditioner.parameters()]
    if cfg.look_loss_weight:
        # Training only, never saved: it exists to give the interest tokens a job. Built only when
        # used, since its initialization draws from torch's generator and would change every
        # later draw (noise, timesteps) of a run without it.
        look_head = torch.nn.Linear(cfg.cross_attention_dim, cfg.look_levels**3).to(device)
        params += list(look_head.parameters())
    # The interest segment: the fusion's K tokens, then (history_tokens) the H history images' tokens,
    # then (history_accent) the accent token.
    n_interest = data["text_neighbours"].shape[1] + (settings.history_images if cfg.history_tokens else 0)
    n_interest += int(cfg.history_accent)
    accent_losses, hook = [], None
    if cfg.accent_loss_weight:  # training only, never saved; built only when used (see the look head)
        d = cfg.cross_attention_dim
        accent_heads = torch.nn.ModuleDict({"target": torch.nn.Linear(d, 7), "history": torch.nn.Linear(d, 7)})
        accent_heads = accent_heads.to(device)
        params += list(accent_heads.parameters())
        history_features = {}
        if conditioner.history_encoder is not None:
            # The CNN's feature of each history image, before its position embedding.
            hook = conditioner.history_encoder.register_forward_hook(
                lambda module, args, output: history_features.__setitem__("h", output)
            )
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
    ema_unet, ema_cond = (
        EMAModel(unet.parameters(), decay=cfg.ema_decay, use_ema_warmup=True, power=2 / 3),
        EMAModel(conditioner.parameters(), decay=cfg.ema_decay, use_ema_warmup=True, power=2 / 3),
    )
    noise_scheduler = DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type=cfg.prediction_type
    )
    lr_at = lambda s: cfg.lr * min(1, (s + 1) / cfg.warmup_steps) * 0.5 * (1 + math.cos(math.pi * s / cfg.steps))  # noqa: E731
    losses, look_losses, pending = [], [], []
    bar = tqdm(range(cfg.steps), desc="train generator", unit="step", disable=not progress)
    # The whole training set lives on the training device (about 0.6 GB at the defaults).
    keys = ("text_tokens", "text_mask", "image_embedding", "text_neighbours", "image_neighbours")
    keys += ("history_pixels", "history_mask") if "history_pixels" in data else ()
    keys += ("history_accent",) if "history_accent" in data else ()
    pixels = ("reference", "reference_present") if reference else ()
    stored = {
        k: torch.from_numpy(data[k]).to(device)
        for k in (*keys, *pixels, "source", "target", "keep_interest", "rewritten")
    }
    for step in bar:
        idx = torch.from_numpy(rng.integers(0, n, cfg.batch_size)).to(device)
        batch = {k: stored[k][idx] for k in keys}
        batch = {k: v.float() if v.dtype == torch.float16 else v for k, v in batch.items()}
        if "history_pixels" in batch:
            batch["history_pixels"] = batch["history_pixels"].float() / 127.5 - 1
        x0 = stored["target"][idx].float() / 127.5 - 1
        source = stored["source"][idx].float() / 127.5 - 1
        drop = torch.zeros(cfg.batch_size, 3, dtype=torch.bool, device=device)
        no_interest = torch.from_numpy(rng.random(cfg.batch_size) < cfg.p_drop_interest).to(device)
        # Interest tokens go only where the rewrite still carries the user (the rewrite-only ablation).
        drop[:, 2] = ~stored["keep_interest"][idx] | (no_interest & stored["rewritten"][idx])
        drop[torch.from_numpy(rng.random(cfg.batch_size) < cfg.p_drop_all).to(device)] = True
        accent = batch.pop("history_accent", None)
        tokens, mask = conditioner(**batch, drop=drop, history_accent=accent if cfg.history_accent else None)
        # The UNet's accent goes with the interest segment: zeros where that is dropped.
        class_labels = accent * ~drop[:, 2:3] if cfg.accent_film else None
        if reference:  # the reference goes with the interest segment: zeros where that is dropped
            shown = stored["reference_present"][idx] & ~drop[:, 2]
            source = torch.cat([source, (stored["reference"][idx].float() / 127.5 - 1) * shown[:, None, None, None]], 1)
        noise = torch.randn_like(x0)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (cfg.batch_size,), device=device)
        noisy = torch.cat([noise_scheduler.add_noise(x0, noise, t), source], dim=1)
        pred = unet(
            noisy, t, encoder_hidden_states=tokens, encoder_attention_mask=mask, class_labels=class_labels
        ).sample
        target = noise if cfg.prediction_type == "epsilon" else noise_scheduler.get_velocity(x0, noise, t)
        if cfg.accent_pixel_weight:
            weight = 1 + cfg.accent_pixel_weight * accent_pixels(x0).float()[:, None]
            denoising_loss = (weight * (pred - target) ** 2).mean() / weight.mean()
        else:
            denoising_loss = F.mse_loss(pred, target)
        loss = denoising_loss
        keep = ~drop[:, 2]  # the look head reads the interest tokens only where they were kept
        if cfg.look_loss_weight and keep.any():
            logits = look_head(_interest_mean(tokens[keep], mask[keep], n_interest))
            look_loss = -(colour_histogram(x0[keep], cfg.look_levels) * F.log_softmax(logits, -1)).sum(-1).mean()
            loss = loss + cfg.look_loss_weight * look_loss
            look_losses.append(look_loss.item())
        if cfg.accent_loss_weight and keep.any():
            accent_loss = _accent_loss(
                accent_heads["target"](_interest_mean(tokens[keep], mask[keep], n_interest)), main_and_accent(x0[keep])
            )
            if "h" in history_features:
                real = batch["history_mask"].flatten().bool()
                seen = batch["history_pixels"].flatten(0, 1)[real]
                accent_loss = accent_loss + _accent_loss(
                    accent_heads["history"](history_features.pop("h")[real]), main_and_accent(seen)
                )
            loss = loss + cfg.accent_loss_weight * accent_loss
            accent_losses.append(accent_loss.detach())
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema_unet.step(unet.parameters())
        ema_cond.step(conditioner.parameters())
        # Kept on the device and read every 25 steps: reading each step would stall a GPU.
        pending.append(denoising_loss.detach())
        if step % 25 == 24 or step == cfg.steps - 1:
            losses += torch.stack(pending).tolist()
            pending = []
            bar.set_postfix(loss=f"{np.mean(losses[-25:]):.4f}")
    if hook is not None:
        hook.remove()
    ema_unet.copy_to(unet.parameters())
    ema_cond.copy_to(conditioner.parameters())
    pipe = PersonalizedImagePipeline(
        unet=unet.cpu().eval(),
        conditioner=conditioner.cpu().eval(),
        # "trailing" starts sampling at t=999, the step the model learned to read pure noise at.
        # The default "leading" starts at t=960, where this schedule still leaves the target's mean
        # colour readable in the noise, so the noise rather than the conditions picks it
        # (Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed").
        scheduler=DDIMScheduler.from_config(noise_scheduler.config, timestep_spacing="trailing"),
    )
    report = {
        "what": "tailorgen personalized generator (I-AM-G): pixel UNet + conditioner with interest attention",
        "created": now_utc(),
        "config": dataclasses.asdict(cfg),
        "device": device,
        # Conditions are built with these; IAMGGenerator generates with the same (trained_settings).
        "iamg_settings": dataclasses.asdict(settings),
        "examples": n,
        "personalize_examples": data["n_personalize"],
        "counterfactual_targets": data["counterfactual_targets"],
        "prep_seconds": round(prep_seconds, 1),
        "train_seconds": round(time.perf_counter() - t0, 1),
        "parameters": {
            "unet": sum(p.numel() for p in unet.parameters()),
            "conditioner": sum(p.numel() for p in conditioner.parameters()),
        },
        # The denoising loss alone (v-prediction MSE); the auxiliary losses have their own curves.
        "loss_curve": [float(np.mean(losses[i : i + 100])) for i in range(0, len(losses), 100)],
        # Cross-entropy of the look head against the target's colour histogram (look_loss_weight > 0).
        "look_loss_curve": [float(np.mean(look_losses[i : i + 100])) for i in range(0, len(look_losses), 100)],
        # Squared error of the accent heads (target and history images) with accent_loss_weight > 0.
        "accent_loss_curve": [
            float(torch.stack(accent_losses[i : i + 100]).mean()) for i in range(0, len(accent_losses), 100)
        ],
        "versions": environment_versions(),
    }
    # Built in a temporary folder and renamed into place: a crash never leaves half a pipeline.
    with atomic_dir(out, overwrite=True) as tmp:
        pipe.save_pretrained(str(tmp))
        write_json(tmp / "training_report.json", report)
    return report

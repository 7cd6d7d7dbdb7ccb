"""Train the embedded image encoder into the frozen MiniLM text space (LiT: locked-text tuning).

The shop's item texts are embedded once by the frozen text encoder; the image CNN learns,
with a symmetric InfoNCE loss over in-batch negatives (CLIP's), to land each image next to
its own item's text. Afterwards images and texts compare directly, which is what zero-shot
tagging and the cross-modal parts of I-AM-G need.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tailorgen.data import Dataset
from tailorgen.encoders.base import TextEncoder
from tailorgen.encoders.catalog import encode_catalog
from tailorgen.encoders.image import ShopImageEncoder, ShopImageEncoderModel, images_to_tensor
from tailorgen.encoders.text import SentenceTransformerEncoder
from tailorgen.encoders.zeroshot import ZeroShotTagger
from tailorgen.training import (
    CHECKPOINT_EVERY,
    EpochOrder,
    TrainingRun,
    TrainingShop,
    require,
    set_lr,
    setting,
    setup,
    training_shop,
    warmup_cosine,
)
from tailorgen.world import WorldConfig
from tailorgen.world.attributes import VISUAL_ATTRIBUTES
from tailorgen.world.knowledge import knowledge_for


@dataclass
class EncoderTrainConfig:
    train_items: int = setting(20_000, "Items in the training shop.")
    train_seed: int = setting(1001, "Seed of the training shop; the held-out shop (eval_seed) is never trained on.")
    eval_items: int = setting(2_000, "Items in the held-out shop the metrics are measured on.")
    eval_seed: int = setting(1002, "Seed of the held-out shop.")
    image_size: int = setting(32, "Image side in pixels.")
    channels: tuple[int, ...] = setting((32, 64, 128), "Channels of the CNN's stages, comma-separated.")
    epochs: int = setting(12, "Passes over the training shop.")
    batch_size: int = setting(256, "Images per step; each image's negatives are the batch's other texts.")
    lr: float = setting(2e-3, "Peak learning rate (AdamW; linear warm-up, then cosine decay).")
    weight_decay: float = setting(0.05, "AdamW's weight decay.")
    warmup_steps: int = setting(100, "Steps of linear learning-rate warm-up.")
    seed: int = setting(0, "Seed of the initialization, the batch order and the augmentation.")
    threads: int = setting(2, "CPU threads torch uses.")

    def __post_init__(self):
        require(self.epochs >= 1, "epochs", self.epochs, "an integer >= 1")
        # InfoNCE needs negatives: at least one other item in every batch.
        require(2 <= self.batch_size <= self.train_items, "batch_size", self.batch_size, "2..train_items")
        require(self.warmup_steps >= 1, "warmup_steps", self.warmup_steps, "an integer >= 1")
        require(len(self.channels) >= 1, "channels", self.channels, "one or more channel counts")


def load_images(ds: Dataset, ids: list[str], size: int) -> torch.Tensor:
    """All images as one uint8-range float tensor in [-1, 1]; 20k x 3 x 32 x 32 is ~250 MB in float32."""
    chunks = [images_to_tensor([ds.load_image(i) for i in ids[s : s + 1024]], size) for s in range(0, len(ids), 1024)]
    return torch.cat(chunks)


def augment(x: torch.Tensor) -> torch.Tensor:
    """Mirror and shift by up to 2 pixels: changes nothing a text could say about the item."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    dy, dx = (int(v) for v in torch.randint(-2, 3, (2,)))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def contrastive_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    logits = logit_scale.exp().clamp(max=100) * F.normalize(image_emb, dim=-1) @ text_emb.T
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def evaluate_image_encoder(encoder: ShopImageEncoder, text_encoder: TextEncoder, eval_dir: Path) -> dict:
    """Zero-shot accuracy per visual attribute and image-to-image precision@10 on a held-out shop."""
    ds = Dataset(eval_dir)
    knowledge = knowledge_for(ds)
    truth = knowledge.visual_attributes()
    if truth is None:
        raise ValueError(f"{eval_dir}: the encoder's held-out evaluation needs a shop with its ground truth")
    ids, emb = encode_catalog(ds, encoder, progress=False)
    tagger = ZeroShotTagger(encoder, text_encoder, knowledge.zero_shot_prompts())
    predicted = tagger.predict_from_embeddings(emb)
    zero_shot = {
        attr: float(np.mean([p == truth[i][attr] for p, i in zip(predicted[attr], ids)])) for attr in VISUAL_ATTRIBUTES
    }
    # Exact neighbours by brute force: 2k items, and encoders sit upstream of the retrieval stage.
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argpartition(-sims, 10, axis=1)[:, :10]
    precision = {}
    for attr in ("category", "colour"):
        labels = np.array([truth[i][attr] for i in ids])
        precision[attr] = float((labels[top] == labels[:, None]).mean())
    chance = {a: 1 / len(v) for a, v in VISUAL_ATTRIBUTES.items()}
    return {
        "zero_shot_accuracy": zero_shot,
        "zero_shot_chance": chance,
        "image_to_image_precision_at_10": precision,
        "eval_items": len(ids),
        "eval_seed_dir": str(eval_dir),
    }


def encoder_shops(cfg: EncoderTrainConfig, work_dir: Path, progress: bool) -> tuple[TrainingShop, TrainingShop]:
    """The training shop and the held-out shop (one user each: only items matter here)."""

    def shop(kind: str, items: int, seed: int) -> TrainingShop:
        world = WorldConfig(n_items=items, n_users=1, seed=seed, image_size=cfg.image_size)
        return training_shop(work_dir / f"encoder-{kind}-{seed}-{items}", world, progress)

    return shop("train", cfg.train_items, cfg.train_seed), shop("eval", cfg.eval_items, cfg.eval_seed)


def image_text_pairs(
    shop: TrainingShop, text_encoder: TextEncoder, size: int, progress: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every item's image and its text's frozen embedding, in the same order."""
    ds = Dataset(shop.path)
    ids, text_emb = encode_catalog(ds, text_encoder, progress=progress)
    return load_images(ds, ids, size), torch.from_numpy(text_emb)


def train_image_encoder(
    cfg: EncoderTrainConfig,
    out: str | Path,
    work_dir: str | Path,
    progress: bool = True,
    device: str = "cpu",
    checkpoint_every: int = CHECKPOINT_EVERY,
    stop_after: int | None = None,
) -> dict:
    """Train, evaluate on held-out items, and save (save_pretrained + training_report.json) to ``out``.

    Checkpoints go to ``out/checkpoints`` every ``checkpoint_every`` steps; a run killed on the
    way, called again with the same config and ``out``, goes on from the last one.
    """
    t0 = time.perf_counter()
    device = setup(cfg.seed, cfg.threads, device)
    rng = np.random.default_rng(cfg.seed)  # the batch order; torch's global generator draws the augmentation
    train_shop, eval_shop = encoder_shops(cfg, Path(work_dir), progress)
    text_encoder = SentenceTransformerEncoder()
    images, text_emb = (t.to(device) for t in image_text_pairs(train_shop, text_encoder, cfg.image_size, progress))
    model = ShopImageEncoderModel(image_size=cfg.image_size, channels=tuple(cfg.channels), out_dim=text_emb.shape[1])
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    order = EpochOrder(len(images), cfg.batch_size, rng.permutation)
    run = TrainingRun(
        out,
        cfg,
        cfg.epochs * order.steps_per_epoch,
        seed=cfg.seed,
        device=device,
        data={"train": train_shop.record(), "eval": eval_shop.record()},
        checkpoint_every=checkpoint_every,
        stop_after=stop_after,
        progress=progress,
        desc="train image encoder",
    )
    run.track(model=model, optimizer=opt, order=order, rng=rng)
    prep_seconds = time.perf_counter() - t0

    model.train()
    for step in run:
        idx = order.batch(step).to(device)
        set_lr(opt, warmup_cosine(step, cfg.lr, cfg.warmup_steps, run.steps))
        loss = contrastive_loss(model(augment(images[idx])), text_emb[idx], model.logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run.log(loss)
    model.cpu().eval()

    with run.output() as tmp:
        model.save_pretrained(str(tmp))
        report = run.write_report(
            tmp,
            what="tailorgen embedded image encoder (LiT into frozen all-MiniLM-L6-v2)",
            curve_every=order.steps_per_epoch,  # one point per epoch
            text_encoder=text_encoder.fingerprint,
            parameters=sum(p.numel() for p in model.parameters()),
            prep_seconds=round(prep_seconds, 1),
            final_loss=float(np.mean(run.history["loss"][-50:])),
            metrics=evaluate_image_encoder(ShopImageEncoder(tmp), text_encoder, eval_shop.path),
        )
    return report

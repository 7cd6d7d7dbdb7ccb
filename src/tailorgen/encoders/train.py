"""Train the embedded image encoder into the frozen MiniLM text space (LiT: locked-text tuning).

The shop's item texts are embedded once by the frozen text encoder; the image CNN learns,
with a symmetric InfoNCE loss over in-batch negatives (CLIP's), to land each image next to
its own item's text. Afterwards images and texts compare directly, which is what zero-shot
tagging and the cross-modal parts of I-AM-G need.
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
from tqdm.auto import tqdm

from tailorgen.common import write_json
from tailorgen.common.manifest import environment_versions, now_utc
from tailorgen.data import Dataset
from tailorgen.encoders.base import TextEncoder
from tailorgen.encoders.catalog import encode_catalog
from tailorgen.encoders.image import ShopImageEncoder, ShopImageEncoderModel, images_to_tensor
from tailorgen.encoders.text import SentenceTransformerEncoder
from tailorgen.encoders.zeroshot import ZeroShotTagger
from tailorgen.world import WorldConfig
from tailorgen.world.attributes import VISUAL_ATTRIBUTES, prompt_vocabulary
from tailorgen.world.build import ensure_shop


@dataclass
class EncoderTrainConfig:
    train_items: int = 20_000
    train_seed: int = 1001  # the training shop; evaluation uses eval_seed, never seen in training
    eval_items: int = 2_000
    eval_seed: int = 1002
    image_size: int = 32
    channels: tuple[int, ...] = (32, 64, 128)
    epochs: int = 12
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    seed: int = 0
    threads: int = 2


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
    truth = pq.read_table(eval_dir / "truth" / "items.parquet").to_pydict()
    ids, emb = encode_catalog(ds, encoder, progress=False)
    order = {i: k for k, i in enumerate(truth["item_id"])}
    rows = [order[i] for i in ids]
    tagger = ZeroShotTagger(encoder, text_encoder, prompt_vocabulary())
    predicted = tagger.predict_from_embeddings(emb)
    zero_shot = {
        attr: float(np.mean([p == truth[attr][r] for p, r in zip(predicted[attr], rows)])) for attr in VISUAL_ATTRIBUTES
    }
    # Exact neighbours by brute force: 2k items, and encoders sit upstream of the retrieval stage.
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argpartition(-sims, 10, axis=1)[:, :10]
    precision = {}
    for attr in ("category", "colour"):
        labels = np.array([truth[attr][r] for r in rows])
        precision[attr] = float((labels[top] == labels[:, None]).mean())
    chance = {a: 1 / len(v) for a, v in VISUAL_ATTRIBUTES.items()}
    return {
        "zero_shot_accuracy": zero_shot,
        "zero_shot_chance": chance,
        "image_to_image_precision_at_10": precision,
        "eval_items": len(ids),
        "eval_seed_dir": str(eval_dir),
    }


def train_image_encoder(
    cfg: EncoderTrainConfig, out: str | Path, work_dir: str | Path, progress: bool = True, device: str = "cpu"
) -> dict:
    """Train, evaluate on held-out items, and save (save_pretrained + training_report.json) to ``out``."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    work_dir = Path(work_dir)
    train_dir = ensure_shop(
        work_dir / f"encoder-train-{cfg.train_seed}-{cfg.train_items}",
        WorldConfig(n_items=cfg.train_items, n_users=1, seed=cfg.train_seed, image_size=cfg.image_size),
        progress=progress,
    )
    eval_dir = ensure_shop(
        work_dir / f"encoder-eval-{cfg.eval_seed}-{cfg.eval_items}",
        WorldConfig(n_items=cfg.eval_items, n_users=1, seed=cfg.eval_seed, image_size=cfg.image_size),
        progress=progress,
    )
    text_encoder = SentenceTransformerEncoder()
    ds = Dataset(train_dir)
    ids, text_emb = encode_catalog(ds, text_encoder, progress=progress)
    text_emb = torch.from_numpy(text_emb).to(device)
    images = load_images(ds, ids, cfg.image_size).to(device)

    model = ShopImageEncoderModel(image_size=cfg.image_size, channels=tuple(cfg.channels), out_dim=text_emb.shape[1])
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(ids) // cfg.batch_size
    total = cfg.epochs * steps_per_epoch
    lr_at = lambda s: cfg.lr * min(1, (s + 1) / cfg.warmup_steps) * 0.5 * (1 + math.cos(math.pi * s / total))  # noqa: E731
    losses = []
    model.train()
    bar = tqdm(range(total), desc="train image encoder", unit="step", disable=not progress)
    for step in bar:
        if step % steps_per_epoch == 0:
            perm = torch.from_numpy(rng.permutation(len(ids))).to(device)
        idx = perm[(step % steps_per_epoch) * cfg.batch_size : (step % steps_per_epoch + 1) * cfg.batch_size]
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = contrastive_loss(model(augment(images[idx])), text_emb[idx], model.logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    model.cpu().eval()
    train_seconds = time.perf_counter() - t0

    out = Path(out)
    model.save_pretrained(str(out))
    metrics = evaluate_image_encoder(ShopImageEncoder(out), text_encoder, eval_dir)
    report = {
        "what": "tailorgen embedded image encoder (LiT into frozen all-MiniLM-L6-v2)",
        "created": now_utc(),
        "config": dataclasses.asdict(cfg),
        "text_encoder": text_encoder.fingerprint,
        "parameters": sum(p.numel() for p in model.parameters()),
        "device": device,
        "train_seconds": round(train_seconds, 1),
        "final_loss": float(np.mean(losses[-50:])),
        "loss_curve": [float(np.mean(losses[i : i + steps_per_epoch])) for i in range(0, total, steps_per_epoch)],
        "metrics": metrics,
        "versions": environment_versions(),
    }
    write_json(out / "training_report.json", report)
    return report

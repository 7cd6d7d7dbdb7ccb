"""Training the VQ image tokenizer: reconstruction (L1 or MSE) + the commitment loss diffusers' quantizer returns.

The training shop has its own seed (7001: no benchmark, encoder, judge, generator or UniMP model
uses it); its last ``held_out_items`` items are never trained on and give the report's PSNR and
code usage. Codes no image used for ``restart_every`` steps are moved onto encoder outputs of the
current batch (the "random restart" of Jukebox and VQ-VAE practice; none in the last fifth of the
steps), so the whole book is used rather than the few codes the first batches happened to pick. On the training toolkit:
checkpoints, exact resume, the report. ``tailorgen train vq --out src/tailorgen/assets/vq`` makes
the shipped tokenizer with the defaults.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from tailorgen.data import Dataset
from tailorgen.encoders.image import images_to_tensor
from tailorgen.training import (
    CHECKPOINT_EVERY,
    EpochOrder,
    TrainingError,
    TrainingRun,
    data_hashes,
    require,
    set_lr,
    setting,
    setup,
    training_shop,
    warmup_cosine,
)
from tailorgen.unified.vq import VQImageTokenizer, build_vq_model, psnr
from tailorgen.world import WorldConfig


@dataclass
class VQTrainConfig:
    train_items: int = setting(20_000, "Items in the tokenizer's training shop (the last held_out_items are held out).")
    train_seed: int = setting(7001, "Seed of the training shop: its own, no benchmark or other model uses it.")
    held_out_items: int = setting(500, "Items of the training shop never trained on: the report's PSNR and code use.")
    image_size: int = setting(32, "Image side in pixels.")
    block_out_channels: tuple[int, ...] = setting(
        (32, 64),
        "Channels per encoder/decoder level; each level after the first halves the side (32 -> 16x16 codes).",
    )
    layers_per_block: int = setting(1, "ResNet layers per encoder level (the decoder has one more).")
    latent_channels: int = setting(8, "Channels of the encoder's output and the decoder's input.")
    code_dim: int = setting(8, "Dimension of a codebook vector (small books of low dimension stay in use).")
    codebook_size: int = setting(1024, "Codes in the book (the reference's VQGAN has 1,024).")
    mid_attention: bool = setting(True, "Self-attention in the middle block (over the code grid).")
    steps: int = setting(2_000, "Optimizer steps (about 0.8 s each at batch 64 on 2 CPU cores).")
    batch_size: int = setting(64, "Images per step.")
    lr: float = setting(1e-3, "Peak learning rate (AdamW, linear warm-up, cosine decay).")
    warmup_steps: int = setting(100, "Warm-up steps.")
    weight_decay: float = setting(0.0, "AdamW weight decay.")
    loss: Literal["l1", "mse"] = setting("l1", "Reconstruction loss on pixels in [-1, 1].")
    commit_weight: float = setting(1.0, "Weight of the quantizer's codebook + commitment loss (beta 0.25 inside).")
    restart_every: int = setting(
        50, "Every N steps, codes unused since the last check move to encoder outputs (0: never)."
    )
    seed: int = setting(0, "Seed of the initialization, the batch order, the mirroring and the restarts.")
    threads: int = setting(2, "CPU threads torch uses.")

    def __post_init__(self):
        self.block_out_channels = tuple(self.block_out_channels)
        require(self.steps >= 1, "steps", self.steps, "an integer >= 1")
        require(len(self.block_out_channels) >= 1, "block_out_channels", self.block_out_channels, "one or more")
        require(
            self.image_size % 2 ** (len(self.block_out_channels) - 1) == 0,
            "block_out_channels",
            self.block_out_channels,
            "at most log2(image_size) + 1 levels",
        )
        require(self.codebook_size >= 2, "codebook_size", self.codebook_size, "an integer >= 2")
        require(0 <= self.held_out_items < self.train_items, "held_out_items", self.held_out_items, "0..train_items-1")
        require(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        require(self.restart_every >= 0, "restart_every", self.restart_every, "0 (never) or a step count")

    def model_kwargs(self) -> dict:
        return {
            "image_size": self.image_size,
            "block_out_channels": self.block_out_channels,
            "layers_per_block": self.layers_per_block,
            "latent_channels": self.latent_channels,
            "codebook_size": self.codebook_size,
            "code_dim": self.code_dim,
            "norm_num_groups": min(32, *self.block_out_channels),
            "mid_attention": self.mid_attention,
        }


class CodeUsage:
    """How often each code was picked since the last restart check; checkpointed with the run."""

    def __init__(self, size: int):
        self.counts = torch.zeros(size, dtype=torch.long)
        self.restarted = 0  # codes restarted over the whole run

    def add(self, codes: torch.Tensor) -> None:
        self.counts += torch.bincount(codes.reshape(-1).cpu(), minlength=len(self.counts))

    def state_dict(self) -> dict:
        return {"counts": self.counts.clone(), "restarted": self.restarted}

    def load_state_dict(self, state: dict) -> None:
        self.counts, self.restarted = state["counts"].clone(), int(state["restarted"])


def restart_dead_codes(
    tokenizer: VQImageTokenizer, usage: CodeUsage, latents: torch.Tensor, gen: torch.Generator
) -> int:
    """Move every code ``usage`` never saw onto a random encoder output of ``latents`` (n, d, h, w).

    Returns how many codes moved."""
    dead = torch.nonzero(usage.counts == 0).reshape(-1)
    usage.counts.zero_()
    usage.restarted += len(dead)
    if len(dead) == 0:
        return 0
    vectors = latents.detach().permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    pick = torch.randint(0, len(vectors), (len(dead),), generator=gen)
    with torch.no_grad():
        tokenizer.model.quantize.embedding.weight[dead.to(vectors.device)] = vectors[pick.to(vectors.device)]
    return len(dead)


def dataset_images(path: Path, size: int) -> tuple[list[str], torch.Tensor]:
    """The ids of the items that have an image, and those images in [-1, 1], in the items table's order."""
    ds = Dataset(path)
    ids, images = [], []
    for item_id in ds.items.column("item_id").to_pylist():
        image = ds.load_image(item_id)
        if image is not None:
            ids.append(item_id)
            images.append(image)
    if not images:
        raise TrainingError(f"{path}: no item has an image; a VQ image tokenizer trains on images")
    chunks = [images_to_tensor(images[s : s + 2048], size) for s in range(0, len(images), 2048)]
    return ids, torch.cat(chunks)


def held_out_metrics(tokenizer: VQImageTokenizer, images: torch.Tensor) -> dict:
    """PSNR of the reconstructions and the codes used, on images in [-1, 1] the tokenizer never trained on."""
    if len(images) == 0:
        return {}
    codes = tokenizer.encode(images)
    recon = tokenizer.decode(codes)
    counts = torch.bincount(codes.reshape(-1), minlength=tokenizer.codebook_size).double()
    p = counts[counts > 0] / counts.sum()
    return {
        "items": len(images),
        "psnr": float(psnr((images.cpu() + 1) / 2, recon).mean()),
        "codes_used": int((counts > 0).sum()),
        "code_perplexity": float(torch.exp(-(p * p.log()).sum())),
    }


def train_vq(
    cfg: VQTrainConfig,
    out: str | Path,
    work_dir: str | Path = "runs/work",
    progress: bool = True,
    device: str = "cpu",
    checkpoint_every: int = CHECKPOINT_EVERY,
    stop_after: int | None = None,
    dataset: str | Path | None = None,
) -> dict:
    """Train a VQ image tokenizer and save it (diffusers layout + training_report.json) to ``out``.

    On the training shop of ``cfg.train_seed`` (built under ``work_dir`` once), or on the item
    images of ``dataset`` when one is given (its last ``held_out_items`` images held out).
    Checkpoints go to ``out/checkpoints`` every ``checkpoint_every`` steps; a run killed on the
    way, called again with the same config and ``out``, goes on from the last one.
    """
    t0 = time.perf_counter()
    device = setup(cfg.seed, cfg.threads, device)
    if dataset is None:
        world = WorldConfig(n_items=cfg.train_items, n_users=1, seed=cfg.train_seed, image_size=cfg.image_size)
        shop = training_shop(Path(work_dir) / f"vq-{cfg.train_seed}-{cfg.train_items}", world, progress)
        source, data = shop.path, {"train": shop.record()}
    else:
        source = Path(dataset)
        data = {"train": {"path": str(source), "hashes": data_hashes(source)}}
    _, images = dataset_images(source, cfg.image_size)
    n_train = len(images) - cfg.held_out_items
    if n_train < cfg.batch_size:
        raise TrainingError(
            f"batch_size: {cfg.batch_size} with {len(images)} images and held_out_items={cfg.held_out_items} "
            f"leaves {n_train} to train on; allowed: batch_size <= {max(n_train, 0)}"
        )
    train_x, held_x = images[:n_train].to(device), images[n_train:]

    tokenizer = VQImageTokenizer(build_vq_model(**cfg.model_kwargs()), device=device)
    model = tokenizer.model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)  # batch order, mirroring and restarts
    order = EpochOrder(n_train, cfg.batch_size, lambda n: torch.randperm(n, generator=gen))
    usage = CodeUsage(cfg.codebook_size)
    run = TrainingRun(
        out,
        cfg,
        cfg.steps,
        seed=cfg.seed,
        device=device,
        data=data,
        checkpoint_every=checkpoint_every,
        stop_after=stop_after,
        progress=progress,
        desc="train vq",
    )
    run.track(model=model, optimizer=opt, order=order, generator=gen, usage=usage)
    prep_seconds = time.perf_counter() - t0
    reconstruction = F.l1_loss if cfg.loss == "l1" else F.mse_loss

    model.train()
    for step in run:
        set_lr(opt, warmup_cosine(step, cfg.lr, cfg.warmup_steps, run.steps))
        x = train_x[order.batch(step).to(device)]
        flip = (torch.rand(len(x), generator=gen) < 0.5).to(device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        latents = tokenizer.latents(x)
        quant, commit_loss, codes = tokenizer.quantize(latents)
        rec = reconstruction(tokenizer.decode_latents(quant), x)
        loss = rec + cfg.commit_weight * commit_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        usage.add(codes)
        # No restarts in the last fifth: the decoder must learn the codes it ends with.
        if cfg.restart_every and (step + 1) % cfg.restart_every == 0 and step < 0.8 * run.steps:
            restart_dead_codes(tokenizer, usage, latents, gen)
        run.log(loss, reconstruction=rec, commitment=commit_loss)
    model.cpu().eval()
    tokenizer.device = "cpu"

    with run.output() as tmp:
        tokenizer.save_pretrained(tmp)
        saved = VQImageTokenizer.from_pretrained(tmp)
        report = run.write_report(
            tmp,
            what="tailorgen VQ image tokenizer (diffusers VQModel)",
            parameters=sum(p.numel() for p in model.parameters()),
            codebook_size=saved.codebook_size,
            tokens_per_image=saved.tokens_per_image,
            grid=list(saved.grid_shape),
            prep_seconds=round(prep_seconds, 1),
            train_images=n_train,
            final_loss=float(np.mean(run.history["loss"][-50:])),
            final_reconstruction=float(np.mean(run.history["reconstruction"][-50:])),
            restarted_codes=usage.restarted,
            held_out=held_out_metrics(saved, held_x),
        )
    return report

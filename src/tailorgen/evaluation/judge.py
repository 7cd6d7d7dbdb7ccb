"""The judge: an attribute classifier that reads category, colour, pattern and second colour off images.

It exists for evaluation only. It never serves as a training signal or a reward (a model
optimized against its own evaluator learns to fool it), and the import-graph test enforces
that no module outside tailorgen.evaluation imports this one. It differs from the image
encoder on purpose: its own architecture (residual, with dropout), its own seed and its own
training shop, so its errors are not the encoder's errors.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from PIL import Image
from torch import nn

from tailorgen.common import hash_file
from tailorgen.common.checkpoints import load_local_checkpoint
from tailorgen.data import Dataset
from tailorgen.encoders.image import images_to_tensor
from tailorgen.training import (
    CHECKPOINT_EVERY,
    EpochOrder,
    TrainingRun,
    TrainingShop,
    require,
    setting,
    setup,
    training_shop,
)
from tailorgen.world import WorldConfig
from tailorgen.world.attributes import VISUAL_ATTRIBUTES

ATTRIBUTES = tuple(VISUAL_ATTRIBUTES)


class _Residual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.SiLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x):
        return F.silu(self.body(x) + self.skip(x))


class JudgeModel(nn.Module, PyTorchModelHubMixin):
    """A small ResNet with one classification head per visual attribute."""

    def __init__(self, image_size: int = 32, width: int = 32, n_values: dict[str, int] | None = None):
        super().__init__()
        n_values = n_values or {a: len(v) for a, v in VISUAL_ATTRIBUTES.items()}
        self.image_size = image_size
        w = width
        # Downsample early: full-resolution residual blocks cost 2x the compute for no accuracy at 32x32.
        self.trunk = nn.Sequential(
            nn.Conv2d(3, w, 3, 1, 1, bias=False),
            nn.BatchNorm2d(w),
            nn.SiLU(),
            _Residual(w, 2 * w, 2),
            _Residual(2 * w, 2 * w, 1),
            _Residual(2 * w, 4 * w, 2),
            _Residual(4 * w, 4 * w, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(0.2),
        )
        self.heads = nn.ModuleDict({a: nn.Linear(4 * w, n) for a, n in n_values.items()})

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(pixels)
        return {a: head(h) for a, head in self.heads.items()}


def default_judge_path() -> Path:
    return Path(str(resources.files("tailorgen") / "assets" / "judge"))


class Judge:
    """Read visual attributes off images. ``Judge()`` loads the checkpoint that ships with tailorgen."""

    def __init__(self, path: str | Path | None = None, device: str = "cpu"):
        path = Path(path) if path else default_judge_path()
        if not (path / "model.safetensors").exists():
            raise FileNotFoundError(f"no judge at {path}; train one with `tailorgen train judge --out {path}`")
        self.model = load_local_checkpoint(JudgeModel, path).to(device).eval()
        self.device = device
        self.fingerprint = f"judge:{hash_file(path / 'model.safetensors')[7:23]}"

    def probabilities(self, images: Sequence[Image.Image], batch_size: int = 256) -> dict[str, np.ndarray]:
        out: dict[str, list[np.ndarray]] = {a: [] for a in ATTRIBUTES}
        with torch.inference_mode():
            for s in range(0, len(images), batch_size):
                x = images_to_tensor(images[s : s + batch_size], self.model.image_size).to(self.device)
                for a, logits in self.model(x).items():
                    out[a].append(logits.softmax(-1).cpu().numpy())
        return {a: np.concatenate(v) for a, v in out.items()}

    def read(self, images: Sequence[Image.Image], batch_size: int = 256) -> list[dict[str, str]]:
        """One dict of attribute -> value per image."""
        probs = self.probabilities(list(images), batch_size)
        labels = {a: [VISUAL_ATTRIBUTES[a][j] for j in p.argmax(1)] for a, p in probs.items()}
        return [{a: labels[a][i] for a in ATTRIBUTES} for i in range(len(images))]


def judge_accuracy(judge: Judge, dataset_dir: str | Path, limit: int | None = None) -> dict:
    """Per-attribute accuracy of the judge on a dataset with ground truth (a shop of any seed)."""
    dataset_dir = Path(dataset_dir)
    truth_path = dataset_dir / "truth" / "items.parquet"
    if not truth_path.exists():
        raise FileNotFoundError(
            f"{dataset_dir} has no ground truth ({truth_path} is missing); "
            "the judge can only be scored on a shop built by `tailorgen world build`"
        )
    truth = pq.read_table(truth_path).to_pydict()
    ds = Dataset(dataset_dir)
    ids = truth["item_id"][:limit] if limit else truth["item_id"]
    correct = {a: 0 for a in ATTRIBUTES}
    for s in range(0, len(ids), 1024):
        reads = judge.read([ds.load_image(i) for i in ids[s : s + 1024]])
        for k, r in enumerate(reads):
            for a in ATTRIBUTES:
                correct[a] += r[a] == truth[a][s + k]
    return {
        "dataset": str(dataset_dir),
        "items": len(ids),
        "judge": judge.fingerprint,
        "accuracy": {a: correct[a] / len(ids) for a in ATTRIBUTES},
    }


@dataclass
class JudgeTrainConfig:
    train_items: int = setting(30_000, "Items in the judge's training shop.")
    train_seed: int = setting(
        3001, "Seed of the training shop: its own, neither the encoder's (1001) nor a benchmark's."
    )
    eval_items: int = setting(3_000, "Items in the held-out shop the accuracy is measured on.")
    eval_seed: int = setting(3002, "Seed of the held-out shop.")
    image_size: int = setting(32, "Image side in pixels.")
    width: int = setting(32, "Channels of the ResNet's first stage (the later stages have 2x and 4x).")
    # Category, held out: 86.8% after 5 epochs, 91.4% after 10, 95.3% after 20 (docs/benchmarks.md).
    epochs: int = setting(20, "Passes over the training shop; 20 take about 30 min on 2 cores.")
    batch_size: int = setting(128, "Images per step.")
    lr: float = setting(3e-3, "Peak learning rate (AdamW, one-cycle schedule).")
    seed: int = setting(1, "Seed of the initialization, the batch order, the augmentation and dropout.")
    threads: int = setting(2, "CPU threads torch uses.")

    def __post_init__(self):
        require(self.epochs >= 1, "epochs", self.epochs, "an integer >= 1")
        require(1 <= self.batch_size <= self.train_items, "batch_size", self.batch_size, "1..train_items")


def judge_shops(cfg: JudgeTrainConfig, work_dir: Path, progress: bool) -> tuple[TrainingShop, TrainingShop]:
    """The judge's training shop and its held-out shop (one user each: only items matter here)."""

    def shop(items: int, seed: int) -> TrainingShop:
        world = WorldConfig(n_items=items, n_users=1, seed=seed, image_size=cfg.image_size)
        return training_shop(work_dir / f"judge-{seed}-{items}", world, progress)

    return shop(cfg.train_items, cfg.train_seed), shop(cfg.eval_items, cfg.eval_seed)


def labelled_images(shop: TrainingShop, image_size: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Every item's image in [-1, 1], and its true value index per attribute (from the shop's truth/)."""
    truth = pq.read_table(shop.path / "truth" / "items.parquet").to_pydict()
    ds = Dataset(shop.path)
    ids = truth["item_id"]
    x = torch.cat(
        [images_to_tensor([ds.load_image(i) for i in ids[s : s + 2048]], image_size) for s in range(0, len(ids), 2048)]
    )
    y = {a: torch.tensor([VISUAL_ATTRIBUTES[a].index(v) for v in truth[a]]) for a in ATTRIBUTES}
    return x, y


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror and shift by up to 2 pixels, drawn from ``gen``: attributes do not depend on where a garment sits."""
    flip = (torch.rand(len(x), generator=gen) < 0.5).to(x.device)
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def train_judge(
    cfg: JudgeTrainConfig,
    out: str | Path,
    work_dir: str | Path,
    progress: bool = True,
    device: str = "cpu",
    checkpoint_every: int = CHECKPOINT_EVERY,
    stop_after: int | None = None,
) -> dict:
    """Supervised training on a shop's true attributes; evaluated on a held-out shop; saved to ``out``.

    Checkpoints go to ``out/checkpoints`` every ``checkpoint_every`` steps; a run killed on the
    way, called again with the same config and ``out``, goes on from the last one.
    """
    t0 = time.perf_counter()
    device = setup(cfg.seed, cfg.threads, device)
    train_shop, eval_shop = judge_shops(cfg, Path(work_dir), progress)
    x, y = labelled_images(train_shop, cfg.image_size)
    x, y = x.to(device), {a: v.to(device) for a, v in y.items()}
    model = JudgeModel(image_size=cfg.image_size, width=cfg.width).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(cfg.seed)  # batch order and augmentation; dropout draws from torch's own
    order = EpochOrder(len(x), cfg.batch_size, lambda n: torch.randperm(n, generator=gen))
    steps = cfg.epochs * order.steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    run = TrainingRun(
        out,
        cfg,
        steps,
        seed=cfg.seed,
        device=device,
        data={"train": train_shop.record(), "eval": eval_shop.record()},
        checkpoint_every=checkpoint_every,
        stop_after=stop_after,
        progress=progress,
        desc="train judge",
    )
    run.track(model=model, optimizer=opt, scheduler=sched, order=order, generator=gen)
    prep_seconds = time.perf_counter() - t0

    model.train()
    for step in run:
        idx = order.batch(step).to(device)
        logits = model(augment(x[idx], gen))
        loss = sum(F.cross_entropy(logits[a], y[a][idx]) for a in ATTRIBUTES)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        run.log(loss)
    model.cpu().eval()

    with run.output() as tmp:  # a crash never leaves half a judge
        model.save_pretrained(str(tmp))
        report = run.write_report(
            tmp,
            what="tailorgen judge (evaluation only, never a training signal)",
            curve_every=order.steps_per_epoch,  # one point per epoch
            parameters=sum(p.numel() for p in model.parameters()),
            prep_seconds=round(prep_seconds, 1),
            held_out=judge_accuracy(Judge(tmp), eval_shop.path),
        )
    return report

"""The judge: an attribute classifier that reads category, colour, pattern and second colour off images.

It exists for evaluation only. It never serves as a training signal or a reward (a model
optimized against its own evaluator learns to fool it), and the import-graph test enforces
that no module outside tailorgen.evaluation imports this one. It differs from the image
encoder on purpose: its own architecture (residual, with dropout), its own seed and its own
training shop, so its errors are not the encoder's errors.
"""

from __future__ import annotations

import dataclasses
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
from tqdm.auto import tqdm

from tailorgen.common import atomic_dir, hash_file, write_json
from tailorgen.common.checkpoints import load_local_checkpoint
from tailorgen.common.manifest import environment_versions, now_utc
from tailorgen.data import Dataset
from tailorgen.encoders.image import images_to_tensor
from tailorgen.world import WorldConfig
from tailorgen.world.attributes import VISUAL_ATTRIBUTES
from tailorgen.world.build import ensure_shop

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
    train_items: int = 30_000
    train_seed: int = 3001  # its own shop: neither the encoder's (1001) nor any benchmark's
    eval_items: int = 3_000
    eval_seed: int = 3002
    image_size: int = 32
    width: int = 32
    # Category, held out: 86.8% after 5 epochs, 91.4% after 10, 95.3% after 20 (docs/benchmarks.md).
    epochs: int = 20
    batch_size: int = 128
    lr: float = 3e-3
    seed: int = 1
    threads: int = 2


def train_judge(
    cfg: JudgeTrainConfig, out: str | Path, work_dir: str | Path, progress: bool = True, device: str = "cpu"
) -> dict:
    """Supervised training on a shop's true attributes; evaluated on a held-out shop; saved to ``out``."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    work_dir = Path(work_dir)

    def shop(n, seed):
        return ensure_shop(
            work_dir / f"judge-{seed}-{n}",
            WorldConfig(n_items=n, n_users=1, seed=seed, image_size=cfg.image_size),
            progress=progress,
        )

    train_dir, eval_dir = shop(cfg.train_items, cfg.train_seed), shop(cfg.eval_items, cfg.eval_seed)
    truth = pq.read_table(train_dir / "truth" / "items.parquet").to_pydict()
    ds = Dataset(train_dir)
    x = torch.cat(
        [
            images_to_tensor([ds.load_image(i) for i in truth["item_id"][s : s + 2048]], cfg.image_size)
            for s in range(0, len(truth["item_id"]), 2048)
        ]
    )
    x = x.to(device)
    y = {a: torch.tensor([VISUAL_ATTRIBUTES[a].index(v) for v in truth[a]], device=device) for a in ATTRIBUTES}

    model = JudgeModel(image_size=cfg.image_size, width=cfg.width).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps = cfg.epochs * (len(x) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    bar = tqdm(total=steps, desc="train judge", unit="step", disable=not progress)
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(x), generator=gen).to(device)
        for s in range(0, len(x) - cfg.batch_size + 1, cfg.batch_size):
            idx = perm[s : s + cfg.batch_size]
            xb = x[idx]
            flip = (torch.rand(len(xb), generator=gen) < 0.5).to(device)
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            # Shifts of up to 2 pixels: a garment's category does not depend on where it sits.
            dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            logits = model(xb)
            loss = sum(F.cross_entropy(logits[a], y[a][idx]) for a in ATTRIBUTES)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.cpu().eval()
    # Built in a temporary folder and renamed into place: a crash never leaves half a judge.
    with atomic_dir(out, overwrite=True) as tmp:
        model.save_pretrained(str(tmp))
        report = {
            "what": "tailorgen judge (evaluation only, never a training signal)",
            "created": now_utc(),
            "config": dataclasses.asdict(cfg),
            "parameters": sum(p.numel() for p in model.parameters()),
            "device": device,
            "train_seconds": round(time.perf_counter() - t0, 1),
            "held_out": judge_accuracy(Judge(tmp), eval_dir),
            "versions": environment_versions(),
        }
        write_json(tmp / "training_report.json", report)
    return report

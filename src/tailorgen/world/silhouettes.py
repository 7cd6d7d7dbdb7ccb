"""Garment silhouettes: real Fashion-MNIST images when Debian's dataset-fashion-mnist is
installed, procedural shapes otherwise (so the shop builds anywhere, with less variety)."""

from __future__ import annotations

import gzip
import os
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tailorgen.world.attributes import CATEGORIES

FASHION_MNIST_DIRS = (
    os.environ.get("TAILORGEN_FASHION_MNIST", ""),
    "/usr/share/datasets/fashion-mnist",
)
INSTALL_HINT = (
    "Fashion-MNIST was not found; the shop falls back to procedural silhouettes. "
    "For real garment silhouettes install Debian's package: `sudo apt-get install dataset-fashion-mnist` "
    "(or point TAILORGEN_FASHION_MNIST at a folder with the four *-ubyte.gz files)."
)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find_fashion_mnist() -> Path | None:
    for d in FASHION_MNIST_DIRS:
        if d and (Path(d) / "train-images-idx3-ubyte.gz").exists():
            return Path(d)
    return None


def load_fashion_mnist() -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 images (uint8, N x 28 x 28) and labels, train then test."""
    root = find_fashion_mnist()
    if root is None:
        raise FileNotFoundError(INSTALL_HINT)
    images = [_read_idx(root / f"{s}-images-idx3-ubyte.gz") for s in ("train", "t10k")]
    labels = [_read_idx(root / f"{s}-labels-idx1-ubyte.gz") for s in ("train", "t10k")]
    return np.concatenate(images), np.concatenate(labels)


def unambiguous_mask_path() -> Path:
    return Path(str(resources.files("tailorgen") / "assets" / "fashion_mnist_unambiguous.npy"))


def fit_unambiguous_mask(
    images: np.ndarray,
    labels: np.ndarray,
    threshold: float = 0.9,
    folds: int = 2,
    epochs: int = 4,
    seed: int = 0,
    progress: bool = True,
) -> tuple[np.ndarray, dict]:
    """Which silhouettes are unambiguous: a CNN that never saw them gives their label probability >= threshold.

    Fashion-MNIST has label noise and classes that overlap in shape (shirt / t-shirt / pullover /
    coat); some images are plainly another class's. A shop item must look like its category, or
    no reader, human or judge, can say what it is. So each image is scored by a small CNN trained
    on the other folds (out-of-fold, so it cannot have memorized the image's label) and kept only
    if that CNN is confident in its label. Returns the boolean mask and a report.
    """
    import torch
    import torch.nn.functional as F
    from torch import nn
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    fold_of = rng.integers(0, folds, len(images))
    x_all = torch.from_numpy(images).float().div(255).unsqueeze(1)
    y_all = torch.from_numpy(labels.astype(np.int64))
    p_label = np.zeros(len(images), np.float32)
    for fold in range(folds):
        train_idx = torch.from_numpy(np.flatnonzero(fold_of != fold))
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
        )  # fmt: skip
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        steps = epochs * (len(train_idx) // 128)
        bar = tqdm(total=steps, desc=f"silhouette filter, fold {fold + 1}/{folds}", disable=not progress)
        for _ in range(epochs):
            perm = train_idx[torch.randperm(len(train_idx))]
            for s in range(0, len(perm) - 127, 128):
                b = perm[s : s + 128]
                xb = torch.where(torch.rand(len(b), 1, 1, 1) < 0.5, x_all[b].flip(3), x_all[b])
                loss = F.cross_entropy(model(xb), y_all[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
                bar.update()
        bar.close()
        model.eval()
        test_idx = np.flatnonzero(fold_of == fold)
        with torch.no_grad():
            for s in range(0, len(test_idx), 4096):
                b = torch.from_numpy(test_idx[s : s + 4096])
                p = model(x_all[b]).softmax(-1)
                p_label[b.numpy()] = p[torch.arange(len(b)), y_all[b]].numpy()
    keep = p_label >= threshold
    report = {
        "threshold": threshold,
        "folds": folds,
        "epochs": epochs,
        "seed": seed,
        "out_of_fold_accuracy_proxy": float((p_label > 0.5).mean()),
        "kept": int(keep.sum()),
        "kept_per_category": {CATEGORIES[c]: int(keep[labels == c].sum()) for c in range(len(CATEGORIES))},
    }
    return keep, report


def load_unambiguous_mask(n_images: int) -> np.ndarray | None:
    path = unambiguous_mask_path()
    if not path.exists():
        return None
    mask = np.unpackbits(np.load(path))[:n_images].astype(bool)
    return mask


def _procedural_shape(category: str, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 filled outline of the category with jittered proportions."""
    im = Image.new("L", (28, 28), 0)
    d = ImageDraw.Draw(im)
    j = lambda a, s=1.5: float(a + rng.uniform(-s, s))  # noqa: E731
    if category in ("t-shirt", "shirt", "pullover", "coat"):
        sleeve = {"t-shirt": 10, "shirt": 16, "pullover": 20, "coat": 22}[category]
        bottom = 27 if category == "coat" else 24
        d.polygon(
            [
                (j(9), 3),
                (j(19), 3),
                (j(26), j(sleeve)),
                (j(22), j(sleeve)),
                (j(20), bottom),
                (j(8), bottom),
                (j(6), j(sleeve)),
                (j(2), j(sleeve)),
            ],
            fill=220,
        )
        if category == "shirt":
            d.line([(14, 3), (14, 24)], fill=120, width=1)
    elif category == "trousers":
        d.polygon([(j(8), 2), (j(20), 2), (j(21), 27), (j(16), 27), (14, j(10)), (j(12), 27), (j(7), 27)], fill=220)
    elif category == "dress":
        d.polygon([(j(11), 2), (j(17), 2), (j(18), 10), (j(24), 27), (j(4), 27), (j(10), 10)], fill=220)
    elif category == "sandal":
        for y in (14, 18):
            d.line([(j(3), y), (j(25), y)], fill=220, width=2)
        d.rectangle([j(2), 22, j(26), 25], fill=220)
    elif category == "sneaker":
        d.polygon([(j(2), 14), (j(12), 12), (j(20), 16), (j(26), 18), (j(26), 24), (j(2), 24)], fill=220)
    elif category == "bag":
        d.rectangle([j(4), 11, j(24), 26], fill=220)
        d.arc([j(8), 3, j(20), 17], 180, 360, fill=220, width=2)
    elif category == "ankle boot":
        d.polygon([(j(8), 3), (j(17), 3), (j(18), 15), (j(26), 19), (j(26), 26), (j(3), 26), (j(6), 15)], fill=220)
    return np.asarray(im)


class SilhouetteBank:
    """Silhouettes grouped by category; ``draw(category_index, rng)`` returns (index, 28x28 uint8)."""

    def __init__(self, use_fashion_mnist: bool = True, procedural_per_class: int = 200, seed: int = 0):
        self.source = "procedural"
        if use_fashion_mnist and find_fashion_mnist() is not None:
            images, labels = load_fashion_mnist()
            self.source = "fashion-mnist"
            keep = load_unambiguous_mask(len(images))
            if keep is not None:
                # Only silhouettes that look like their category (see fit_unambiguous_mask). Indices
                # stay those of the full dataset, so an item's silhouette_index still names its image.
                labels = np.where(keep, labels, 255)
                self.source = "fashion-mnist-unambiguous"
        else:
            if use_fashion_mnist:
                warnings.warn(INSTALL_HINT, stacklevel=2)
            rng = np.random.default_rng(seed)
            labels = np.repeat(np.arange(len(CATEGORIES)), procedural_per_class)
            images = np.stack([_procedural_shape(CATEGORIES[c], rng) for c in labels])
        self.images = images
        self.by_class = [np.flatnonzero(labels == c) for c in range(len(CATEGORIES))]

    def draw(self, category_index: int, rng: np.random.Generator) -> tuple[int, np.ndarray]:
        idx = int(rng.choice(self.by_class[category_index]))
        return idx, self.images[idx]

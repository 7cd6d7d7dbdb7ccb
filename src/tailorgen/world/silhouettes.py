"""Garment silhouettes: real Fashion-MNIST images when Debian's dataset-fashion-mnist is
installed, procedural shapes otherwise (so the shop builds anywhere, with less variety)."""

from __future__ import annotations

import gzip
import os
import warnings
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

"""A PNG grid of sample items per category, so a person can see what a shop looks like."""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from tailorgen.data import Dataset
from tailorgen.world.attributes import CATEGORIES


def sample_grid(
    dataset_dir: str | os.PathLike, out_png: str | os.PathLike, per_category: int = 10, scale: int = 3, seed: int = 0
) -> None:
    """One row per category, ``per_category`` random items each, labelled, upscaled ``scale`` times."""
    ds = Dataset(dataset_dir)
    truth = pq.read_table(ds.root / "truth" / "items.parquet", columns=["item_id", "category"]).to_pydict()
    rng = np.random.default_rng(seed)
    first = ds.load_image(truth["item_id"][0])
    cell = first.width * scale
    label_w = 90
    grid = Image.new("RGB", (label_w + per_category * cell, len(CATEGORIES) * cell), "white")
    draw = ImageDraw.Draw(grid)
    for row, category in enumerate(CATEGORIES):
        ids = [i for i, c in zip(truth["item_id"], truth["category"]) if c == category]
        draw.text((6, row * cell + cell // 2 - 6), category, fill="black")
        for col, item_id in enumerate(rng.permutation(ids)[:per_category]):
            im = ds.load_image(str(item_id)).resize((cell, cell), Image.NEAREST)
            grid.paste(im, (label_w + col * cell, row * cell))
    grid.save(out_png)

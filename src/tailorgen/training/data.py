"""What a run trains on: a shop built once and reused, its content hashes, and the order of its batches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tailorgen.data import Dataset
from tailorgen.training.errors import TrainingError
from tailorgen.world import WorldConfig
from tailorgen.world.build import ensure_shop


@dataclass(frozen=True)
class TrainingShop:
    path: Path
    hashes: dict[str, str]  # the manifest's content hash of every table and of images/

    def record(self) -> dict:
        """What a training report says about this shop."""
        return {"path": str(self.path), "hashes": self.hashes}


def data_hashes(dataset_dir: str | Path) -> dict[str, str]:
    """The content hashes a dataset's manifest records (a shop's hidden attributes are pinned by its
    config and world version, which its manifest records too)."""
    return dict(Dataset(dataset_dir).manifest.get("files", {}))


def training_shop(path: str | Path, world: WorldConfig, progress: bool = True) -> TrainingShop:
    """The shop of ``world`` at ``path``, built unless it is already there (``world.build.ensure_shop``)."""
    path = ensure_shop(path, world, progress=progress)
    return TrainingShop(path, data_hashes(path))


class EpochOrder:
    """Batches of ``batch_size`` indices into ``n`` examples, in a fresh shuffle each epoch (the remainder is dropped).

    ``permute(n)`` draws the shuffle from a generator the run checkpoints (``rng.permutation`` or
    ``lambda n: torch.randperm(n, generator=g)``). The current shuffle is part of the state, so a
    run resumed mid-epoch goes on with the same batches.
    """

    def __init__(self, n: int, batch_size: int, permute: Callable[[int], np.ndarray | torch.Tensor]):
        if not 0 < batch_size <= n:
            raise TrainingError(f"batch_size: {batch_size} does not fit {n} examples; allowed: 1..{n}")
        self.n, self.batch_size, self.permute = n, batch_size, permute
        self.steps_per_epoch = n // batch_size
        self.epoch, self.order = -1, torch.empty(0, dtype=torch.long)

    def batch(self, step: int) -> torch.Tensor:
        """The indices of optimizer step ``step`` (a CPU tensor); the first step of an epoch draws its shuffle."""
        epoch, k = divmod(step, self.steps_per_epoch)
        if epoch != self.epoch:
            self.epoch, self.order = epoch, torch.as_tensor(self.permute(self.n), dtype=torch.long)
        return self.order[k * self.batch_size : (k + 1) * self.batch_size]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "order": self.order}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.order = state["epoch"], state["order"]

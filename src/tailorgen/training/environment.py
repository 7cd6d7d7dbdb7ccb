"""Seeds, threads and the device: the first call of every training run."""

from __future__ import annotations

import random

import numpy as np
import torch

from tailorgen.common.devices import check_device
from tailorgen.training.errors import TrainingError


def resolve_device(device: str) -> str:
    """``device`` checked against this machine (``common.devices``): "auto" becomes "cuda" or "cpu"."""
    try:
        return check_device(device)
    except ValueError as e:
        raise TrainingError(str(e)) from None


def setup(seed: int, threads: int, device: str = "cpu") -> str:
    """Seed python's, numpy's and torch's global generators, set torch's threads, and return the checked device.

    Seeding the global generators makes model initialization and any library draw repeatable;
    a training loop's own draws should come from generators it hands to its ``TrainingRun``, or
    from torch's global one, which the run checkpoints too.
    """
    resolved = resolve_device(device)
    if threads < 1:
        raise TrainingError(f"threads: {threads} is not a thread count; allowed: an integer >= 1")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too
    torch.set_num_threads(threads)
    return resolved

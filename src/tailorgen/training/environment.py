"""Seeds, threads and the device: the first call of every training run."""

from __future__ import annotations

import random

import numpy as np
import torch

from tailorgen.training.errors import TrainingError

DEVICES = "cpu, cuda, cuda:N (N a GPU index) or auto (cuda if there is one, else cpu)"


def resolve_device(device: str) -> str:
    """``device`` checked against this machine: "auto" becomes "cuda" or "cpu"; an absent GPU is an error."""
    name = str(device).strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    kind, _, index = name.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise TrainingError(f"device: {device!r} is not a device tailorgen trains on; allowed: {DEVICES}")
    if not torch.cuda.is_available():
        raise TrainingError(f"device: {device!r} asked for, but this machine has no CUDA GPU; allowed here: cpu, auto")
    if index and int(index) >= torch.cuda.device_count():
        raise TrainingError(
            f"device: {device!r} asked for, but this machine has {torch.cuda.device_count()} CUDA GPU(s): "
            f"allowed: cpu, cuda, cuda:0..cuda:{torch.cuda.device_count() - 1}, auto"
        )
    return name


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

"""setup: seeds and threads, and a device checked against this machine."""

import random

import numpy as np
import pytest
import torch

from tailorgen.training import TrainingError, resolve_device, setup


def test_devices_are_checked_against_this_machine():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "cuda:x", "cuda:99"):
        with pytest.raises(TrainingError, match=f"device: '{bad}'.*allowed") as e:
            resolve_device(bad)
        assert isinstance(e.value, ValueError)
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="no CUDA GPU; allowed here: cpu, auto"):
            resolve_device("cuda")


def test_setup_seeds_every_global_generator():
    threads = torch.get_num_threads()
    draws = []
    for _ in range(2):
        setup(5, threads, "cpu")
        draws.append((random.random(), np.random.rand(), torch.rand(1).item()))
    assert draws[0] == draws[1]
    with pytest.raises(TrainingError, match="threads: 0"):
        setup(5, 0, "cpu")

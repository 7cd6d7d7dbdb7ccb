"""One training loop's bookkeeping: progress, the loss log, periodic checkpoints, resume and the final folder.

A checkpoint holds everything the loop's future depends on: the state of every tracked object
(models, optimizers, LR schedulers, EMA copies, batch orders, numpy and torch generators), the
global torch (CPU and CUDA), python and numpy generators, the step and the loss history. So a
run killed at any point and started again with the same config and OUT ends with the weights an
uninterrupted run would have (bit for bit on a CPU; on a GPU up to its non-deterministic kernels).
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tailorgen.common import atomic_dir, atomic_write_bytes
from tailorgen.training.config import config_hash
from tailorgen.training.errors import TrainingError
from tailorgen.training.report import write_report

CHECKPOINT_EVERY = 500  # steps; at the encoder's and judge's defaults, a few minutes of a 2-core CPU
CHECKPOINT_FORMAT = 1


class TrainingStopped(Exception):  # noqa: N818 (not an error: the run stopped where it was asked to)
    """The run stopped after ``stop_after`` steps, with a checkpoint; the same call again resumes it."""


class TrainingRun:
    """Iterate over it for the steps still to do; ``track`` what a checkpoint must hold first.

    ``out`` gets ``checkpoints/`` every ``checkpoint_every`` steps (0: never). If it already holds
    a checkpoint of this config, iterating starts after that checkpoint's step. ``stop_after``
    ends this session after that many steps with a checkpoint (for time-boxed machines). ``stop()``
    inside the loop ends the run after the current step (early stopping), that step counted and logged.
    """

    def __init__(
        self,
        out: str | Path,
        config: Any,
        steps: int,
        *,
        seed: int,
        device: str = "cpu",
        data: dict | None = None,
        checkpoint_every: int = CHECKPOINT_EVERY,
        keep_checkpoints: bool = False,
        stop_after: int | None = None,
        progress: bool = True,
        desc: str = "train",
        log_every: int = 25,
    ):
        if checkpoint_every < 0:
            raise TrainingError(f"checkpoint_every: {checkpoint_every}; allowed: 0 (never) or a step count >= 1")
        if stop_after is not None and stop_after < 1:
            raise TrainingError(f"stop_after: {stop_after}; allowed: none or a step count >= 1")
        self.out, self.config, self.steps = Path(out), config, steps
        if self.out.exists() and not is_training_output(self.out):
            raise TrainingError(
                f"out: {self.out} exists and holds neither a trained model (training_report.json) nor a run's "
                "checkpoints, and a finished run replaces the whole folder; choose another folder"
            )
        self.checkpoint_dir = self.out / "checkpoints"
        self.seed, self.device, self.data = seed, device, data or {}
        self.checkpoint_every, self.keep_checkpoints, self.stop_after = checkpoint_every, keep_checkpoints, stop_after
        self.progress, self.desc, self.log_every = progress, desc, log_every
        self.config_hash = config_hash(config)
        self.tracked: dict[str, Any] = {}
        self.history: dict[str, list[float]] = {"loss": []}
        self._pending: dict[str, list] = {}
        self.step = 0  # optimizer steps done
        self.resumed_from: int | None = None
        self._started, self._seconds_before = time.perf_counter(), 0.0
        self._finished: float | None = None
        self._stop_requested = False

    def stop(self) -> None:
        """End the run after the current step (a ``break`` would leave that step uncounted and unlogged)."""
        self._stop_requested = True

    def track(self, **objects: Any) -> None:
        """Objects a checkpoint holds: anything with state_dict/load_state_dict; numpy and torch generators."""
        for name, obj in objects.items():
            _state_of(obj, name)  # fails now, not at the first checkpoint
            self.tracked[name] = obj

    def __iter__(self) -> Iterator[int]:
        self._resume()
        start = self.step
        bar = tqdm(total=self.steps, initial=start, desc=self.desc, unit="step", disable=not self.progress)
        try:
            for step in range(start, self.steps):
                yield step
                self.step = step + 1
                bar.update()
                if self.step % self.log_every == 0 or self.step == self.steps:
                    self._flush()
                    if self.history["loss"]:
                        bar.set_postfix(loss=f"{np.mean(self.history['loss'][-self.log_every :]):.4f}")
                if self._stop_requested:
                    break
                due = self.checkpoint_every and self.step % self.checkpoint_every == 0
                stop = self.stop_after and self.step - start >= self.stop_after
                if self.step < self.steps and (due or stop):
                    path = self.save_checkpoint()
                if self.step < self.steps and stop:
                    raise TrainingStopped(
                        f"stopped after step {self.step} of {self.steps} (stop_after={self.stop_after}); "
                        f"{path} holds the run: the same call with the same out resumes it"
                    )
        finally:
            bar.close()
        self._flush()
        self._finished = time.perf_counter()

    def log(self, loss: torch.Tensor | float, **series: torch.Tensor | float) -> None:
        """Record this step's loss (and any other named series); tensors are read in batches, not each step."""
        for name, value in {"loss": loss, **series}.items():
            self._pending.setdefault(name, []).append(value.detach() if torch.is_tensor(value) else float(value))

    def _flush(self) -> None:
        # Reading a GPU tensor waits for the GPU: one read per log_every steps, not one per step.
        for name, values in self._pending.items():
            tensors = [v for v in values if torch.is_tensor(v)]
            if len(tensors) == len(values) and values:
                floats = torch.stack([v.float().reshape(()) for v in tensors]).cpu().tolist()
            else:
                floats = [float(v) for v in values]
            self.history.setdefault(name, []).extend(floats)
        self._pending = {}

    @property
    def seconds(self) -> float:
        """Seconds from the run's creation to the end of its loop, earlier sessions (to their last checkpoint) too."""
        return self._seconds_before + (self._finished or time.perf_counter()) - self._started

    def curve(self, every: int, name: str = "loss") -> list[float]:
        """Means of ``every`` consecutive logged values of a series."""
        values = self.history.get(name, [])
        return [float(np.mean(values[i : i + every])) for i in range(0, len(values), every)]

    def checkpoints(self) -> list[Path]:
        """This OUT's complete checkpoints, oldest first (a write in progress has a temporary name)."""
        return sorted(self.checkpoint_dir.glob("step-*.pt")) if self.checkpoint_dir.is_dir() else []

    def save_checkpoint(self) -> Path:
        """Write the run's state to OUT/checkpoints/step-N.pt (temp file, then rename) and drop older ones."""
        self._flush()
        state = {
            "format": CHECKPOINT_FORMAT,
            "config_hash": self.config_hash,
            "step": self.step,
            "seconds": self.seconds,
            "history": self.history,
            "state": {name: _state_of(obj, name) for name, obj in self.tracked.items()},
            "rng": _global_rng_states(),
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        path = self.checkpoint_dir / f"step-{self.step:08d}.pt"
        atomic_write_bytes(path, buffer.getvalue())
        for old in self.checkpoints():
            if old != path:
                old.unlink()
        return path

    def _resume(self) -> None:
        found = self.checkpoints()
        if not found:
            return
        path = found[-1]
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, pickle.UnpicklingError, EOFError) as e:
            raise TrainingError(f"{path}: not a readable checkpoint ({e}); delete it to start over") from e
        if ckpt.get("config_hash") != self.config_hash:
            raise TrainingError(
                f"{path} belongs to a run of another config ({ckpt.get('config_hash')}, this one is "
                f"{self.config_hash}): delete {self.checkpoint_dir} to start over, or choose another out"
            )
        if set(ckpt["state"]) != set(self.tracked):
            raise TrainingError(f"{path} holds {sorted(ckpt['state'])}; this run tracks {sorted(self.tracked)}")
        for name, obj in self.tracked.items():
            _load_state(obj, ckpt["state"][name], self.device)
        _set_global_rng_states(ckpt["rng"])
        self.step = self.resumed_from = ckpt["step"]
        self.history, self._seconds_before = ckpt["history"], ckpt["seconds"]

    @contextlib.contextmanager
    def output(self) -> Iterator[Path]:
        """A temporary folder that replaces OUT when the block succeeds; the checkpoints go with the old OUT
        (or, with ``keep_checkpoints``, move into the new one)."""
        with atomic_dir(self.out, overwrite=True, replaceable=is_training_output, what="model") as tmp:
            yield tmp
            if self.keep_checkpoints and self.checkpoint_dir.is_dir():
                os.replace(self.checkpoint_dir, tmp / "checkpoints")

    def write_report(self, folder: str | Path, what: str, curve_every: int = 100, **extra: Any) -> dict:
        """training_report.json in ``folder``: the run's config, seed, data, device, time, steps and loss curve."""
        return write_report(
            folder,
            what=what,
            config=self.config,
            seed=self.seed,
            device=self.device,
            data=self.data,
            steps=self.steps,
            resumed_from=self.resumed_from,
            train_seconds=self.seconds,
            loss_curve=self.curve(curve_every),
            **extra,
        )


def is_training_output(folder: Path) -> bool:
    """Whether a run may write into ``folder`` and then replace it: empty, a trained model, or only checkpoints."""
    if not folder.is_dir():
        return False
    names = {p.name for p in folder.iterdir()}
    return "training_report.json" in names or names <= {"checkpoints"}


def _state_of(obj: Any, name: str) -> Any:
    if isinstance(obj, np.random.Generator):
        return obj.bit_generator.state
    if isinstance(obj, torch.Generator):
        return obj.get_state()
    if hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict"):
        return obj.state_dict()
    raise TrainingError(
        f"{name}: a {type(obj).__name__} cannot be checkpointed; allowed: objects with state_dict and "
        "load_state_dict (modules, optimizers, schedulers, EMA), numpy and torch generators"
    )


def _load_state(obj: Any, state: Any, device: str) -> None:
    if isinstance(obj, np.random.Generator):
        obj.bit_generator.state = state
    elif isinstance(obj, torch.Generator):
        obj.set_state(state)
    else:
        obj.load_state_dict(state)  # modules copy into their tensors; optimizers move state to their params
        if hasattr(obj, "shadow_params"):  # diffusers' EMAModel keeps the loaded tensors where they are: the CPU
            obj.to(device=device)


def _global_rng_states() -> dict:
    numpy_state = np.random.get_state(legacy=False)
    # Plain lists: a checkpoint loads with weights_only=True, which refuses numpy arrays.
    numpy_state["state"] = {"key": numpy_state["state"]["key"].tolist(), "pos": numpy_state["state"]["pos"]}
    states = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": numpy_state}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_global_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    numpy_state = dict(states["numpy"])
    numpy_state["state"] = {
        "key": np.array(numpy_state["state"]["key"], dtype=np.uint32),
        "pos": numpy_state["state"]["pos"],
    }
    np.random.set_state(numpy_state)
    if "cuda" in states and torch.cuda.is_available() and torch.cuda.device_count() == len(states["cuda"]):
        torch.cuda.set_rng_state_all(states["cuda"])

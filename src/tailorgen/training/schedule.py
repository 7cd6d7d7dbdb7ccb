"""Learning-rate schedules written as functions of the step, so a resumed run needs no scheduler state."""

from __future__ import annotations

import math

import torch


def warmup_cosine(step: int, peak: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to ``peak`` over ``warmup_steps``, times a cosine decay to 0 over ``total_steps``."""
    return peak * min(1, (step + 1) / warmup_steps) * 0.5 * (1 + math.cos(math.pi * step / total_steps))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr

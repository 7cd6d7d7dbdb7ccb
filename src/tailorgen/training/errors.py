"""The training toolkit's errors: ValueErrors that name the parameter (or key) and what it allows."""

from __future__ import annotations


class TrainingError(ValueError):
    """A training run cannot start or go on as asked: a bad device, or a checkpoint of another config."""


class ConfigError(TrainingError):
    """A config key or value that the config dataclass does not accept."""

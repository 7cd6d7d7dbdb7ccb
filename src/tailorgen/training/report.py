"""training_report.json: what a trained model is and how it came to be."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tailorgen.common import environment_versions, write_json
from tailorgen.common.manifest import now_utc


def write_report(
    folder: str | Path,
    *,
    what: str,
    config: Any,
    seed: int,
    device: str,
    data: dict,
    steps: int,
    resumed_from: int | None,
    train_seconds: float,
    loss_curve: list[float],
    **extra: Any,
) -> dict:
    """Write ``folder/training_report.json`` (temp file, then rename) and return it.

    ``data`` names each dataset the run read with its content hashes; ``extra`` holds what is
    particular to the model (held-out metrics, parameter counts, more curves).
    """
    report = {
        "what": what,
        "created": now_utc(),
        "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config),
        "seed": seed,
        "device": device,
        "data": data,
        "steps": steps,
        "resumed_from": resumed_from,  # the step a killed run went on from, or None
        "train_seconds": round(train_seconds, 1),
        "loss_curve": loss_curve,
        **extra,
        "versions": environment_versions(),
    }
    write_json(Path(folder) / "training_report.json", report)
    return report

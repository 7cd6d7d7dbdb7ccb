"""training_report.json: what a trained model is and how it came to be."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from tailorgen.common import environment_versions, read_json, write_json
from tailorgen.common.manifest import now_utc
from tailorgen.training.config import config_as_json
from tailorgen.training.data import data_hashes


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


def trained_with(folder: str | Path, config: Any, dataset_dir: str | Path) -> bool:
    """Whether ``folder`` holds a model its report says was trained with ``config`` on ``dataset_dir``'s data.

    A field added to the config since the report was written reads as its default (a new field's
    default keeps the old behaviour: that is the rule for adding one).
    """
    path = Path(folder) / "training_report.json"
    if not path.exists():
        return False
    report = read_json(path)
    defaults = {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}
    stored = json.loads(json.dumps(defaults, default=str)) | report.get("config", {})
    same_data = report.get("data", {}).get("dataset", {}).get("hashes") == data_hashes(dataset_dir)
    return same_data and stored == config_as_json(config)

"""Loading our small PyTorchModelHubMixin checkpoints quietly."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def load_local_checkpoint(model_cls: type[T], path: str | Path) -> T:
    """``model_cls.from_pretrained(path)`` for a local folder.

    huggingface_hub prints "Loading weights from local directory" to stdout on every local load,
    which would corrupt `--json` output of the CLI, so the print is swallowed here.
    """
    with contextlib.redirect_stdout(io.StringIO()):
        return model_cls.from_pretrained(str(path))  # type: ignore[attr-defined]

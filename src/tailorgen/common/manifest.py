"""JSON manifests: config, seed, library versions and content hashes beside every artifact."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
from pathlib import Path
from typing import Any

from tailorgen.common.atomic import atomic_write_text

_TRACKED_PACKAGES = (
    "tailorgen",
    "torch",
    "numpy",
    "pyarrow",
    "pillow",
    "transformers",
    "diffusers",
    "sentence-transformers",
    "faiss-cpu",
    "scikit-learn",
)


def environment_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def now_utc() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from e


def write_run_manifest(
    run_dir: str | os.PathLike, command: str, config: dict, seed: int | None, artifacts: dict[str, str | os.PathLike]
) -> dict:
    """Record how a run directory came to be: command, config, seed, versions and artifact hashes."""
    from tailorgen.common.hashing import hash_file, hash_tree

    run_dir = Path(run_dir)
    hashes = {}
    for name, path in artifacts.items():
        p = Path(path)
        hashes[name] = {"path": os.path.relpath(p, run_dir), "hash": hash_tree(p) if p.is_dir() else hash_file(p)}
    manifest = {
        "command": command,
        "created": now_utc(),
        "seed": seed,
        "config": config,
        "versions": environment_versions(),
        "artifacts": hashes,
    }
    write_json(run_dir / "manifest.json", manifest)
    return manifest

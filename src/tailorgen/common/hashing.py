"""Content hashes recorded in manifests, so a result can be tied to its exact inputs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CHUNK = 1 << 20


def hash_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hash_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def hash_tree(root: str | os.PathLike) -> str:
    """One hash over every file's relative path and bytes, in sorted order."""
    root = Path(root)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(b"\0")
        with open(p, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return "sha256:" + h.hexdigest()


def component_hashes(folder: str | Path, parts: tuple[str, ...]) -> dict[str, str]:
    """sha256 of each part's safetensors weights in a diffusers-style folder ("unknown" where a part has none).

    Names a saved model by its content, not its folder, which may be moved or replaced.
    """
    out = {}
    for part in parts:
        weights = sorted((Path(folder) / part).glob("*.safetensors"))
        out[part] = hash_file(weights[0]) if weights else "unknown"
    return out

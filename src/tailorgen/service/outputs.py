"""Generated images and their records on disk, under request ids the server makes.

Each request's files go in ``OUTPUTS/<id>/``, where ``<id>`` is a random 32-hex-digit string; a
folder appears only complete (written in a temporary sibling, then renamed). A client's strings
never become a path: URLs name the request id and a file inside it, both checked against fixed
patterns, and the resolved path must stay inside the folder.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from tailorgen.common import atomic_dir
from tailorgen.data.ids import is_inside

REQUEST_ID = re.compile(r"[0-9a-f]{32}")
# What a request folder holds: record.json and PNGs, possibly one folder level down (I-AM-G's USER/ITEM__METHOD).
FILE = re.compile(r"([A-Za-z0-9_~.-]{1,120}/){0,2}[A-Za-z0-9_~-]{1,120}\.(png|json)")
URL_PREFIX = "/outputs"


class Outputs:
    def __init__(self, root: Path, keep: int = 5000):
        """``keep``: request folders kept; past that, the oldest go (a server must not fill its disk)."""
        self.root, self.keep = Path(root), keep
        self.root.mkdir(parents=True, exist_ok=True)

    def write(self, fill: Callable[[Path], dict]) -> tuple[str, dict]:
        """``fill(folder)`` writes a request's files into ``folder`` and returns its record (file
        paths relative to ``folder``); the folder becomes ``OUTPUTS/<new id>`` only when it is done."""
        request_id = uuid.uuid4().hex
        with atomic_dir(self.root / request_id, what="request output") as tmp:
            record = fill(tmp)
        self.prune()
        return request_id, record

    def prune(self) -> list[str]:
        """Remove the oldest request folders beyond ``keep``; their ids."""
        folders = [p for p in self.root.iterdir() if p.is_dir() and REQUEST_ID.fullmatch(p.name)]
        if len(folders) <= self.keep:
            return []
        folders.sort(key=lambda p: p.stat().st_mtime_ns)
        old = folders[: len(folders) - self.keep]
        for folder in old:
            shutil.rmtree(folder, ignore_errors=True)
        return [p.name for p in old]

    def url(self, request_id: str, relative: str) -> str:
        return f"{URL_PREFIX}/{request_id}/{relative}"

    def path(self, request_id: str, relative: str) -> Path | None:
        """The file a URL names, or None if the URL is not one this store makes or the file is not there."""
        if not REQUEST_ID.fullmatch(request_id) or not FILE.fullmatch(relative) or ".." in relative.split("/"):
            return None
        folder = self.root / request_id
        path = folder / relative
        return path if path.is_file() and is_inside(path, folder) else None

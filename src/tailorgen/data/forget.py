"""Forgetting a user in a dataset's tables: their interactions (with ratings and reviews) and
their queries leave the Parquet files, the manifest's hashes and counts follow, and the splits
(made from the old interactions) are dropped, to be made again.

``tables_without_user`` rewrites a *copy* of the dataset in place (``service.forget`` makes the
copy and swaps it in whole), so a crash leaves the original untouched.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from tailorgen.common import hash_file, read_json, write_json
from tailorgen.data.schema import TABLES
from tailorgen.data.store import ROW_GROUP_ROWS


def _rewrite(path: Path, user: str) -> int:
    """Drop ``user``'s rows from one Parquet table; the number dropped."""
    table = pq.read_table(path)
    keep = pc.not_equal(table.column("user_id"), user)
    kept = table.filter(pc.fill_null(keep, True))
    if len(kept) == len(table):
        return 0
    tmp = path.with_name(f".{path.name}.partial")
    pq.write_table(kept, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    os.replace(tmp, path)
    return len(table) - len(kept)


def tables_without_user(root: Path, user: str) -> dict:
    """Remove ``user`` from the dataset copy at ``root``; what was removed."""
    root = Path(root)
    removed = {}
    for name in ("interactions", "queries"):
        path = root / TABLES[name][0]
        removed[name] = _rewrite(path, user) if path.is_file() else 0
    splits = sorted(p.name for p in (root / "splits").iterdir()) if (root / "splits").is_dir() else []
    shutil.rmtree(root / "splits", ignore_errors=True)
    _update_manifest(root)
    _clean_import_report(root, user)
    return {"removed": removed, "splits_dropped": splits}


def _update_manifest(root: Path) -> None:
    manifest = read_json(root / "manifest.json")
    inter = pq.read_table(root / TABLES["interactions"][0], columns=["user_id"])
    for name in ("interactions", "queries"):
        filename = TABLES[name][0]
        if (root / filename).is_file():
            manifest["files"][filename] = hash_file(root / filename)
    counts = manifest.setdefault("counts", {})
    counts["interactions"], counts["users"] = len(inter), len(inter.column("user_id").unique())
    if (root / TABLES["queries"][0]).is_file():
        counts["queries"] = pq.read_metadata(root / TABLES["queries"][0]).num_rows
    write_json(root / "manifest.json", manifest)


def _clean_import_report(root: Path, user: str) -> None:
    """An import's skipped rows may quote the user's id or text: those entries go too."""
    path = root / "import_report.json"
    if not path.is_file():
        return
    report = read_json(path)
    skipped = report.get("skipped")
    if isinstance(skipped, list):
        report["skipped"] = [s for s in skipped if user not in json.dumps(s, ensure_ascii=False)]
        write_json(path, report)

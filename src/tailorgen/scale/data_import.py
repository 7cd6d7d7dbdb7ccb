"""`tailorgen scale import`: an Amazon Reviews dump in shards, each shard read and cleaned by a worker.

Big dumps come in several files (a category each, or one file cut with ``split -l``); each file
is one partition, and the workers run the very functions ``tailorgen data import`` runs on its
one pair of files (``adapters.amazon.read_items`` and ``read_interactions``):

1. map: each metadata shard read and its items cleaned, with the file and line of each kept id;
2. reduce: the shards' items in order; an id that an earlier shard already gave is skipped and
   reported as the single-machine import reports a repeated id (first row wins);
3. map: the item ids, sent once to every worker (one Arrow array), and each reviews shard cleaned
   against them into an Arrow table;
4. reduce: the tables in shard order, written with the items by ``DatasetWriter`` (built in a
   temporary folder and renamed in whole: a failed or killed import writes nothing, and an
   existing dataset stays as it was until the new one is complete).

Every shard's skips end up in the one ``import_report.json``. The dataset equals the single-machine
import of the shards concatenated (tests/scale). The client holds the cleaned tables in memory to
write them (as Arrow columns): the next step for dumps beyond one machine's memory is a Parquet
part per shard, which ``Dataset`` does not read yet.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from tailorgen.data.adapters.amazon import FORMATS, import_options, read_interactions, read_items
from tailorgen.data.clean import Provenance
from tailorgen.data.errors import DataError, ImportReport
from tailorgen.data.schema import INTERACTIONS_SCHEMA
from tailorgen.data.store import DatasetWriter
from tailorgen.scale.jobs import Partition, partitions, run_partitions


def shard_files(patterns: Sequence[str | os.PathLike], what: str) -> list[Path]:
    """Each of ``patterns`` a file or a glob pattern (its matches sorted), in the order given; no file twice."""
    files: list[Path] = []
    for pattern in map(os.fspath, patterns):
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise FileNotFoundError(f"{what}: no file matches {pattern!r}")
        files += [Path(m).resolve() for m in matches]
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"{what}: {f} is not a file")
    if len(set(files)) != len(files):
        raise ValueError(f"{what}: a file is given twice; each shard once")
    if not files:
        raise ValueError(f"{what}: give at least one file")
    return files


def import_on_dask(
    client,
    fmt: str,
    reviews: Sequence[str | os.PathLike],
    meta: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    strict: bool = False,
    progress: bool = True,
) -> Path:
    """Import the shards ``reviews`` and ``meta`` (files or glob patterns) of an Amazon dump into ``out``."""
    if fmt not in FORMATS:
        raise ValueError(f"scale import reads the Amazon dumps: format must be one of {sorted(FORMATS)}, got {fmt!r}")
    reviews, meta = shard_files(reviews, "reviews"), shard_files(meta, "meta")
    report = ImportReport(strict=strict)
    options = import_options(strict)
    source = {"format": fmt, "sources": {"reviews": list(map(str, reviews)), "meta": list(map(str, meta))}}
    source["options"] = options | {"shards": {"reviews": len(reviews), "meta": len(meta)}}
    with DatasetWriter(Path(out), source=source, overwrite=overwrite, report=report, sources=[*reviews, *meta]) as w:
        # 1-2. Items, shard by shard, then the shards joined in order.
        items = join_items(by_shard(client, items_partition, meta, fmt, strict, desc="meta", progress=progress), report)
        # 3-4. Interactions against the known ids, sent to each worker once.
        # As an Arrow array: Dask walks a Python list or set element by element when it sends one (24 s
        # for 340,000 ids to 2 workers); an Arrow array goes in one buffer (0.05 s).
        [known] = client.scatter([pa.array([it["item_id"] for it in items], pa.string())], broadcast=True)
        parts = by_shard(client, interactions_partition, reviews, known, fmt, strict, desc="reviews", progress=progress)
        tables = []
        for table, shard_report in parts:
            report.merge(shard_report)
            tables.append(table)
        w.set_tables(
            items=items, interactions=pa.concat_tables(tables) if tables else INTERACTIONS_SCHEMA.empty_table()
        )
    return Path(out)


def by_shard(client, fn, files: list[Path], *args, desc: str, progress: bool) -> list:
    """``fn(part, file, *args)`` for each of ``files`` on the cluster, a task a file; the results in file order.

    A shard's bad data (a DataError: a bad row with ``strict``, a truncated file) comes back as its
    result, not as a failed task: every shard runs, and the error raised is the first in file order,
    the one the single-machine import of the files concatenated stops at (not whichever worker
    finished first), with no retries of an error that would only repeat.
    """
    done = run_partitions(
        client, fn, partitions(len(files), 1), *args, own=lambda part: (str(files[part.index]),), desc=desc,
        progress=progress,
    )  # fmt: skip
    results = [done[i] for i in range(len(files))]
    if bad := next((r for r in results if isinstance(r, DataError)), None):
        raise bad
    return results


def items_partition(
    part: Partition, path: str, fmt: str, strict: bool
) -> tuple[list[dict], dict, ImportReport] | DataError:
    """On a worker: one metadata shard's items, each kept id's (file, line), and the shard's skips (or its error)."""
    report, where = ImportReport(strict=strict), {}
    try:
        items = read_items(FORMATS[fmt], Path(path), report, where)
    except DataError as e:
        return e
    return items, where, report


def interactions_partition(
    part: Partition, path: str, known: pa.Array, fmt: str, strict: bool
) -> tuple[pa.Table, ImportReport] | DataError:
    """On a worker: one reviews shard's interactions with a known item (``known``: the ids), its skips (or error)."""
    report = ImportReport(strict=strict)
    try:
        return read_interactions(FORMATS[fmt], Path(path), set(known.to_pylist()), report), report
    except DataError as e:
        return e


def join_items(parts: list[tuple[list[dict], dict, ImportReport]], report: ImportReport) -> list[dict]:
    """The shards' items in order, each id once (its first row, as ``clean_items`` keeps within a file)."""
    seen: dict[str, Provenance] = {}
    kept = []
    for items, where, shard_report in parts:
        report.merge(shard_report)
        for item in items:
            item_id, (file, line) = item["item_id"], where[item["item_id"]]
            if item_id in seen:
                # One file read whole would skip this row at its id, before reading its price.
                report.withdraw(file, line, "price")
                first = seen[item_id]
                report.skip(file, line, "item_id", f"duplicate id: '{item_id}' first seen at {first[0]}:{first[1]}")
                continue
            seen[item_id] = (file, line)
            kept.append(item)
    return kept

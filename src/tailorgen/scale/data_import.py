"""`tailorgen scale import`: an Amazon Reviews dump in shards, each shard read and cleaned by a worker.

Big dumps come in several files (a category each, or one file cut with ``split -l``); each file
is one partition, and the workers run the very functions ``tailorgen data import`` runs on its
one pair of files (``adapters.amazon.read_items`` and ``read_interactions``):

1. map: each metadata shard read and its items cleaned, with the file and line of each kept id;
2. reduce: the shards' items in order; an id that an earlier shard already gave is skipped and
   reported as the single-machine import reports a repeated id (first row wins);
3. map: the item ids, sent once to every worker (one Arrow array), and each reviews shard cleaned
   against them and written by its worker as a Parquet part (through a temporary file);
4. reduce: ``DatasetWriter`` writes the items and streams the parts, in shard order, into
   ``interactions.parquet`` (in a temporary folder renamed in whole: a failed or killed import
   writes nothing, and an existing dataset stays as it was until the new one is complete).

Every shard's skips end up in the one ``import_report.json``. The dataset equals the single-machine
import of the shards concatenated (tests/scale). Items travel as Arrow tables; the client holds the
items and one part of interactions at a time, never all the interactions.
"""

from __future__ import annotations

import glob
import io
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tailorgen.common import atomic_write_bytes
from tailorgen.data.adapters.amazon import FORMATS, import_options, read_interactions, read_items
from tailorgen.data.clean import Provenance
from tailorgen.data.errors import DataError, ImportReport
from tailorgen.data.schema import INTERACTIONS_SCHEMA, ITEMS_SCHEMA
from tailorgen.data.store import DatasetWriter, ParquetParts, to_table
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
    # Where the workers write their parts; named as a temporary folder of ``out``, so that the next write
    # of ``out`` removes it if this process is killed before its ``finally``.
    staging = Path(out).resolve().with_name(f".{Path(out).name}.partial-{os.getpid()}-import-parts")
    try:
        with DatasetWriter(
            Path(out), source=source, overwrite=overwrite, report=report, sources=[*reviews, *meta]
        ) as w:
            # 1-2. Items, shard by shard, then the shards joined in order.
            parts = by_shard(client, items_partition, meta, fmt, strict, desc="meta", progress=progress)
            items = join_items(parts, report)
            # 3-4. Interactions against the known ids, sent to each worker once.
            # As an Arrow array: Dask walks a Python list or set element by element when it sends one (24 s
            # for 340,000 ids to 2 workers); an Arrow array goes in one buffer (0.05 s).
            [known] = client.scatter([items.column("item_id").combine_chunks()], broadcast=True)
            staging.mkdir()
            written = by_shard(
                client, interactions_partition, reviews, known, fmt, strict, str(staging), desc="reviews",
                progress=progress,
            )  # fmt: skip
            for _, shard_report in written:
                report.merge(shard_report)
            w.set_tables(items=items, interactions=ParquetParts(tuple(Path(p) for p, _ in written)))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
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
) -> tuple[pa.Table, str, list[int], ImportReport] | DataError:
    """On a worker: one metadata shard's items (an Arrow table), its file and each item's line there, and the
    shard's skips (or its error)."""
    report, where = ImportReport(strict=strict), {}
    try:
        items = read_items(FORMATS[fmt], Path(path), report, where)
    except DataError as e:
        return e
    lines = [where[it["item_id"]][1] for it in items]
    file = where[items[0]["item_id"]][0] if items else path
    return to_table(items, ITEMS_SCHEMA, "items"), file, lines, report


def interactions_partition(
    part: Partition, path: str, known: pa.Array, fmt: str, strict: bool, staging: str
) -> tuple[str, ImportReport] | DataError:
    """On a worker: one reviews shard's interactions with a known item (``known``: the ids), written as a
    Parquet part in ``staging`` (through a temporary file); its path and skips (or its error)."""
    report = ImportReport(strict=strict)
    try:
        rows = read_interactions(FORMATS[fmt], Path(path), set(known.to_pylist()), report)
    except DataError as e:
        return e
    target, buffer = Path(staging) / f"{part.name}.parquet", io.BytesIO()
    pq.write_table(to_table(rows, INTERACTIONS_SCHEMA, "interactions"), buffer)
    atomic_write_bytes(target, buffer.getvalue())  # a retried task rewrites it whole
    return str(target), report


def join_items(parts: list[tuple[pa.Table, str, list[int], ImportReport]], report: ImportReport) -> pa.Table:
    """The shards' items in order, each id once (its first row, as ``clean_items`` keeps within a file)."""
    seen: dict[str, Provenance] = {}
    tables = []
    for table, file, lines, shard_report in parts:
        report.merge(shard_report)
        keep = []
        for item_id, line in zip(table.column("item_id").to_pylist(), lines, strict=True):
            keep.append(item_id not in seen)
            if not keep[-1]:
                # One file read whole would skip this row at its id, before reading its price.
                report.withdraw(file, line, "price")
                first = seen[item_id]
                report.skip(file, line, "item_id", f"duplicate id: '{item_id}' first seen at {first[0]}:{first[1]}")
            else:
                seen[item_id] = (file, line)
        tables.append(table.filter(pa.array(keep, pa.bool_())))
    return pa.concat_tables(tables) if tables else ITEMS_SCHEMA.empty_table()

"""Read and write datasets in the on-disk schema (see tailorgen.data.schema).

Writers build the whole dataset in a temporary directory and rename it into place
only when every table validated, so a failed import never leaves a half-written
dataset and never touches an existing one.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from tailorgen import __version__
from tailorgen.common import atomic_dir, hash_file, hash_tree, read_json, write_json
from tailorgen.common.manifest import environment_versions, now_utc
from tailorgen.data.errors import DataError, ImportReport, UnknownIdError
from tailorgen.data.ids import id_file_name, resolve_inside
from tailorgen.data.schema import (
    INTERACTIONS_SCHEMA,
    ITEMS_SCHEMA,
    QUERIES_SCHEMA,
    SCHEMA_VERSION,
    TABLES,
)

# Rows per Parquet row group: a reader of a slice (a Dask worker's partition, `Dataset.item_rows`)
# decodes only the groups that hold it, not a million-row table (pyarrow's default group).
ROW_GROUP_ROWS = 16_384


def to_table(rows_or_table: list[dict] | pa.Table, schema: pa.Schema, name: str) -> pa.Table:
    if isinstance(rows_or_table, pa.Table):
        missing = [f.name for f in schema if f.name not in rows_or_table.column_names and not f.nullable]
        if missing:
            raise DataError(name, None, missing[0], "required column missing")
        cols = [
            rows_or_table.column(f.name)
            if f.name in rows_or_table.column_names
            else pa.nulls(len(rows_or_table), f.type)
            for f in schema
        ]
        try:
            return pa.Table.from_arrays([c.cast(f.type) for c, f in zip(cols, schema)], schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise DataError(name, None, None, f"does not fit the schema: {e}") from e
    try:
        return pa.Table.from_pylist(rows_or_table, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        # Find the first offending row and field so the message says where to look.
        for i, row in enumerate(rows_or_table):
            for f in schema:
                try:
                    pa.array([row.get(f.name)], type=f.type)
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    raise DataError(name, i, f.name, f"value {row.get(f.name)!r} is not {f.type}") from e
        raise DataError(name, None, None, f"does not fit the schema: {e}") from e


@dataclass(frozen=True)
class ParquetParts:
    """A table given as Parquet files of its rows in order (written elsewhere: a cluster's workers).

    ``DatasetWriter`` streams them into the table's one file a part at a time, checking each as it
    checks a table in memory, so the writer never holds the whole table."""

    paths: tuple[Path, ...]


def count_items_with_image(items: pa.Table) -> int:
    has_image = pc.or_(pc.is_valid(items.column("image")), pc.is_valid(items.column("image_bytes")))
    return int(pc.sum(has_image).as_py() or 0)


def is_tailorgen_dataset(path: str | os.PathLike) -> bool:
    """True if ``path`` holds a manifest.json a tailorgen dataset writer wrote: the only kind --overwrite replaces."""
    manifest = Path(path) / "manifest.json"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "schema_version" in data and "tailorgen_version" in data


@dataclass
class DatasetWriter:
    """Build a dataset directory atomically.

    >>> with DatasetWriter(out, source={"format": "csv"}, sources=[csv_path]) as w:
    ...     rel = w.write_image("item1", png_bytes)
    ...     w.set_tables(items=rows, interactions=rows)

    ``overwrite`` replaces an existing tailorgen dataset (and nothing else) once the new one is
    complete; ``sources`` are the files and folders the write reads, which ``out`` must neither
    be nor contain.
    """

    out: Path
    source: dict[str, Any]
    overwrite: bool = False
    report: ImportReport = field(default_factory=ImportReport)
    sources: Sequence[str | os.PathLike] = ()
    _tmp: Path | None = None
    _tables: dict[str, pa.Table | ParquetParts] = field(default_factory=dict)
    _image_names: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if not os.fspath(self.out).strip():
            raise ValueError("the dataset folder (--out) is an empty path; give a folder name")
        self.out = Path(self.out)

    @contextmanager
    def _open(self) -> Iterator[DatasetWriter]:
        with atomic_dir(
            self.out, overwrite=self.overwrite, replaceable=is_tailorgen_dataset, protect=self.sources, what="dataset"
        ) as tmp:
            self._tmp = tmp
            yield self
            self._finish()

    def __enter__(self) -> DatasetWriter:
        self._cm = self._open()
        return self._cm.__enter__()

    def __exit__(self, *exc) -> bool | None:
        return self._cm.__exit__(*exc)

    @property
    def root(self) -> Path:
        assert self._tmp is not None, "use DatasetWriter as a context manager"
        return self._tmp

    def subdir(self, name: str) -> Path:
        d = resolve_inside(self.root, name, "dataset subfolder")
        d.mkdir(parents=True, exist_ok=True)
        return d

    def write_image(self, item_id: str, data: bytes, ext: str = ".png", shard: bool = False) -> str:
        """Store an image file under images/ and return its path relative to the dataset.

        The file is named by ``tailorgen.data.ids.id_file_name``, never by the id itself, so any id
        is safe and two ids never share a file; with ``shard`` files go to a folder per name prefix.
        """
        name = id_file_name(item_id, ext)
        owner = self._image_names.setdefault(name, item_id)
        if owner != item_id:  # only if 80 bits of SHA-256 collide; refuse rather than mix two images
            raise DataError("images", None, "item_id", f"items '{owner}' and '{item_id}' map to one file name {name}")
        rel = Path("images") / (name[:3] if shard else "") / name
        path = resolve_inside(self.root, rel, "image path")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return rel.as_posix()

    def set_tables(
        self,
        items: list[dict] | pa.Table,
        interactions: list[dict] | pa.Table | ParquetParts,
        queries: list[dict] | pa.Table | None = None,
    ) -> None:
        self._tables["items"] = to_table(items, ITEMS_SCHEMA, "items")
        self._tables["interactions"] = (
            interactions
            if isinstance(interactions, ParquetParts)
            else to_table(interactions, INTERACTIONS_SCHEMA, "interactions")
        )
        if queries is not None:
            self._tables["queries"] = to_table(queries, QUERIES_SCHEMA, "queries")

    def _finish(self) -> None:
        if "items" not in self._tables:
            raise RuntimeError("DatasetWriter closed before set_tables() was called; nothing was written")
        items = self._tables["items"]
        if len(items) == 0:
            raise DataError("items", None, None, f"no items left to write; {self._skips_in_brief()}")
        check_finite(items, "items", "price")
        ids = items.column("item_id")
        if len(ids.unique()) != len(ids):
            raise DataError("items", None, "item_id", "duplicate item ids")
        known = ids.combine_chunks()
        files = {}
        for name, table in self._tables.items():
            filename = TABLES[name][0]
            if isinstance(table, ParquetParts):
                n_rows, users = write_parts(table, self.root / filename, known)
            else:
                if name == "interactions":
                    check_interactions(table, known, 0)
                    n_rows, users = len(table), len(table.column("user_id").unique())
                pq.write_table(table, self.root / filename, compression="zstd", row_group_size=ROW_GROUP_ROWS)
            files[filename] = hash_file(self.root / filename)
        if (self.root / "images").is_dir():
            # One hash over every image file, so caches keyed on the manifest see image changes too.
            files["images/"] = hash_tree(self.root / "images")
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "tailorgen_version": __version__,
            "created": now_utc(),
            "source": self.source,
            "counts": {
                "items": len(items),
                "interactions": n_rows,
                "users": users,
                "queries": len(self._tables["queries"]) if "queries" in self._tables else 0,
                "items_with_image": count_items_with_image(items),
                "skipped_rows": self.report.n_skipped,
            },
            "files": files,
            "versions": environment_versions(),
        }
        write_json(self.root / "import_report.json", self.report.as_dict())
        write_json(self.root / "manifest.json", manifest)

    def _skips_in_brief(self) -> str:
        """The import report in one line, for errors raised before it is written."""
        if not self.report.n_skipped:
            return "the sources held no rows"
        first = self.report.skipped[0]
        where = DataError(first["file"], first["line"], first["field"], first["reason"])
        return f"{self.report.summary().split(';')[0]}, the first at {where}"


def check_finite(table: pa.Table, name: str, column: str, offset: int = 0) -> None:
    """Ratings and prices must be finite: NaN or infinity would reach every statistic and model."""
    values = table.column(column)
    bad = pc.invert(pc.is_finite(values.cast(pa.float64())))
    rows = pc.indices_nonzero(pc.fill_null(bad, False).combine_chunks())
    if len(rows):
        row = rows[0].as_py()
        raise DataError(name, offset + row, column, f"value {values[row].as_py()!r} is not a finite number")


def check_interactions(table: pa.Table, known: pa.Array, offset: int) -> None:
    """Finite ratings, and every item id among ``known`` (rows counted from ``offset``)."""
    check_finite(table, "interactions", "rating", offset)
    unknown = pc.invert(pc.is_in(table.column("item_id"), value_set=known))
    rows = pc.indices_nonzero(pc.fill_null(unknown, True).combine_chunks())
    if len(rows):
        missing = pc.unique(pc.filter(table.column("item_id"), unknown)).to_pylist()
        raise DataError(
            "interactions", offset + rows[0].as_py(), "item_id",
            f"{len(missing)} unknown item ids, e.g. {sorted(map(str, missing))[:3]}",
        )  # fmt: skip


def write_parts(parts: ParquetParts, path: Path, known: pa.Array) -> tuple[int, int]:
    """The interactions' parts, checked and written into one Parquet file a part at a time; (rows, users)."""
    rows, users = 0, set()
    with pq.ParquetWriter(path, INTERACTIONS_SCHEMA, compression="zstd") as writer:
        for part in parts.paths:
            table = to_table(pq.read_table(part), INTERACTIONS_SCHEMA, f"interactions part {part}")
            check_interactions(table, known, rows)
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            rows += len(table)
            users.update(pc.unique(table.column("user_id")).to_pylist())
    return rows, len(users)


class Dataset:
    """A dataset directory loaded for reading. Every source (shop or import) loads through here."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        manifest_path = self.root / "manifest.json"
        if not manifest_path.exists():
            raise FileNotFoundError(
                f"{self.root} is not a tailorgen dataset (no manifest.json); "
                "create one with `tailorgen world build` or `tailorgen data import`"
            )
        self.manifest = read_json(manifest_path)
        version = self.manifest.get("schema_version")
        if version != SCHEMA_VERSION:
            raise DataError(
                str(manifest_path), None, "schema_version", f"is {version}, this tailorgen reads {SCHEMA_VERSION}"
            )

    @classmethod
    def load(cls, root: str | os.PathLike) -> Dataset:
        return cls(root)

    def _read(self, name: str) -> pa.Table | None:
        filename, schema = TABLES[name]
        path = self.root / filename
        if not path.exists():
            if name == "queries":
                return None
            raise FileNotFoundError(f"{path} is missing; the dataset is incomplete")
        table = pq.read_table(path)
        if not table.schema.equals(schema, check_metadata=False):
            raise DataError(str(path), None, None, f"schema differs from tailorgen's:\n{table.schema}")
        return table

    @cached_property
    def items(self) -> pa.Table:
        return self._read("items")

    @cached_property
    def interactions(self) -> pa.Table:
        return self._read("interactions")

    @cached_property
    def queries(self) -> pa.Table | None:
        return self._read("queries")

    @cached_property
    def item_row(self) -> dict[str, int]:
        """item_id -> row number in ``items``."""
        return {item_id: i for i, item_id in enumerate(self.items.column("item_id").to_pylist())}

    @property
    def n_items(self) -> int:
        """Rows of ``items``, from the Parquet footer (no table is read)."""
        return pq.ParquetFile(self.root / TABLES["items"][0]).metadata.num_rows

    def item_rows(self, start: int, stop: int, columns: Sequence[str] | None = None) -> pa.Table:
        """Rows ``start:stop`` of ``items``, read from the row groups that hold them only.

        A worker given one partition of a large catalog reads its share, not the whole table."""
        file = pq.ParquetFile(self.root / TABLES["items"][0])
        groups, first, offset = [], None, 0
        for g in range(file.metadata.num_row_groups):
            size = file.metadata.row_group(g).num_rows
            if offset < stop and offset + size > start:
                groups.append(g)
                first = offset if first is None else first
            offset += size
        if not groups:
            empty = ITEMS_SCHEMA.empty_table()
            return empty.select(list(columns)) if columns else empty
        table = file.read_row_groups(groups, columns=list(columns) if columns else None)
        return table.slice(start - first, stop - start)

    @property
    def has_ground_truth(self) -> bool:
        return (self.root / "truth").is_dir()

    def __len__(self) -> int:
        return len(self.items)

    def item(self, item_id: str) -> dict:
        try:
            i = self.item_row[item_id]
        except KeyError:
            raise UnknownIdError("item", item_id, str(self.root / "items.parquet")) from None
        return self.items.slice(i, 1).to_pylist()[0]

    def load_image(self, item_id: str) -> Image.Image | None:
        """The item's image as RGB, or None if it has none. Raises DataError if it is unreadable."""
        return self.image_from_row(self.item(item_id))

    def image_from_row(self, row: dict) -> Image.Image | None:
        """The image of an ``items`` row (``item_id``, ``image``, ``image_bytes``) as RGB, or None.

        For readers that hold rows already (a partition of a large catalog), so that no one loads
        the whole items table to decode one image."""
        item_id = row["item_id"]
        if row["image_bytes"] is not None:
            src, opener = f"items.parquet[{item_id}].image_bytes", lambda: io.BytesIO(row["image_bytes"])
        elif row["image"] is not None:
            path = Path(row["image"])
            path = path if path.is_absolute() else self.root / path
            src, opener = str(path), lambda: path
        else:
            return None
        try:
            with Image.open(opener()) as im:
                return im.convert("RGB")
        except (OSError, ValueError) as e:
            raise DataError(src, None, "image", f"unreadable image ({e})") from e

    def user_histories(self) -> dict[str, list[str]]:
        """user_id -> item ids in time order (ties keep file order)."""
        inter = self.interactions.sort_by([("user_id", "ascending"), ("timestamp", "ascending")])
        out: dict[str, list[str]] = {}
        for u, i in zip(inter.column("user_id").to_pylist(), inter.column("item_id").to_pylist()):
            out.setdefault(u, []).append(i)
        return out

    def extra(self, item_id: str) -> dict:
        raw = self.item(item_id)["extra"]
        return json.loads(raw) if raw else {}

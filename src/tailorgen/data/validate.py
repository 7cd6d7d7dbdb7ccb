"""Check a dataset directory against its own manifest and tailorgen's policies.

``validate_dataset`` reads everything a dataset holds and lists every way it breaks a rule that
the writers keep: the manifest's hashes and counts, the schemas, ids (valid, unique, every
interaction's item in the item table), numbers (finite ratings, finite prices >= 0) and image
paths (relative, inside the dataset, present and decodable). An import either writes a dataset
that passes, or fails with a clear error; the property tests hold every importer to that.
"""

from __future__ import annotations

import io
import os

import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from tailorgen.common import hash_file, hash_tree
from tailorgen.data.errors import InvalidValue
from tailorgen.data.ids import OutsideRootError, normalize_id, resolve_inside
from tailorgen.data.store import Dataset

# Problems listed per rule before the rest are only counted, so a broken million-row table stays readable.
_MAX_PER_RULE = 5


def validate_dataset(root: str | os.PathLike, check_images: bool = True) -> list[str]:
    """Every problem found in the dataset at ``root``, one line each; an empty list means it is sound."""
    try:
        ds = Dataset(root)
        tables = {"items": ds.items, "interactions": ds.interactions, "queries": ds.queries}
    except (OSError, ValueError) as e:  # no manifest, unreadable JSON, wrong schema or version
        return [str(e)]
    problems = _manifest_problems(ds, tables)
    problems += _id_problems(tables)
    problems += _number_problems(tables)
    if check_images:
        problems += _image_problems(ds)
    return problems


def _manifest_problems(ds: Dataset, tables: dict[str, pa.Table | None]) -> list[str]:
    problems = []
    for name, expected in ds.manifest.get("files", {}).items():
        path = ds.root / name
        if not path.exists():
            problems.append(f"{path}: listed in manifest.json but missing")
            continue
        actual = hash_tree(path) if name.endswith("/") else hash_file(path)
        if actual != expected:
            problems.append(f"{path}: content hash differs from manifest.json")
    counts = ds.manifest.get("counts", {})
    for name in ("items", "interactions", "queries"):
        table = tables[name]
        if name in counts and counts[name] != (len(table) if table is not None else 0):
            problems.append(f"manifest.json: counts.{name} is {counts[name]}, the table has {len(table or [])} rows")
    return problems


def _bad_ids(values: list, what: str) -> list[str]:
    problems = []
    for row, value in enumerate(values):
        try:
            ok = normalize_id(value) == value
        except InvalidValue as e:
            ok, reason = False, str(e)
        else:
            reason = "not stored as text"
        if not ok:
            problems.append(f"{what} row {row}: {reason}")
            if len(problems) >= _MAX_PER_RULE:
                break
    return problems


def _id_problems(tables: dict[str, pa.Table | None]) -> list[str]:
    items, inter = tables["items"], tables["interactions"]
    item_ids = items.column("item_id").to_pylist()
    problems = _bad_ids(item_ids, "items.parquet item_id")
    if len(set(item_ids)) != len(item_ids):
        problems.append("items.parquet: item ids are not unique")
    problems += _bad_ids(inter.column("user_id").unique().to_pylist(), "interactions.parquet user_id")
    unknown = set(inter.column("item_id").unique().to_pylist()) - set(item_ids)
    if unknown:
        problems.append(
            f"interactions.parquet: {len(unknown)} item ids not in items.parquet, e.g. {sorted(unknown)[:3]}"
        )
    return problems


def _number_problems(tables: dict[str, pa.Table | None]) -> list[str]:
    problems = []
    for table, column, minimum in (("interactions", "rating", None), ("items", "price", 0.0)):
        values = tables[table].column(column).cast(pa.float64())
        bad = pc.invert(pc.is_finite(values))
        if minimum is not None:
            bad = pc.or_(bad, pc.less(values, minimum))
        n_bad = pc.sum(pc.fill_null(bad, False)).as_py() or 0
        if n_bad:
            problems.append(f"{table}.parquet: {n_bad} {column} values are not finite numbers in range")
    return problems


def _image_problems(ds: Dataset) -> list[str]:
    problems = []
    for row in ds.items.select(["item_id", "image", "image_bytes"]).to_pylist():
        if row["image"] is not None:
            try:
                path = resolve_inside(ds.root, row["image"], "image path")
                data = path.read_bytes()
            except (OutsideRootError, OSError) as e:
                problems.append(f"items.parquet item {row['item_id']!r}: {e}")
                continue
        elif row["image_bytes"] is not None:
            data = row["image_bytes"]
        else:
            continue
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            problems.append(f"items.parquet item {row['item_id']!r}: image does not decode ({e})")
        if len(problems) >= _MAX_PER_RULE:
            break
    return problems

"""Any catalog as CSV/TSV (optionally gzipped) or Parquet: an items file, an interactions file, optionally users.

Which source column feeds which tailorgen field is one *mapping* document::

    items:                 # tailorgen field: source column
      item_id: sku
      title: name
      tags: keywords       # a list column, a JSON list, or text split on options.tags_sep
      image: picture       # image file paths, relative to the images folder (default: the items file's folder)
    interactions:
      user_id: customer
      item_id: sku
      timestamp: bought_at # numbers in options.timestamp_unit, ISO-8601 text, or Parquet timestamps
    users:
      user_id: customer
    options:
      tags_sep: ";"        # default "|"
      timestamp_unit: ms   # "s" (default), "ms", or "auto" (the unit each number's size shows)
      delimiter: ";"       # default: tab for .tsv, comma otherwise
      encoding: latin-1    # default utf-8 (a byte-order mark is ignored)
      rating_scale: 1..5   # default -10..10; a rating off the scale skips its row
      check_dates: false   # default true: dates must lie in 1980..2100 (false for a relative clock)

given as a dict, a JSON or YAML file, or (on the command line) ``--map items.title=name``
entries that override the file's. A field left out of the mapping is read from the column of
the same name when there is one (and an id field from the column the other table maps it
to), so files already in tailorgen's naming need no mapping at all. Item columns that no field
takes are kept in ``extra`` as JSON. Interactions have no ``extra`` column in the schema, so
their unmapped columns are not kept. Image paths must stay inside the images folder: an absolute
path, or one that climbs out with ``..``, is reported and not copied.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tailorgen.data.adapters._common import (
    PathLike,
    attach_images,
    clean_interactions_table,
    extra_json,
    images_by_item_id,
    is_price_text,
    report_users_without_interactions,
    source_paths,
    source_record,
    text_or_none,
    track_kept_items,
    unique,
)
from tailorgen.data.adapters._readers import Row, csv_header, read_delimited, read_parquet_rows
from tailorgen.data.clean import Provenance, clean_items
from tailorgen.data.errors import DataError, ImportReport
from tailorgen.data.ids import OutsideRootError, resolve_inside
from tailorgen.data.store import DatasetWriter
from tailorgen.data.values import DEFAULT_RATING_SCALE, TIMESTAMP_UNITS, parse_rating_scale

FIELDS: dict[str, tuple[str, ...]] = {
    "items": ("item_id", "title", "description", "category", "tags", "image", "image_url", "brand", "price"),
    "interactions": ("user_id", "item_id", "timestamp", "rating", "review"),
    "users": ("user_id",),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "items": ("item_id", "title"),
    "interactions": ("user_id", "item_id", "timestamp"),
    "users": ("user_id",),
}
OPTIONS: dict[str, Any] = {
    "tags_sep": "|",
    "timestamp_unit": "s",
    "delimiter": None,
    "encoding": "utf-8-sig",
    "rating_scale": "..".join(f"{x:g}" for x in DEFAULT_RATING_SCALE),
    "check_dates": True,
}
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")
_PARQUET = (".parquet", ".pq")
_DELIMITED = (".csv", ".tsv", ".txt")


def load_mapping(path: PathLike | None = None, pairs: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Read a mapping file (JSON, or YAML by its .yaml/.yml suffix) and apply ``SECTION.KEY=VALUE`` overrides.

    Returns the validated mapping: ``{"items": {...}, "interactions": {...}, "users": {...}, "options": {...}}``.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml  # PyYAML comes with transformers/huggingface_hub; only needed for YAML mappings

            try:
                raw = yaml.safe_load(text) or {}
            except yaml.YAMLError as e:
                raise ValueError(f"mapping file {path} is not valid YAML: {e}") from e
        else:
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"mapping file {path} is not valid JSON: {e}") from e
        if not isinstance(raw, dict):
            raise ValueError(f"mapping file {path} must hold an object with items/interactions/users/options")
    raw = {k: dict(v or {}) for k, v in raw.items()}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ValueError(f"--map takes SECTION.KEY=VALUE, e.g. items.title=name; got {pair!r}")
        raw.setdefault(section, {})[name.strip()] = value
    return normalize_mapping(raw)


def normalize_mapping(raw: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Check a mapping's sections, fields and options; unknown names are errors, not silently ignored."""
    raw = dict(raw or {})
    sections = (*FIELDS, "options")
    unknown = [s for s in raw if s not in sections]
    if unknown:
        raise ValueError(f"unknown mapping section(s) {unknown}; use {list(sections)}")
    out: dict[str, dict[str, Any]] = {}
    for section, fields in FIELDS.items():
        given = dict(raw.get(section) or {})
        bad = [f for f in given if f not in fields]
        if bad:
            raise ValueError(f"mapping section '{section}' has unknown field(s) {bad}; fields are {list(fields)}")
        out[section] = {f: str(c) for f, c in given.items() if c is not None and str(c) != ""}
    options = dict(raw.get("options") or {})
    bad = [o for o in options if o not in OPTIONS]
    if bad:
        raise ValueError(f"unknown mapping option(s) {bad}; options are {list(OPTIONS)}")
    out["options"] = opts = {**OPTIONS, **{k: v for k, v in options.items() if v is not None}}
    if opts["timestamp_unit"] not in TIMESTAMP_UNITS:
        raise ValueError(f"options.timestamp_unit must be one of {TIMESTAMP_UNITS}, got {opts['timestamp_unit']!r}")
    if not opts["tags_sep"]:
        raise ValueError("options.tags_sep must not be empty")
    parse_rating_scale(opts["rating_scale"])  # raises a ValueError naming the option
    opts["check_dates"] = _flag("check_dates", opts["check_dates"])
    if opts["delimiter"] is not None and len(str(opts["delimiter"])) != 1:
        raise ValueError(f"options.delimiter must be one character, got {opts['delimiter']!r}")
    try:
        codecs.lookup(str(opts["encoding"]))
    except LookupError:
        raise ValueError(f"options.encoding {opts['encoding']!r} is not an encoding Python knows") from None
    return out


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() in _TRUE + _FALSE:
        return str(value).strip().lower() in _TRUE
    raise ValueError(f"options.{name} must be true or false, got {value!r}")


class _Table:
    """One source file: its columns (known before reading rows, to check the mapping) and its rows."""

    def __init__(self, path: Path, options: Mapping[str, Any], report: ImportReport):
        self.path = path
        suffixes = [s.lower() for s in path.suffixes]
        kind = suffixes[-2] if len(suffixes) > 1 and suffixes[-1] == ".gz" else (suffixes[-1] if suffixes else "")
        self._report = report
        if kind in _PARQUET:
            self.parquet = True
            try:
                self.columns = list(pq.read_schema(path).names)
            except (pa.ArrowInvalid, OSError) as e:
                raise DataError(str(path), None, None, f"not a readable Parquet file ({e})") from e
        elif kind in _DELIMITED:
            self.parquet = False
            self.delimiter = options["delimiter"] or ("\t" if kind == ".tsv" else ",")
            self.encoding = options["encoding"]
            self.columns = csv_header(path, self.delimiter, self.encoding)
        else:
            raise ValueError(f"{path}: use .csv, .tsv, .txt (optionally .gz) or .parquet")

    def rows(self) -> Iterator[Row]:
        if self.parquet:
            return read_parquet_rows(self.path)
        return read_delimited(self.path, self._report, self.delimiter, self.encoding)

    def resolve(self, section: str, mapping: Mapping[str, str], fallbacks: Mapping[str, Sequence[str]]) -> dict:
        """tailorgen field -> source column, checked against the file's columns."""
        cols = {}
        listed = ", ".join(self.columns)
        for name in FIELDS[section]:
            column = mapping.get(name)
            if column is not None:
                if column not in self.columns:
                    raise DataError(
                        str(self.path), None, name, f"mapped column '{column}' is not in the file (columns: {listed})"
                    )
                cols[name] = column
                continue
            found = next((c for c in (name, *fallbacks.get(name, ())) if c in self.columns), None)
            if found is not None:
                cols[name] = found
        for name in REQUIRED[section]:
            if name not in cols:
                raise DataError(
                    str(self.path),
                    None,
                    name,
                    f"no column for required field; map one with --map {section}.{name}=COLUMN (columns: {listed})",
                )
        return cols


def _tags(value: Any, sep: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return unique(value) or None
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):
            return unique(parsed) or None
    return unique(text.split(sep)) or None


def _item(raw: dict, cols: Mapping[str, str], tags_sep: str) -> dict:
    row: dict[str, Any] = {f: raw.get(c) for f, c in cols.items()}
    for f in ("title", "description", "category", "image", "image_url", "brand"):
        row[f] = text_or_none(row.get(f))
    item_id = row.get("item_id")  # not text (a dict, a list) stays as it is, for clean_items to report
    row["item_id"] = text_or_none(item_id) if isinstance(item_id, str) or item_id is None else item_id
    row["tags"] = _tags(row.get("tags"), tags_sep)
    used = set(cols.values())
    price = row.get("price")  # clean_items checks it (finite, >= 0) and reports it with file and line
    if "price" in cols and is_price_text(price):
        used.discard(cols["price"])  # keep a text price ("$1,299 - $1,499") in extra
    row["extra"] = extra_json(raw, used)
    return row


def _interaction(raw: dict, cols: Mapping[str, str]) -> dict:
    """Source columns to fields; clean_interactions reads the timestamp in the unit of the options."""
    row = {f: raw.get(c) for f, c in cols.items()}
    for f in ("user_id", "item_id", "review"):
        value = row.get(f)
        row[f] = text_or_none(value) if isinstance(value, str) or value is None else value
    return row


def _local_images(
    items: list[dict], base: Path, where: Mapping[str, Provenance], report: ImportReport
) -> dict[str, Path]:
    """Resolve the image column's paths; a missing file is a counted skip at the item's row."""
    paths = {}
    for item in items:
        value, item["image"] = item["image"], None
        if value is None:
            continue
        file, line = where.get(item["item_id"], ("items", None))
        try:
            path = resolve_inside(base, value, "image path")
        except OutsideRootError as e:
            report.skip(file, line, "image", f"image outside the image folder: {e} (item '{item['item_id']}' kept)")
            continue
        if not path.is_file():
            report.skip(file, line, "image", f"image file not found: {base / value} (item '{item['item_id']}' kept)")
            continue
        paths[item["item_id"]] = path
    return paths


def import_generic(
    src: PathLike | Sequence[PathLike],
    out: PathLike,
    *,
    overwrite: bool = False,
    strict: bool = False,
    images: PathLike | None = None,
    mapping: Mapping[str, Any] | PathLike | None = None,
) -> Path:
    """``src`` is (ITEMS, INTERACTIONS[, USERS]) files; ``mapping`` says which columns are which (see module doc).

    ``images`` is the folder image paths in the items' image column are relative to; without
    an image column, files in it named by item id (``sku123.jpg``) are used. Users listed in
    USERS without any interaction left are reported, never dropped silently.
    """
    fmt = "generic"
    paths = source_paths(fmt, src, ("ITEMS", "INTERACTIONS", "USERS"), n_optional=1)
    items_path, inter_path = paths[0], paths[1]
    users_path = paths[2] if len(paths) > 2 else None
    if mapping is None or isinstance(mapping, Mapping):
        spec = normalize_mapping(mapping)
    else:
        spec = load_mapping(mapping)
    options = spec["options"]
    report = ImportReport(strict=strict)
    item_table = _Table(items_path, options, report)
    inter_table = _Table(inter_path, options, report)
    user_table = _Table(users_path, options, report) if users_path else None
    # An id field the user mapped in one table is the default column name in the others.
    id_cols = {f: [spec[s][f] for s in FIELDS if f in spec[s]] for f in ("item_id", "user_id")}
    item_cols = item_table.resolve("items", spec["items"], id_cols)
    inter_cols = inter_table.resolve("interactions", spec["interactions"], id_cols)
    user_cols = user_table.resolve("users", spec["users"], id_cols) if user_table else None

    source = source_record(
        fmt,
        {"items": items_path, "interactions": inter_path, "users": users_path, "images": images},
        {"strict": strict, "columns": {"items": item_cols, "interactions": inter_cols, "users": user_cols}, **options},
    )
    sources = [p for p in (*paths, images) if p is not None]
    with DatasetWriter(Path(out), source=source, overwrite=overwrite, report=report, sources=sources) as writer:
        where: dict[str, Provenance] = {}
        rows = ((_item(raw, item_cols, options["tags_sep"]), prov) for raw, prov in item_table.rows())
        items = clean_items(track_kept_items(rows, where), report)
        if "image" in item_cols:
            base = Path(images) if images is not None else items_path.parent
            image_paths = _local_images(items, base, where, report)
        else:
            image_paths = images_by_item_id(items, images)
        attach_images(writer, items, image_paths, report)
        interactions = clean_interactions_table(
            ((_interaction(raw, inter_cols), prov) for raw, prov in inter_table.rows()),
            {it["item_id"] for it in items},
            report,
            timestamp_unit=options["timestamp_unit"],
            rating_scale=parse_rating_scale(options["rating_scale"]),
            check_dates=options["check_dates"],
        )
        if user_table is not None and user_cols is not None:
            users = ((raw.get(user_cols["user_id"]), prov) for raw, prov in user_table.rows())
            report_users_without_interactions(users, interactions, report)
        writer.set_tables(items=items, interactions=interactions)
    return Path(out)

"""Building blocks every adapter shares: sources, field values, image copying, interactions and the users check.

The readers that yield located rows are in ``_readers``.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from tailorgen.data.adapters._readers import Row
from tailorgen.data.clean import Provenance, clean_interactions
from tailorgen.data.errors import ImportReport, InvalidValue
from tailorgen.data.ids import normalize_id
from tailorgen.data.schema import INTERACTIONS_SCHEMA, REQUIRED_ITEM_FIELDS
from tailorgen.data.store import DatasetWriter
from tailorgen.data.values import PLAUSIBLE_DATES

PathLike = str | os.PathLike

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
# Interactions are cleaned and turned into Arrow in chunks of this many rows, so that
# ml-25m's 25 million ratings never exist as 25 million Python dicts at once.
INTERACTION_CHUNK = 200_000


# --------------------------------------------------------------------------- sources


def source_paths(fmt: str, src: PathLike | Sequence[PathLike], names: Sequence[str], n_optional: int = 0) -> list[Path]:
    """Normalise ``src`` to a list of paths and check there are as many as the format needs.

    ``names`` are the sources in order (for the error message); the last ``n_optional``
    of them may be left out.
    """
    paths = [Path(src)] if isinstance(src, str | os.PathLike) else [Path(p) for p in src]
    lo, hi = len(names) - n_optional, len(names)
    if not lo <= len(paths) <= hi:
        want = " ".join(n if i < lo else f"[{n}]" for i, n in enumerate(names))
        raise ValueError(f"format '{fmt}' takes sources {want}; got {len(paths)}: {[str(p) for p in paths]}")
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"source {p} does not exist")
    return paths


# --------------------------------------------------------------------------- values


def text_or_none(value: Any, sep: str = "\n") -> str | None:
    """A string column value: lists (Amazon descriptions) are joined, blanks become None."""
    if value is None or (isinstance(value, float) and value != value):  # NaN, as pandas writes blanks
        return None
    if isinstance(value, list | tuple):
        value = sep.join(str(v).strip() for v in value if v is not None and str(v).strip())
    value = str(value).strip()
    return value or None


def is_number(value: Any) -> bool:
    """True for a real int/float (not bool, not NaN): a value a float column takes as it is."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def is_price_text(value: Any) -> bool:
    """True for a non-blank price that is not a plain number ("$12.99", "$10 - $15"): worth keeping in extra."""
    if value is None or is_number(value):
        return False
    text = str(value).strip()
    if not text:
        return False
    try:
        float(text)
    except ValueError:
        return True
    return False


def unique(values: Iterable[Any]) -> list[str]:
    """Distinct non-blank strings, first occurrence order."""
    out: dict[str, None] = {}
    for v in values:
        if v is None:
            continue
        s = str(v).strip()
        if s:
            out.setdefault(s, None)
    return list(out)


def extra_json(raw: dict[str, Any], used: Iterable[str] = ()) -> str | None:
    """The source fields no column took, as one JSON object, so nothing is lost; None if none."""
    used = set(used)
    rest = {k: v for k, v in raw.items() if k not in used and v is not None}
    if not rest:
        return None
    return json.dumps(rest, ensure_ascii=False, sort_keys=True, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


# --------------------------------------------------------------------------- images


def index_image_dir(directory: PathLike) -> dict[str, Path]:
    """Image files directly in ``directory`` by file stem (``1.jpg`` -> ``"1"``).

    When two files share a stem (1.jpg and 1.png) the first in sorted order wins.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image directory {directory} does not exist")
    found: dict[str, Path] = {}
    for p in sorted(directory.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            found.setdefault(p.stem, p)
    return found


def read_verified_image(path: Path) -> bytes:
    """Read an image file and make sure PIL can decode it fully (not just its header).

    ``Image.verify`` alone passes truncated JPEGs, so the pixels are loaded; raises
    OSError/ValueError (or PIL's DecompressionBombError) when the file is not an image.
    """
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        im.load()
    return data


def attach_images(writer: DatasetWriter, items: list[dict], paths: dict[str, Path], report: ImportReport) -> int:
    """Copy each item's local image into the dataset and set its ``image`` column.

    ``paths`` maps item id -> image file. An unreadable image is a counted skip naming the
    image file and field 'image'; the item stays, without an image. Returns images copied.
    """
    copied = 0
    for item in items:
        path = paths.get(item["item_id"])
        if path is None:
            continue
        try:
            data = read_verified_image(path)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            report.skip(str(path), None, "image", f"unreadable image: item '{item['item_id']}' kept without it ({e})")
            item["image"] = None
            continue
        item["image"] = writer.write_image(item["item_id"], data, path.suffix.lower() or ".img")
        copied += 1
    return copied


def images_by_item_id(items: list[dict], directory: PathLike | None) -> dict[str, Path]:
    """For formats whose image folders name files by item id (MovieLens posters, Amazon asins)."""
    if directory is None:
        return {}
    index = index_image_dir(directory)
    return {item["item_id"]: index[item["item_id"]] for item in items if item["item_id"] in index}


# --------------------------------------------------------------------------- interactions and users


def _chunks(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


def clean_interactions_table(
    rows: Iterable[Row],
    known_items: set[str],
    report: ImportReport,
    chunk_size: int = INTERACTION_CHUNK,
    *,
    timestamp_unit: str = "s",
    rating_scale: tuple[float, float] | None = None,
    check_dates: bool = True,
) -> pa.Table:
    """``clean_interactions`` over a stream of rows, collected as one Arrow table.

    Imports check every date for plausibility (``PLAUSIBLE_DATES``) unless ``check_dates`` is off,
    and every rating against ``rating_scale``.
    """
    opts = {
        "timestamp_unit": timestamp_unit,
        "dates": PLAUSIBLE_DATES if check_dates else None,
        "rating_scale": rating_scale,
    }
    tables = [
        pa.Table.from_pylist(clean_interactions(chunk, known_items, report, **opts), schema=INTERACTIONS_SCHEMA)
        for chunk in _chunks(rows, chunk_size)
    ]
    return pa.concat_tables(tables) if tables else INTERACTIONS_SCHEMA.empty_table()


def report_users_without_interactions(
    users: Iterable[tuple[Any, Provenance]], interactions: pa.Table, report: ImportReport
) -> int:
    """Report every listed user that has no interaction left, so no user vanishes silently.

    The schema has no users table: a user exists only through their interactions, so a
    listed user without any (none in the source, or all of theirs skipped) would otherwise
    disappear without a trace. Also reports blank and duplicate user ids. Returns the
    number of listed users.
    """
    active = set(pc.unique(interactions.column("user_id")).to_pylist())
    seen: dict[str, Provenance] = {}
    for user_id, (file, line) in users:
        try:
            uid = normalize_id(user_id.strip() if isinstance(user_id, str) else user_id)
        except InvalidValue as e:
            report.skip(file, line, "user_id", "missing required field" if user_id is None else str(e))
            continue
        if uid in seen:
            first = seen[uid]
            report.skip(file, line, "user_id", f"duplicate id: '{uid}' first seen at {first[0]}:{first[1]}")
            continue
        seen[uid] = (file, line)
        if uid not in active:
            report.skip(file, line, "user_id", f"user with no interactions: '{uid}' has no interaction left")
    return len(seen)


def track_kept_items(rows: Iterable[Row], where: dict[str, Provenance]) -> Iterator[Row]:
    """Pass item rows through, remembering the provenance of the row ``clean_items`` will keep per id.

    ``clean_items`` keeps the first row of an id that has every required field, so that is
    the row recorded here; adapters use it to locate problems found after cleaning.
    """
    for row, prov in rows:
        if all(str(row.get(f) or "").strip() for f in REQUIRED_ITEM_FIELDS):
            with suppress(InvalidValue):
                where.setdefault(normalize_id(row["item_id"]), prov)
        yield row, prov


def source_record(fmt: str, sources: dict[str, PathLike | None], options: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``source`` entry: format, absolute source paths and the options used."""
    return {
        "format": fmt,
        "sources": {k: str(Path(v).resolve()) for k, v in sources.items() if v is not None},
        "options": {k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in options.items() if v is not None},
    }

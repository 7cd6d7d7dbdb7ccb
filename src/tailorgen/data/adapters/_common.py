"""Building blocks every adapter shares: located row readers, image copying, the users check.

Every reader yields ``(row, (file, line))`` pairs so that a bad row can be reported by
file and line, and reports unparseable lines itself (a counted skip, or a DataError in
strict mode) instead of stopping the whole import.
"""

from __future__ import annotations

import ast
import codecs
import csv
import datetime as _dt
import gzip
import io
import json
import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from itertools import islice
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from tailorgen.data.errors import DataError, ImportReport, InvalidValue
from tailorgen.data.ids import normalize_id
from tailorgen.data.schema import INTERACTIONS_SCHEMA, REQUIRED_ITEM_FIELDS
from tailorgen.data.store import DatasetWriter, Provenance, clean_interactions
from tailorgen.data.values import PLAUSIBLE_DATES

Row = tuple[dict[str, Any], Provenance]
PathLike = str | os.PathLike

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
# Interactions are cleaned and turned into Arrow in chunks of this many rows, so that
# ml-25m's 25 million ratings never exist as 25 million Python dicts at once.
INTERACTION_CHUNK = 200_000
_CSV_FIELD_LIMIT = 64 * 1024 * 1024


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


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _open_binary(path: Path) -> IO[bytes]:
    """Open a file for reading bytes, transparently decompressing gzip (detected by content, not by name)."""
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


@contextmanager
def _gzip_errors(file: str, line: Callable[[], int]) -> Iterator[None]:
    """A truncated or corrupt gzip stream as a DataError naming the file and the line it broke at."""
    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(
            file, line(), None, f"the gzip stream is truncated or corrupt ({e}); download or compress the file again"
        ) from e


# --------------------------------------------------------------------------- JSON lines


def read_json_lines(path: Path, report: ImportReport, python_literals: bool = False) -> Iterator[Row]:
    """Yield one dict per non-blank line of a (possibly gzipped) JSON-lines file.

    With ``python_literals`` a line that is not JSON is tried as a Python literal
    (Amazon 2014 metadata was written with Python's ``repr``: single quotes, ``True``).
    ``ast.literal_eval`` only builds literals, it never runs code, unlike the ``eval``
    the dataset's authors suggested.
    """
    file = str(path)
    n = 0
    with _open_binary(path) as f, _gzip_errors(file, lambda: n + 1):
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                report.skip(file, n, None, f"broken JSON: not UTF-8 ({e.reason} at byte {e.start})")
                continue
            try:
                obj = json.loads(text)
            except (json.JSONDecodeError, RecursionError) as e:
                obj = _python_literal(text) if python_literals else None
                if obj is None:
                    msg = f"{e.msg} at column {e.colno}" if isinstance(e, json.JSONDecodeError) else "nested too deeply"
                    report.skip(file, n, None, f"broken JSON: {msg}")
                    continue
            if not isinstance(obj, dict):
                report.skip(file, n, None, f"broken JSON: expected an object, got {type(obj).__name__}")
                continue
            yield obj, (file, n)


def _python_literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None


# --------------------------------------------------------------------------- delimited text


def _text_lines(path: Path, encoding: str, file: str) -> Iterator[str]:
    """The file's physical lines as text, each decoded on its own so a bad byte is reported at its own line.

    A byte-order mark at the start is dropped whatever the encoding is called. Encodings whose
    newline is not the byte 0x0A (UTF-16, UTF-32) are decoded as one stream instead.
    """
    codec = codecs.lookup(encoding).name
    if codec.startswith(("utf-16", "utf-32")):
        with _open_binary(path) as raw, io.TextIOWrapper(raw, encoding=encoding, newline="") as f:
            yield from f
        return
    first_codec = "utf-8-sig" if codec in ("utf-8", "utf-8-sig") else codec
    n = 0
    with _open_binary(path) as f, _gzip_errors(file, lambda: n + 1):
        for n, raw in enumerate(f, start=1):
            try:
                yield raw.decode(first_codec if n == 1 else codec)
            except UnicodeDecodeError as e:
                raise DataError(
                    file,
                    n,
                    None,
                    f"not valid {encoding} text ({e.reason} at byte {e.start} of the line); "
                    "give the file's encoding (generic: --map options.encoding=latin-1)",
                ) from e


def read_delimited(
    path: Path,
    report: ImportReport,
    delimiter: str = ",",
    encoding: str = "utf-8-sig",
    fieldnames: Sequence[str] | None = None,
    quoting: int = csv.QUOTE_MINIMAL,
) -> Iterator[Row]:
    """Yield one dict per record of a (possibly gzipped) delimited text file.

    Uses the csv module rather than pandas because it tells the physical line of each
    record (quoted fields may span lines), which is what error messages must name.
    Without ``fieldnames`` the first line is the header. A record with the wrong number
    of fields is a counted skip.
    """
    file = str(path)
    # Product descriptions can exceed the csv module's 128 KiB default field limit; that limit
    # is process-wide, so it is only ever raised, never lowered.
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
    reader = csv.reader(_text_lines(path, encoding, file), delimiter=delimiter, quoting=quoting)
    try:
        if fieldnames is None:
            header = next(reader, None)
            if header is None:
                return
            fieldnames = [h.strip() for h in header]
        width = len(fieldnames)
        for record in reader:
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            line = reader.line_num
            if len(record) != width:
                report.skip(file, line, None, f"wrong number of fields: expected {width}, got {len(record)}")
                continue
            yield dict(zip(fieldnames, record)), (file, line)
    except csv.Error as e:
        raise DataError(file, reader.line_num, None, f"malformed CSV: {e}") from e


def csv_header(path: Path, delimiter: str = ",", encoding: str = "utf-8-sig") -> list[str]:
    lines = _text_lines(path, encoding, str(path))
    try:
        return [h.strip() for h in next(csv.reader(lines, delimiter=delimiter), [])]
    except csv.Error as e:
        raise DataError(str(path), 1, None, f"malformed CSV header: {e}") from e
    finally:
        lines.close()


def read_parquet_rows(path: Path, columns: Sequence[str] | None = None) -> Iterator[Row]:
    """Yield one dict per row of a Parquet file; the 'line' is the 0-based row number."""
    file = str(path)
    n = 0
    try:
        batches = pq.ParquetFile(path).iter_batches(columns=list(columns) if columns else None)
        for batch in batches:
            for row in batch.to_pylist():
                yield row, (file, n)
                n += 1
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as e:
        raise DataError(file, n, None, f"not a readable Parquet file ({e})") from e


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

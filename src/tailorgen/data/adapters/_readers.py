"""Located row readers: JSON lines, delimited text and Parquet, each row with its file and line.

Every reader yields ``(row, (file, line))`` pairs so that a bad row can be reported by file and
line, and reports unparseable lines itself (a counted skip, or a DataError in strict mode)
instead of stopping the whole import. Whole-file problems are one DataError naming the file and
the line they were found at: a truncated or corrupt gzip stream, a byte the encoding cannot decode
(each line is decoded on its own, so the line is exact), a file that is not Parquet.
"""

from __future__ import annotations

import ast
import codecs
import csv
import gzip
import io
import json
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from tailorgen.data.clean import Provenance
from tailorgen.data.errors import DataError, ImportReport

Row = tuple[dict[str, Any], Provenance]
_CSV_FIELD_LIMIT = 64 * 1024 * 1024


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

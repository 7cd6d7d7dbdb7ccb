"""Property tests: any input ends in a dataset that passes its own validation, a counted skip, or a clear error.

Hypothesis draws hostile rows for every importer (ids like ``../../x``, dicts, bools, NaN and
infinite numbers, huge timestamps, text with quotes and newlines, undecodable bytes, cut-off
lines) and hostile values for the CLI's options. Whatever it draws, an import must either write
a dataset that ``validate_dataset`` passes, with nothing written outside ``--out``, or raise a
located ``DataError`` (or another ``ValueError``/``OSError`` with a message); never an exception
of another kind, and never a half-written output.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tailorgen.cli import main  # noqa: E402
from tailorgen.data import DataError, Dataset, DatasetWriter, validate_dataset  # noqa: E402
from tailorgen.data.adapters import import_dataset  # noqa: E402
from tailorgen.data.errors import InvalidValue  # noqa: E402
from tailorgen.data.ids import id_file_stem, normalize_id, resolve_inside  # noqa: E402
from tailorgen.data.values import PLAUSIBLE_DATES, price_value, rating_value, timestamp_seconds  # noqa: E402

# Each import writes Parquet files and hashes them (~30 ms); these counts keep the file under ~20 s.
# database=None: no .hypothesis/ folder in the working tree; a failure prints its example to reproduce.
FAST = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
IMPORTS = settings(max_examples=20, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

TRICKY_TEXT = st.sampled_from(
    ["../../../x", "/etc/passwd", "a/b", "a_b", "😀/../x", "..", ".", "", " ", "CON", "A", "a", "\x00", "x\ny"]
)
TEXT = st.one_of(TRICKY_TEXT, st.text(max_size=12))
NUMBER = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e400, -1e400, 1588687728, 1588687728923, 5, 0.5, 10**30]),
)
TIMESTAMP_TEXT = st.sampled_from(["2020-02-29T12:00:00", "0001-01-01T00:00:00", "9999-12-31", "soon", "1e400", "nan"])
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    NUMBER,
    TEXT,
    TIMESTAMP_TEXT,
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.lists(st.text(max_size=4), max_size=3),
)
# Values a text cell can hold: what a CSV file can say.
CELL = st.one_of(
    TEXT, NUMBER.map(str), TIMESTAMP_TEXT, st.sampled_from(["nan", "inf", "-1000", "true", "$1,299.00", "$1 - $2"])
)


def _png(colour=(10, 200, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


@contextmanager
def _workdir():
    tmp = Path(tempfile.mkdtemp(prefix="tg-prop-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def _import_holds_the_policy(fmt: str, sources, work: Path, strict: bool, **opts) -> None:
    """The property itself: a valid dataset inside out/, or a clear error and nothing written at all."""
    out = work / "out"
    before = _files(work)
    try:
        import_dataset(fmt, sources, out, strict=strict, **opts)
    except DataError as e:
        event(f"{fmt}: DataError")
        assert e.file and str(e).strip(), e
        assert _files(work) == before, "a failed import left files behind"
        return
    except (ValueError, OSError) as e:
        event(f"{fmt}: {type(e).__name__}")
        assert str(e).strip() and "Traceback" not in str(e)
        assert _files(work) == before, "a failed import left files behind"
        return
    report = json.loads((out / "import_report.json").read_text())
    event(f"{fmt}: written, {'with' if report['n_skipped'] else 'no'} skips")
    assert validate_dataset(out) == []
    assert {p for p in _files(work) - before if not p.startswith("out")} == set(), "wrote outside --out"
    for skip in report["skipped"]:
        assert skip["file"] and skip["reason"], skip
    images = [r["image"] for r in Dataset(out).items.to_pylist() if r["image"]]
    assert len(images) == len(set(images)), "two items share one image file"


# --------------------------------------------------------------------------- the policies on single values


@FAST
@given(st.lists(st.text(), min_size=2, max_size=6, unique=True))
def test_any_ids_get_safe_distinct_file_names(ids):
    stems = [id_file_stem(i) for i in ids]
    assert len({s.casefold() for s in stems}) == len(ids)  # distinct even on a case-insensitive disk
    for stem in stems:
        assert stem and len(stem) <= 64 and all(c.isascii() and (c.isalnum() or c in "_-~") for c in stem)
        assert resolve_inside("/data/images", stem).parent == Path("/data/images").resolve()


@FAST
@given(ANY_VALUE)
def test_a_value_is_an_id_or_a_reason(value):
    try:
        item_id = normalize_id(value)
    except InvalidValue as e:
        assert str(e)
    else:
        assert isinstance(item_id, str) and item_id.strip()
        item_id.encode("utf-8")


@FAST
@given(ANY_VALUE, st.sampled_from(["s", "ms", "auto"]))
def test_a_timestamp_is_a_plausible_second_or_a_reason(value, unit):
    try:
        seconds = timestamp_seconds(value, unit, PLAUSIBLE_DATES)
    except InvalidValue as e:
        assert str(e)
    else:
        assert isinstance(seconds, int) and PLAUSIBLE_DATES[0] <= seconds < PLAUSIBLE_DATES[1]


@FAST
@given(ANY_VALUE)
def test_ratings_and_prices_are_finite_and_in_range_or_a_reason(value):
    try:
        rating = rating_value(value, (1.0, 5.0))
    except InvalidValue as e:
        assert str(e)
    else:
        assert 1.0 <= rating <= 5.0
    try:
        price = price_value(value)
    except InvalidValue as e:
        assert str(e)
    else:
        assert price is None or (math.isfinite(price) and price >= 0)


# --------------------------------------------------------------------------- every importer


def _json_line(draw_value, keys: list[str], data) -> str:
    """One JSON-lines line: usually an object over ``keys`` with hostile values, sometimes garbage."""
    kind = data.draw(st.sampled_from(["object", "object", "object", "garbage", "cut"]))
    obj = {k: data.draw(draw_value) for k in keys if data.draw(st.booleans()) or k in keys[:2]}
    text = json.dumps(obj)  # NaN and Infinity become the tokens Python's json reads back
    if kind == "garbage":
        return data.draw(st.text(max_size=30)).replace("\n", " ").replace("\r", " ")
    return text[: len(text) // 2] if kind == "cut" else text


AMAZON_KEYS = {
    "amazon2014": (
        ["reviewerID", "asin", "overall", "unixReviewTime", "reviewText", "summary"],
        ["asin", "title", "price", "imUrl", "categories", "brand", "description"],
    ),
    "amazon2018": (
        ["reviewerID", "asin", "overall", "unixReviewTime", "reviewText"],
        ["asin", "title", "price", "imageURLHighRes", "imageURL", "category", "description"],
    ),
    "amazon2023": (
        ["user_id", "parent_asin", "rating", "timestamp", "text", "asin"],
        ["parent_asin", "title", "price", "images", "categories", "store", "main_category"],
    ),
}
# Ids from a small pool, so reviews meet their items and duplicates happen.
ID = st.one_of(st.sampled_from(["B1", "B2", "../x", "a/b", "a_b", "😀"]), ANY_VALUE)


@IMPORTS
@given(st.sampled_from(sorted(AMAZON_KEYS)), st.booleans(), st.booleans(), st.data())
def test_amazon_imports_hold_the_policy(fmt, strict, gz, data):
    review_keys, meta_keys = AMAZON_KEYS[fmt]
    value = st.one_of(ID, ANY_VALUE)
    with _workdir() as work:
        reviews = "\n".join(_json_line(value, review_keys, data) for _ in range(data.draw(st.integers(0, 6))))
        meta = "\n".join(_json_line(value, meta_keys, data) for _ in range(data.draw(st.integers(0, 6))))
        if data.draw(st.integers(0, 3)):  # mostly with a well-formed row, so most imports get to write
            meta += "\n" + json.dumps({meta_keys[0]: "B1", "title": "Scarf"})
            reviews += "\n" + json.dumps({review_keys[0]: "u", review_keys[1]: "B1", review_keys[3]: 1500000000})
        r, m = work / "reviews.json", work / "meta.json"
        r.write_bytes(gzip.compress(reviews.encode()) if gz else reviews.encode())
        m.write_bytes(meta.encode())
        _import_holds_the_policy(fmt, [r, m], work, strict)


def _csv(rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode(encoding, "surrogatepass" if encoding == "utf-8" else "replace")


CSV_CELL = st.one_of(CELL, st.sampled_from(["B1", "B2", "a/b", "a_b", "../x", "1600000000", "4"]))


@IMPORTS
@given(st.booleans(), st.booleans(), st.data())
def test_generic_csv_imports_hold_the_policy(strict, with_images, data):
    with _workdir() as work:
        (work / "photos").mkdir()
        (work / "photos" / "p.png").write_bytes(_png())
        (work / "secret.png").write_bytes(_png((255, 0, 0)))
        image_cell = st.sampled_from(["p.png", "../secret.png", str(work / "secret.png"), "missing.png", ""])
        items = [["item_id", "title", "price", "image"]] + [
            [data.draw(CSV_CELL), data.draw(CSV_CELL), data.draw(CSV_CELL), data.draw(image_cell)]
            for _ in range(data.draw(st.integers(0, 6)))
        ]
        inter = [["user_id", "item_id", "timestamp", "rating"]] + [
            [data.draw(CSV_CELL) for _ in range(4)] for _ in range(data.draw(st.integers(0, 8)))
        ]
        if data.draw(st.booleans()):
            items.append(["B1", "Scarf", "3", "p.png"])
            inter.append(["u", "B1", "1600000000", "4"])
        raw_items = _csv(items, data.draw(st.sampled_from(["utf-8", "latin-1"])))
        if data.draw(st.booleans()):  # a cut-off last line, or a stray byte that is not UTF-8
            raw_items = raw_items[: data.draw(st.integers(0, len(raw_items)))] + data.draw(st.binary(max_size=3))
        (work / "items.csv").write_bytes(raw_items)
        (work / "events.csv").write_bytes(_csv(inter))
        opts = {"images": work / "photos"} if with_images else {}
        _import_holds_the_policy("generic", [work / "items.csv", work / "events.csv"], work, strict, **opts)


PARQUET_COLUMN = st.sampled_from(
    [
        pa.array([1, 2, None, -5]),
        pa.array([1.0, float("nan"), float("inf"), 4.0]),
        pa.array(["B1", "a/b", "../x", None]),
        pa.array([1600000000, 10**18, -1, 0]),
        pa.array([True, False, None, True]),
    ]
)


@IMPORTS
@given(st.booleans(), st.data())
def test_generic_parquet_imports_hold_the_policy(strict, data):
    with _workdir() as work:
        items = pa.table({name: data.draw(PARQUET_COLUMN) for name in ("item_id", "title", "price")})
        inter = pa.table({n: data.draw(PARQUET_COLUMN) for n in ("user_id", "item_id", "timestamp", "rating")})
        pq.write_table(items, work / "items.parquet")
        pq.write_table(inter, work / "events.parquet")
        unit = data.draw(st.sampled_from(["s", "ms", "auto"]))
        mapping = {"options": {"timestamp_unit": unit}}
        sources = [work / "items.parquet", work / "events.parquet"]
        _import_holds_the_policy("generic", sources, work, strict, mapping=mapping)


@IMPORTS
@given(st.booleans(), st.data())
def test_movielens_imports_hold_the_policy(strict, data):
    cell = st.one_of(CELL, st.sampled_from(["1", "2", "5", "874965758", "3.5"])).map(
        lambda s: s.replace("\t", " ").replace("|", " ").replace("\n", " ").replace("\r", " ")
    )
    with _workdir() as work:
        ml100k, mlcsv = work / "ml-100k", work / "ml-csv"
        ml100k.mkdir()
        mlcsv.mkdir()
        flags = "|".join(["0"] * 19)
        u_item = [f"{data.draw(cell)}|{data.draw(cell)}|01-Jan-1995||http://x|{flags}" for _ in range(3)]
        u_data = ["\t".join(data.draw(cell) for _ in range(data.draw(st.integers(3, 5)))) for _ in range(4)]
        (ml100k / "u.item").write_bytes(
            ("\n".join([*u_item, f"1|Toy Story|01-Jan-1995||x|{flags}"])).encode("latin-1", "replace")
        )
        (ml100k / "u.data").write_text("\n".join([*u_data, "7\t1\t4\t874965758"]) + "\n")
        movies = [["movieId", "title", "genres"], *([data.draw(cell) for _ in range(3)] for _ in range(3))]
        ratings = [
            ["userId", "movieId", "rating", "timestamp"],
            *([data.draw(cell) for _ in range(4)] for _ in range(4)),
        ]
        (mlcsv / "movies.csv").write_bytes(_csv([*movies, ["1", "Toy Story", "Comedy"]]))
        (mlcsv / "ratings.csv").write_bytes(_csv([*ratings, ["7", "1", "4.0", "964982703"]]))
        _import_holds_the_policy("movielens-100k", ml100k, work, strict)
        shutil.rmtree(work / "out", ignore_errors=True)
        _import_holds_the_policy("movielens-csv", mlcsv, work, strict)


# --------------------------------------------------------------------------- the CLI's argument parsing


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "ds"
    with DatasetWriter(out, source={"format": "test"}) as w:
        w.set_tables(
            items=[{"item_id": f"i{n}", "title": f"item {n}", "image_url": "ftp://nowhere"} for n in range(4)],
            interactions=[{"user_id": f"u{n % 3}", "item_id": f"i{n % 4}", "timestamp": n} for n in range(12)],
        )
    return out


OPTION_VALUE = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e999", "", " ", "0.5,0.5", "nan,0.5,0.5", "1,0,0", "2"]),
    st.integers(-(10**12), 10**12).map(str),
    st.floats().map(str),
    st.text(max_size=8).filter(lambda s: not s.startswith("-")),
)
COMMANDS = {
    "split": (["data", "split", "{ds}", "--method", "user", "--name", "p", "--overwrite"], ["--fractions", "--seed"]),
    "window": (
        ["data", "split", "{ds}", "--method", "window", "--name", "w", "--overwrite"],
        ["--history", "--stride"],
    ),
    "stats": (["data", "stats", "{ds}"], ["--bins"]),
    "fetch": (
        ["data", "fetch-images", "{ds}", "--no-progress"],
        ["--concurrency", "--retries", "--timeout", "--deadline", "--min-size"],
    ),
    # --out exists and is no dataset, so a build that parses fails fast instead of building a shop.
    "build": (["world", "build", "--out", "{ds}"], ["--items", "--users", "--seed", "--image-size", "--mean-history"]),
    "judge": (["judge", "{ds}"], ["--limit"]),
}


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(COMMANDS)), st.data())
def test_cli_options_end_in_a_result_or_one_clear_error(tiny_dataset, command, data):
    base, options = COMMANDS[command]
    args = [a.format(ds=tiny_dataset) for a in base]
    for option in data.draw(st.lists(st.sampled_from(options), min_size=1, max_size=3, unique=True)):
        args += [option, data.draw(OPTION_VALUE)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code in (0, 2), (args, result.output)
    if result.exit_code == 2:
        last = result.output.strip().splitlines()[-1]
        assert last.startswith(("error: ", "Error: ")), (args, result.output)
        assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    assert validate_dataset(tiny_dataset, check_images=False) == []

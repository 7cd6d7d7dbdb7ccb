"""Regression tests for the hostile inputs of issue #22: each ends in a counted skip or a clear one-line error,
writes nothing outside its output, and leaves what was stored intact."""

from __future__ import annotations

import gzip
import io
import json
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from tailorgen.cli import main
from tailorgen.common import atomic_dir
from tailorgen.data import DataError, Dataset, DatasetWriter, validate_dataset
from tailorgen.data.adapters import import_dataset
from tailorgen.data.splits import user_split


def _png(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _generic(tmp: Path, items: str, events: str) -> list[Path]:
    (tmp / "items.csv").write_text(items, encoding="utf-8")
    (tmp / "events.csv").write_text(events, encoding="utf-8")
    return [tmp / "items.csv", tmp / "events.csv"]


def _skips(out: Path) -> list[tuple[int | None, str | None, str]]:
    report = json.loads((out / "import_report.json").read_text())
    return [(s["line"], s["field"], s["reason"]) for s in report["skipped"]]


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _ml100k(root: Path) -> Path:
    root.mkdir(parents=True)
    flags = "|".join(["0"] * 19)
    (root / "u.data").write_text("1\t1\t5\t874965758\n2\t1\t4\t888550871\n")
    (root / "u.item").write_text(f"1|Toy Story|01-Jan-1995||http://x|{flags}\n")
    return root


# --------------------------------------------------------------------------- ids and paths


def test_ids_that_look_like_paths_are_data_and_never_name_a_file(tmp_path):
    ids = ["../../../x", str(tmp_path / "abs"), "😀/../x", "../../etc/passwd", "..", "a/b", "a_b", "CON"]
    (tmp_path / "photos").mkdir()
    rows = []
    for n, item_id in enumerate(ids):
        (tmp_path / "photos" / f"p{n}.png").write_bytes(_png((n * 30, 0, 255 - n * 30)))
        rows.append(f'"{item_id}",Item {n},p{n}.png')
    sources = _generic(
        tmp_path,
        "item_id,title,image\n" + "\n".join(rows) + "\n",
        "user_id,item_id,timestamp\n" + "".join(f'"../u{n}","{i}",1600000000\n' for n, i in enumerate(ids)),
    )
    before = _files(tmp_path)
    out = import_dataset("generic", sources, tmp_path / "w" / "out", images=tmp_path / "photos")
    assert {p for p in _files(tmp_path) - before if not p.startswith("w")} == set()
    ds = Dataset(out)
    assert sorted(ds.item_row) == sorted(ids)  # every id kept exactly as written
    for n, item_id in enumerate(ids):
        image = ds.item(item_id)["image"]
        assert image.startswith("images/") and ".." not in image and "/" not in image.removeprefix("images/")
        assert ds.load_image(item_id).getpixel((0, 0)) == (n * 30, 0, 255 - n * 30), item_id
    assert ds.item("a_b")["image"] == "images/a_b.png"  # plain ids keep their own name
    assert validate_dataset(out) == []


def test_image_paths_that_leave_the_image_folder_are_counted_skips(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "ok.png").write_bytes(_png((0, 255, 0)))
    (tmp_path / "secret.png").write_bytes(_png((255, 0, 0)))
    sources = _generic(
        tmp_path,
        f"item_id,title,image\na,A,../secret.png\nb,B,{tmp_path / 'secret.png'}\nc,C,ok.png\n",
        "user_id,item_id,timestamp\nu,a,1600000000\n",
    )
    ds = Dataset(import_dataset("generic", sources, tmp_path / "out", images=tmp_path / "photos"))
    assert [ds.item(i)["image"] is not None for i in "abc"] == [False, False, True]
    (a, b) = _skips(ds.root)
    assert a[:2] == (2, "image") and "leaves" in a[2] and "item 'a' kept" in a[2]
    assert b[:2] == (3, "image") and "absolute" in b[2]


def test_values_of_the_wrong_type_are_skips_not_strings(tmp_path):
    reviews = _jsonl(
        tmp_path / "r.json",
        [
            {"reviewerID": {"a": 1}, "asin": "X1", "overall": 5, "unixReviewTime": 1500000000},
            '{"reviewerID": "\\ud800", "asin": "X1", "overall": 5, "unixReviewTime": 1500000000}',
            {"reviewerID": True, "asin": "X1", "overall": 5, "unixReviewTime": 1500000000},
            {"reviewerID": "R", "asin": "X1", "overall": 5, "unixReviewTime": 1500000000},
        ],
    )
    meta = _jsonl(
        tmp_path / "m.json",
        [{"asin": {"x": 1}, "title": "Dict"}, {"asin": "X1", "title": "Scarf", "imageURLHighRes": "https://i/x1.jpg"}],
    )
    ds = Dataset(import_dataset("amazon2018", [reviews, meta], tmp_path / "out"))
    assert list(ds.item_row) == ["X1"] and ds.item("X1")["image_url"] == "https://i/x1.jpg"
    assert ds.interactions.column("user_id").to_pylist() == ["R"]
    skips = _skips(ds.root)
    assert [(line, field) for line, field, _ in skips] == [
        (1, "item_id"),
        (1, "user_id"),
        (2, "user_id"),
        (3, "user_id"),
    ]
    assert all(reason.startswith("not an id") for _, _, reason in skips)


# --------------------------------------------------------------------------- --overwrite


def test_overwrite_never_replaces_a_source_of_the_same_command(tmp_path):
    src = _ml100k(tmp_path / "work" / "ml-100k")
    (tmp_path / "posters").mkdir()
    (tmp_path / "posters" / "1.png").write_bytes(_png((1, 2, 3)))
    before = _files(tmp_path)
    for out, opts in [(src, {}), (tmp_path / "work", {}), (tmp_path / "posters", {"images": tmp_path / "posters"})]:
        with pytest.raises(ValueError, match="which this command reads"):
            import_dataset("movielens-100k", src, out, overwrite=True, **opts)
    assert _files(tmp_path) == before
    r = _run("data", "import", "movielens-100k", src, "--out", src, "--overwrite")
    assert r.exit_code == 2 and r.output.count("\n") == 1 and r.output.startswith("error: the dataset folder")
    assert (src / "u.data").is_file()


def test_overwrite_replaces_only_a_tailorgen_dataset(tmp_path):
    src = _ml100k(tmp_path / "ml-100k")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("years of work")
    (tmp_path / "notes.txt").write_text("keep")
    for out in (tmp_path / "notes", tmp_path / "notes.txt"):
        with pytest.raises(FileExistsError, match="not a tailorgen dataset|is a file"):
            import_dataset("movielens-100k", src, out, overwrite=True)
    with (
        pytest.raises(FileExistsError, match="not a tailorgen dataset"),
        DatasetWriter(tmp_path / "notes", source={}, overwrite=True),
    ):
        pass
    assert (tmp_path / "notes" / "thesis.tex").read_text() == "years of work"
    assert (tmp_path / "notes.txt").read_text() == "keep"
    ds = import_dataset("movielens-100k", src, tmp_path / "ds")
    import_dataset("movielens-100k", src, ds, overwrite=True)  # a dataset is replaced
    assert validate_dataset(ds) == []


def test_an_empty_out_is_refused(tmp_path, monkeypatch):
    src = _ml100k(tmp_path / "ml-100k")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="empty path"):
        import_dataset("movielens-100k", src, "")
    r = _run("data", "import", "movielens-100k", src, "--out", "")
    assert r.exit_code == 2 and "empty path" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-100k"]


def test_a_symlinked_out_keeps_the_link_and_leaves_nothing_behind(tmp_path):
    src = _ml100k(tmp_path / "ml-100k")
    import_dataset("movielens-100k", src, tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    import_dataset("movielens-100k", src, tmp_path / "link", overwrite=True)
    assert (tmp_path / "link").is_symlink() and Dataset(tmp_path / "link").manifest["counts"]["items"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "ml-100k", "real"]


_WRITER = textwrap.dedent(
    """
    import signal, sys, time
    # A shell's background job starts with SIGINT ignored, and the child would inherit that: a
    # user's Ctrl-C reaches a foreground process, whose SIGINT raises KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from tailorgen.common import atomic_dir
    with atomic_dir(sys.argv[1]) as tmp:
        (tmp / "half.txt").write_text("half")
        print("ready", flush=True)
        time.sleep(30)
    """
)


# SIGTERM ends the write with Terminated (status 143); SIGINT with KeyboardInterrupt, which Python ends by
# dying of SIGINT (status -2 here). Either way the temporary folder is gone.
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, -signal.SIGINT)])
def test_a_signal_during_a_write_leaves_nothing_behind(tmp_path, sig, code):
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path / "out")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    assert proc.wait(timeout=20) == code
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writer_s_leftovers_are_removed_by_the_next_write(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path / "out")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.kill()  # SIGKILL cannot be caught: the temporary folder stays ...
    proc.wait(timeout=20)
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".out.partial-")
    with atomic_dir(tmp_path / "out") as tmp:  # ... until the next write to the same output
        (tmp / "done.txt").write_text("done")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# --------------------------------------------------------------------------- numbers and timestamps


def test_numbers_that_are_not_numbers_are_skips(tmp_path):
    sources = _generic(
        tmp_path,
        'item_id,title,price\na,A,nan\nb,B,inf\nc,C,-5\nd,D,1e999\ne,E,$1 - $2\nf,F,"$1,299.00"\n',
        "user_id,item_id,timestamp,rating\n"
        + "".join(f"u{n},a,{1600000000 + n},{r}\n" for n, r in enumerate(["nan", "inf", "-1000", "1e999", "4.5"])),
    )
    ds = Dataset(import_dataset("generic", sources, tmp_path / "out"))
    assert ds.items.column("price").to_pylist() == [None, None, None, None, None, 1299.0]
    assert ds.interactions.column("rating").to_pylist() == [4.5]
    assert [(line, field, reason.split(":")[0]) for line, field, reason in _skips(ds.root)] == [
        (2, "price", "not a finite number"),
        (3, "price", "not a finite number"),
        (4, "price", "negative price"),
        (5, "price", "not a finite number"),
        (2, "rating", "not a finite number"),
        (3, "rating", "not a finite number"),
        (4, "rating", "out of range"),
        (5, "rating", "not a finite number"),
    ]
    assert ds.extra("e") == {"price": "$1 - $2"}  # a price range is text, kept in extra


def test_json_nan_infinity_and_true_are_not_ratings_or_prices(tmp_path):
    reviews = _jsonl(
        tmp_path / "r.json",
        [
            '{"reviewerID": "A", "asin": "X1", "overall": NaN, "unixReviewTime": 1500000000}',
            {"reviewerID": "B", "asin": "X1", "overall": True, "unixReviewTime": 1500000000},
            {"reviewerID": "C", "asin": "X1", "overall": 0, "unixReviewTime": 1500000000},
            {"reviewerID": "D", "asin": "X1", "overall": 4, "unixReviewTime": 1500000000},
        ],
    )
    meta = _jsonl(tmp_path / "m.json", ['{"asin": "X1", "title": "Scarf", "price": Infinity}'])
    ds = Dataset(import_dataset("amazon2018", [reviews, meta], tmp_path / "out"))
    assert ds.interactions.column("user_id").to_pylist() == ["D"] and ds.item("X1")["price"] is None
    assert [(line, field) for line, field, _ in _skips(ds.root)] == [
        (1, "price"),
        (1, "rating"),
        (2, "rating"),
        (3, "rating"),
    ]


def test_timestamp_units_are_detected_and_dates_checked(tmp_path):
    reviews = _jsonl(
        tmp_path / "r.json",
        [
            {"user_id": "s", "parent_asin": "P", "rating": 5, "timestamp": 1588687728},  # seconds in a 2023 file
            {"user_id": "ms", "parent_asin": "P", "rating": 5, "timestamp": 1588687728923},
            '{"user_id": "inf", "parent_asin": "P", "rating": 5, "timestamp": 1e400}',
            {"user_id": "huge", "parent_asin": "P", "rating": 5, "timestamp": 10**30},
            {"user_id": "1970", "parent_asin": "P", "rating": 5, "timestamp": 1000},
        ],
    )
    meta = _jsonl(tmp_path / "m.json", [{"parent_asin": "P", "title": "Soap"}])
    ds = Dataset(import_dataset("amazon2023", [reviews, meta], tmp_path / "out"))
    rows = ds.interactions.select(["user_id", "timestamp"]).to_pylist()
    assert rows == [{"user_id": "s", "timestamp": 1588687728}, {"user_id": "ms", "timestamp": 1588687728}]
    assert [(line, field, reason.split(":")[0]) for line, field, reason in _skips(ds.root)] == [
        (3, "timestamp", "not a finite number"),
        (4, "timestamp", "implausible date"),
        (5, "timestamp", "implausible date"),
    ]
    assert "1970-01-01" in _skips(ds.root)[2][2] and "is the timestamp unit right?" in _skips(ds.root)[2][2]


def test_generic_dates_outside_the_plausible_range_and_a_relative_clock(tmp_path):
    sources = _generic(
        tmp_path,
        "item_id,title\na,A\n",
        "user_id,item_id,timestamp\nu,a,0001-01-01T00:00:00\nv,a,9999-12-31\nw,a,5\nx,a,2020-02-29T12:00:00\n",
    )
    ds = Dataset(import_dataset("generic", sources, tmp_path / "out"))
    assert ds.interactions.column("user_id").to_pylist() == ["x"]
    assert [field for _, field, _ in _skips(ds.root)] == ["timestamp"] * 3
    # A relative clock (like the simulated shop's, from 0) imports with check_dates off.
    mapping = {"options": {"check_dates": "false"}}
    (tmp_path / "events.csv").write_text("user_id,item_id,timestamp\nu,a,0\nv,a,5\n")
    ds = Dataset(import_dataset("generic", sources, tmp_path / "clock", mapping=mapping))
    assert ds.interactions.column("timestamp").to_pylist() == [0, 5]


def test_the_writer_refuses_numbers_that_are_not_finite(tmp_path):
    message = r"interactions:0: field 'rating': value inf is not a finite number"
    with pytest.raises(DataError, match=message), DatasetWriter(tmp_path / "ds", source={}) as w:
        inter = [{"user_id": "u", "item_id": "a", "timestamp": 1, "rating": float("inf")}]
        w.set_tables(items=[{"item_id": "a", "title": "A"}], interactions=inter)
    assert list(tmp_path.iterdir()) == []


def _poisoned(tmp_path: Path) -> Path:
    """A dataset whose ratings were made infinite and NaN by code other than an import."""
    with DatasetWriter(tmp_path / "ds", source={}) as w:
        inter = [{"user_id": f"u{n}", "item_id": "a", "timestamp": n, "rating": 4.0} for n in range(3)]
        w.set_tables(items=[{"item_id": "a", "title": "A"}], interactions=inter)
    table = pq.read_table(tmp_path / "ds" / "interactions.parquet")
    table = table.set_column(3, "rating", pa.array([float("inf"), float("nan"), 4.0], pa.float32()))
    pq.write_table(table, tmp_path / "ds" / "interactions.parquet")
    return tmp_path / "ds"


def test_stats_never_print_infinity_or_nan(tmp_path):
    ds = _poisoned(tmp_path)
    text = _run("data", "stats", ds)
    numbers = text.output.split("\n", 1)[1]  # past the dataset's path
    assert text.exit_code == 0 and not re.search(r"\b(inf|nan)\b", numbers)
    assert "2 are NaN or infinite and left out" in text.output and "mean 4.00" in text.output
    as_json = _run("data", "stats", ds, "--json")
    strict = json.loads(as_json.output, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert strict["ratings"] == {"n": 1, "mean": 4.0, "min": 4.0, "max": 4.0, "non_finite": 2, "counts": {"4": 1}}
    assert "not finite numbers" in " ".join(validate_dataset(ds))


def test_split_fractions_must_be_finite(tmp_path):
    ds = import_dataset("movielens-100k", _ml100k(tmp_path / "ml"), tmp_path / "ds")
    for fractions in ("nan,0.5,0.5", "inf,-inf,1", "-0.5,1,0.5"):
        r = _run("data", "split", ds, "--method", "user", "--fractions", fractions)
        assert r.exit_code == 2 and "three non-negative fractions" in r.output
    assert not (ds / "splits").exists()
    with pytest.raises(ValueError, match="fractions must be"):
        user_split(Dataset(ds).interactions, (float("nan"), 0.5, 0.5))


def test_split_overwrite_replaces_only_a_split(tmp_path):
    ds = import_dataset("movielens-100k", _ml100k(tmp_path / "ml"), tmp_path / "ds")
    (ds / "splits" / "loo").mkdir(parents=True)
    (ds / "splits" / "loo" / "mine.txt").write_text("mine")
    r = _run("data", "split", ds, "--method", "loo", "--overwrite")
    assert r.exit_code == 2 and "not a tailorgen split" in r.output
    assert (ds / "splits" / "loo" / "mine.txt").read_text() == "mine"
    r = _run("data", "split", ds, "--method", "loo", "--name", "../../evil")
    assert r.exit_code == 2 and "plain folder name" in r.output and not (tmp_path / "evil").exists()


# --------------------------------------------------------------------------- unclear errors made clear


def test_a_truncated_gzip_is_a_located_error(tmp_path):
    meta = "".join(json.dumps({"asin": f"X{i}", "title": "t" * 40}) + "\n" for i in range(200)).encode()
    (tmp_path / "meta.json.gz").write_bytes(gzip.compress(meta)[:300])
    (tmp_path / "items.csv.gz").write_bytes(gzip.compress(b"item_id,title\n" + b"i,T\n" * 2000)[:40])
    _jsonl(tmp_path / "r.json", [])
    with pytest.raises(DataError, match=r"meta.json.gz:\d+: the gzip stream is truncated or corrupt"):
        import_dataset("amazon2018", [tmp_path / "r.json", tmp_path / "meta.json.gz"], tmp_path / "out")
    (tmp_path / "events.csv").write_text("user_id,item_id,timestamp\n")
    r = _run("data", "import", "generic", tmp_path / "items.csv.gz", tmp_path / "events.csv", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "gzip stream is truncated" in r.output and "Aborted" not in r.output
    assert r.output.count("\n") == 1


def test_an_undecodable_byte_is_reported_at_its_own_line(tmp_path):
    rows = b"".join(f"i{i},Title {i}\n".encode() for i in range(10)) + b"i10,Caf\xe9\n"
    (tmp_path / "items.csv").write_bytes(b"item_id,title\n" + rows)
    (tmp_path / "events.csv").write_text("user_id,item_id,timestamp\n")
    with pytest.raises(DataError, match=r"items.csv:12: not valid utf-8-sig text .*options.encoding=latin-1"):
        import_dataset("generic", [tmp_path / "items.csv", tmp_path / "events.csv"], tmp_path / "out")
    ds = import_dataset(
        "generic",
        [tmp_path / "items.csv", tmp_path / "events.csv"],
        tmp_path / "ok",
        mapping={"options": {"encoding": "latin-1"}},
    )
    assert Dataset(ds).item("i10")["title"] == "Café"


def test_a_byte_order_mark_is_ignored_whatever_the_encoding_is_called(tmp_path):
    (tmp_path / "items.csv").write_bytes("\ufeffitem_id,title\na,Mug\n".encode())
    (tmp_path / "events.csv").write_bytes("\ufeffuser_id,item_id,timestamp\nu,a,1600000000\n".encode())
    ds = import_dataset(
        "generic",
        [tmp_path / "items.csv", tmp_path / "events.csv"],
        tmp_path / "out",
        mapping={"options": {"encoding": "utf-8"}},
    )
    assert Dataset(ds).interactions.column("user_id").to_pylist() == ["u"]


def test_swapped_reviews_and_meta_are_named(tmp_path):
    reviews = _jsonl(
        tmp_path / "r.json", [{"reviewerID": "A", "asin": "X1", "overall": 5, "unixReviewTime": 1500000000}]
    )
    meta = _jsonl(tmp_path / "m.json", [{"asin": "X1", "title": "Scarf"}])
    r = _run("data", "import", "amazon2018", meta, reviews, "--out", tmp_path / "out")
    assert r.exit_code == 2 and "are REVIEWS and META swapped?" in r.output and r.output.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_no_items_left_names_what_was_skipped_instead_of_an_unwritten_report(tmp_path):
    sources = _generic(tmp_path, "item_id,title\na,\nb,\n", "user_id,item_id,timestamp\n")
    with pytest.raises(
        DataError, match=r"no items left to write; 2 rows skipped .* the first at .*items.csv:2: field 'title'"
    ):
        import_dataset("generic", sources, tmp_path / "out")


def test_a_file_that_is_not_parquet_is_a_located_error(tmp_path):
    (tmp_path / "items.parquet").write_bytes(b"PAR1 not really")
    (tmp_path / "events.csv").write_text("user_id,item_id,timestamp\n")
    with pytest.raises(DataError, match=r"items.parquet: not a readable Parquet file"):
        import_dataset("generic", [tmp_path / "items.parquet", tmp_path / "events.csv"], tmp_path / "out")


# --------------------------------------------------------------------------- validation


def test_validate_finds_tampering(tmp_path):
    ds = import_dataset("movielens-100k", _ml100k(tmp_path / "ml"), tmp_path / "ds")
    assert _run("data", "validate", ds).exit_code == 0
    items = pq.read_table(ds / "items.parquet")
    items = items.set_column(items.schema.get_field_index("image"), "image", pa.array(["../../etc/passwd"]))
    pq.write_table(items, ds / "items.parquet")
    problems = validate_dataset(ds)
    assert any("content hash differs" in p for p in problems) and any("leaves" in p for p in problems)
    r = _run("data", "validate", ds)
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1].startswith("error: ")


def test_interrupted_import_via_the_cli_is_one_line(tmp_path, monkeypatch):
    src = _ml100k(tmp_path / "ml")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("tailorgen.data.adapters.movielens.clean_items", interrupted)
    r = _run("data", "import", "movielens-100k", src, "--out", tmp_path / "out")
    assert r.exit_code == 130 and r.output == "error: interrupted\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml"]

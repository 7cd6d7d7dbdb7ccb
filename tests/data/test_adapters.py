"""Dataset adapters: each public format imports into the schema, and every bad row is located.

Fixtures are tiny files in each real format, written by the tests into tmp_path.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from tailorgen.cli import main
from tailorgen.data import DataError, Dataset
from tailorgen.data.adapters import ADAPTERS, adapter_options, import_dataset, load_mapping

# --------------------------------------------------------------------------- helpers


def _image(fmt: str = "JPEG", colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (6, 4), colour).save(buf, format=fmt)
    return buf.getvalue()


def _jsonl(path: Path, rows: list, gz: bool = False) -> Path:
    """Write rows as lines: dicts as JSON, strings verbatim (for broken or Python-literal lines)."""
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
    if gz:
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _report(out: Path) -> dict:
    return json.loads((out / "import_report.json").read_text())


def _skips(out: Path) -> list[tuple[str, int | None, str | None, str]]:
    """(file name, line, field, reason) of every skip, for compact assertions."""
    return [(Path(s["file"]).name, s["line"], s["field"], s["reason"]) for s in _report(out)["skipped"]]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- fixtures in each format


def amazon2014(tmp: Path) -> list[Path]:
    reviews = [
        {"reviewerID": "A1", "asin": "B001", "overall": 5.0, "unixReviewTime": 1252800000,
         "reviewText": "Lovely dress.", "summary": "Great", "helpful": [2, 3], "reviewTime": "09 13, 2009"},
        {"reviewerID": "A2", "asin": "B002", "overall": 3.0, "unixReviewTime": 1252900000, "reviewText": "Ok."},
        {"reviewerID": "A1", "asin": "B002", "overall": 4.0, "unixReviewTime": 1253000000, "summary": "Nice"},
    ]  # fmt: skip
    meta = [
        # The eval-style line the 2014 dump is known for: single quotes, a nested dict, list of lists.
        "{'asin': 'B001', 'title': \"Girls' Ballet Tutu\", 'price': 3.17, "
        "'imUrl': 'http://ecx.images-amazon.com/images/I/51fAmVkTbyL.jpg', "
        "'related': {'also_bought': ['B002']}, 'salesRank': {'Toys & Games': 211836}, 'brand': 'Coxlures', "
        "'categories': [['Clothing, Shoes & Jewelry', 'Girls', 'Dresses'], ['Sports & Outdoors', 'Dance']]}",
        {"asin": "B002", "title": "Tote bag", "description": "Canvas tote.", "categories": [["Bags", "Totes"]]},
    ]
    return [_jsonl(tmp / "reviews_Test_5.json.gz", reviews, gz=True), _jsonl(tmp / "meta_Test.json", meta)]


def amazon2018(tmp: Path) -> list[Path]:
    reviews = [
        {"reviewerID": "R1", "asin": "X1", "overall": 5.0, "unixReviewTime": 1500000000, "reviewText": "Warm.",
         "summary": "Five stars", "verified": True, "vote": "3", "style": {"Size:": " Large"}},
        {"reviewerID": "R2", "asin": "X2", "overall": 2.0, "unixReviewTime": 1500000100, "reviewText": "Small."},
        {"reviewerID": "R2", "asin": "X1", "overall": 4.0, "unixReviewTime": 1500000200},
    ]  # fmt: skip
    meta = [
        {"asin": "X1", "title": "Wool scarf", "description": ["Soft wool.", "Hand wash."],
         "category": ["Clothing, Shoes & Jewelry", "Women", "Scarves"], "price": "$12.99", "brand": "Knitco",
         "imageURL": ["https://img/x1-small.jpg"], "imageURLHighRes": ["https://img/x1.jpg", "https://img/x1b.jpg"],
         "feature": ["100% wool"], "rank": "12,345 in Clothing"},
        {"asin": "X2", "title": "Beanie", "description": [], "category": [], "price": "$10.99 - $15.99"},
    ]  # fmt: skip
    return [_jsonl(tmp / "Test_5.json", reviews), _jsonl(tmp / "meta_Test.json.gz", meta, gz=True)]


def amazon2023(tmp: Path) -> list[Path]:
    reviews = [
        {"rating": 5.0, "title": "Love it", "text": "Smells great", "images": [], "asin": "V1",
         "parent_asin": "P1", "user_id": "U1", "timestamp": 1588687728923, "helpful_vote": 0,
         "verified_purchase": True},
        {"rating": 1.0, "title": "Meh", "text": "", "asin": "P2", "parent_asin": "P2", "user_id": "U2",
         "timestamp": 1588687800000},
    ]  # fmt: skip
    meta = [
        {"main_category": "All Beauty", "title": "Rose soap", "average_rating": 4.8, "rating_number": 10,
         "features": ["Handmade"], "description": ["Rose scented."], "price": 6.5,
         "images": [{"thumb": "https://t/p1.jpg", "large": "https://l/p1-alt.jpg", "variant": "PT01", "hi_res": None},
                    {"thumb": "https://t/p1m.jpg", "large": "https://l/p1.jpg", "variant": "MAIN", "hi_res": None}],
         "videos": [], "store": "SoapCo", "categories": ["Beauty", "Bath", "Soaps"],
         "details": {"Item Form": "Bar"}, "parent_asin": "P1", "bought_together": None},
        {"main_category": "All Beauty", "title": "Lotion", "description": [], "price": None, "images": [],
         "store": None, "categories": [], "details": {}, "parent_asin": "P2"},
    ]  # fmt: skip
    return [_jsonl(tmp / "All_Beauty.jsonl", reviews), _jsonl(tmp / "meta_All_Beauty.jsonl", meta)]


GENRE_FLAGS = {"1": "0|0|0|1|1|1|" + "|".join(["0"] * 13), "2": "0|1|1|" + "|".join(["0"] * 16)}


def ml100k(tmp: Path, posters: bool = True) -> Path:
    root = tmp / "ml-100k"
    root.mkdir()
    (root / "u.data").write_text("1\t1\t5\t874965758\n1\t2\t3\t876893171\n2\t1\t4\t888550871\n")
    u_item = (
        f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|{GENRE_FLAGS['1']}\n"
        f'2|Café "Noir" (1995)|01-Jan-1995||http://us.imdb.com/x|{GENRE_FLAGS["2"]}\n'
    )
    (root / "u.item").write_bytes(u_item.encode("latin-1"))
    (root / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n")
    if posters:
        p = tmp / "posters"
        p.mkdir()
        (p / "1.jpg").write_bytes(_image())
        (p / "2.jpg").write_bytes(b"\xff\xd8 this is not really a jpeg")
    return root


def mlcsv(tmp: Path) -> Path:
    root = tmp / "ml-latest-small"
    root.mkdir()
    (root / "movies.csv").write_text(
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
        '11,"American President, The (1995)",Comedy|Drama|Romance\n'
        "12,Some Film (2001),(no genres listed)\n"
    )
    (root / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,11,3.5,964981247\n2,1,5.0,964982224\n"
    )
    (root / "tags.csv").write_text(
        "userId,movieId,tag,timestamp\n2,1,pixar,1445714994\n3,1,Pixar,1445714996\n3,1,fun,1445714997\n"
        "3,12,comedy,1445714998\n"
    )
    (root / "links.csv").write_text("movieId,imdbId,tmdbId\n1,0114709,862\n11,0112346,9087\n")
    return root


def generic(tmp: Path) -> tuple[list[Path], Path]:
    """Items CSV with its own column names and image paths, Parquet interactions, a users CSV; and its mapping."""
    (tmp / "photos").mkdir()
    (tmp / "photos" / "a.png").write_bytes(_image("PNG"))
    (tmp / "products.csv").write_text(
        "sku,name,blurb,kind,keywords,photo,maker,cost,colour\n"
        "s1,Red shirt,A red shirt.,shirt,red;cotton,photos/a.png,Acme,19.5,red\n"
        'S2,"Blue jeans, slim",,jeans,"[""blue"", ""denim""]",photos/missing.png,Acme,"$1,299.00",blue\n'
    )
    pq.write_table(
        pa.table(
            {
                "customer": ["c1", "c1", "c2"],
                "sku": ["s1", "S2", "s1"],
                "ts": [1_600_000_000_000, 1_600_000_100_000, 1_600_000_200_000],
                "stars": [5, 4, None],
            }
        ),
        tmp / "orders.parquet",
    )
    (tmp / "customers.csv").write_text("customer,country\nc1,DE\nc2,FR\nc3,IT\n")
    mapping = tmp / "mapping.yaml"
    mapping.write_text(
        "items:\n  item_id: sku\n  title: name\n  description: blurb\n  category: kind\n  tags: keywords\n"
        "  image: photo\n  brand: maker\n  price: cost\n"
        "interactions:\n  user_id: customer\n  timestamp: ts\n  rating: stars\n"
        "options:\n  tags_sep: ';'\n  timestamp_unit: ms\n"
    )
    return [tmp / "products.csv", tmp / "orders.parquet", tmp / "customers.csv"], mapping


# --------------------------------------------------------------------------- each format imports


def test_registry_lists_every_format_with_common_options():
    assert set(ADAPTERS) == {"amazon2014", "amazon2018", "amazon2023", "movielens-100k", "movielens-csv", "generic"}
    for name in ADAPTERS:
        assert {"overwrite", "strict", "images"} <= set(adapter_options(name))
    assert "mapping" in adapter_options("generic") and "mapping" not in adapter_options("amazon2018")


def test_amazon2014_reads_gzip_and_python_literal_metadata(tmp_path):
    out = import_dataset("amazon2014", amazon2014(tmp_path), tmp_path / "ds")
    ds = Dataset(out)
    assert ds.manifest["counts"] == {
        "items": 2, "interactions": 3, "users": 2, "queries": 0, "items_with_image": 0, "skipped_rows": 0,
    }  # fmt: skip
    tutu = ds.item("B001")
    assert tutu["title"] == "Girls' Ballet Tutu"
    assert tutu["category"] == "Dresses"  # most specific entry of the first path
    assert tutu["tags"] == ["Clothing, Shoes & Jewelry", "Girls", "Dresses", "Sports & Outdoors", "Dance"]
    assert tutu["price"] == pytest.approx(3.17) and tutu["brand"] == "Coxlures"
    assert tutu["image_url"] == "http://ecx.images-amazon.com/images/I/51fAmVkTbyL.jpg"
    extra = ds.extra("B001")
    assert extra["salesRank"] == {"Toys & Games": 211836} and extra["related"] == {"also_bought": ["B002"]}
    assert "title" not in extra and "asin" not in extra
    assert ds.item("B002")["description"] == "Canvas tote."
    rows = ds.interactions.to_pylist()
    assert rows[0] == {"user_id": "A1", "item_id": "B001", "timestamp": 1252800000, "rating": 5.0,
                       "review": "Great\n\nLovely dress."}  # fmt: skip
    assert rows[2]["review"] == "Nice"
    assert ds.user_histories() == {"A1": ["B001", "B002"], "A2": ["B002"]}
    src = ds.manifest["source"]
    assert src["format"] == "amazon2014" and src["sources"]["meta"].endswith("meta_Test.json")


def test_amazon2018_parses_price_text_lists_and_image_urls(tmp_path):
    ds = Dataset(import_dataset("amazon2018", amazon2018(tmp_path), tmp_path / "ds"))
    scarf = ds.item("X1")
    assert scarf["description"] == "Soft wool.\nHand wash."
    assert (scarf["category"], scarf["tags"]) == ("Scarves", ["Clothing, Shoes & Jewelry", "Women", "Scarves"])
    assert scarf["price"] == 12.99 and scarf["image_url"] == "https://img/x1.jpg"
    extra = ds.extra("X1")
    assert extra["price"] == "$12.99"  # the source text is kept
    assert extra["imageURLHighRes"] == ["https://img/x1.jpg", "https://img/x1b.jpg"]
    assert extra["feature"] == ["100% wool"] and "category" not in extra
    beanie = ds.item("X2")
    assert beanie["price"] is None and ds.extra("X2")["price"] == "$10.99 - $15.99"
    assert beanie["description"] is None and beanie["tags"] is None and beanie["category"] is None
    assert len(ds.interactions) == 3 and ds.interactions.column("rating").to_pylist() == [5.0, 2.0, 4.0]


def test_amazon2023_uses_parent_asin_and_converts_milliseconds(tmp_path):
    ds = Dataset(import_dataset("amazon2023", amazon2023(tmp_path), tmp_path / "ds"))
    soap = ds.item("P1")
    assert (soap["title"], soap["brand"], soap["price"]) == ("Rose soap", "SoapCo", 6.5)
    assert soap["image_url"] == "https://l/p1.jpg"  # the MAIN image, not the first listed
    assert (soap["category"], soap["tags"]) == ("Soaps", ["Beauty", "Bath", "Soaps"])
    assert ds.extra("P1")["details"] == {"Item Form": "Bar"} and ds.extra("P1")["main_category"] == "All Beauty"
    assert ds.item("P2")["category"] == "All Beauty"  # main_category when there is no path
    rows = ds.interactions.to_pylist()
    assert [(r["user_id"], r["item_id"], r["timestamp"]) for r in rows] == [
        ("U1", "P1", 1588687728),
        ("U2", "P2", 1588687800),
    ]
    assert rows[0]["review"] == "Love it\n\nSmells great" and rows[1]["review"] == "Meh"


def test_movielens_100k_with_posters_and_users(tmp_path):
    root = ml100k(tmp_path)
    ds = Dataset(import_dataset("movielens-100k", root, tmp_path / "ds", images=tmp_path / "posters"))
    toy = ds.item("1")
    assert toy["title"] == "Toy Story (1995)"
    assert (toy["category"], toy["tags"]) == ("Animation", ["Animation", "Children's", "Comedy"])
    assert ds.extra("1")["imdb_url"].startswith("http://us.imdb.com/") and "video_release_date" not in ds.extra("1")
    assert ds.item("2")["title"] == 'Café "Noir" (1995)'  # latin-1 and unquoted quote marks
    assert ds.load_image("1").size == (6, 4) and toy["image"] == "images/1.jpg"
    assert ds.item("2")["image"] is None  # its poster is broken: kept without image
    assert ds.manifest["counts"]["items_with_image"] == 1
    assert ds.user_histories() == {"1": ["1", "2"], "2": ["1"]}
    assert ds.interactions.column("rating").to_pylist() == [5.0, 3.0, 4.0]
    assert _skips(ds.root) == [
        ("2.jpg", None, "image", _skips(ds.root)[0][3]),
        ("u.user", 3, "user_id", "user with no interactions: '3' has no interaction left"),
    ]
    assert _skips(ds.root)[0][3].startswith("unreadable image: item '2' kept without it")
    assert _report(ds.root)["skipped_by_reason"] == {"unreadable image": 1, "user with no interactions": 1}


def test_movielens_csv_merges_tags_and_links(tmp_path):
    ds = Dataset(import_dataset("movielens-csv", mlcsv(tmp_path), tmp_path / "ds"))
    assert ds.manifest["counts"]["items"] == 3 and len(ds.interactions) == 3
    toy = ds.item("1")
    # Genres first, then user tags merged case-insensitively in first-seen spelling.
    assert toy["tags"] == ["Adventure", "Animation", "Children", "Comedy", "Fantasy", "pixar", "fun"]
    assert toy["category"] == "Adventure"
    tag_counts = {"pixar": 1, "Pixar": 1, "fun": 1}
    assert ds.extra("1") == {"imdbId": "0114709", "tmdbId": "862", "user_tag_counts": tag_counts}
    assert ds.item("11")["title"] == "American President, The (1995)"
    some = ds.item("12")
    assert (some["category"], some["tags"]) == (None, ["comedy"])  # "(no genres listed)" is not a genre
    assert ds.interactions.column("rating").to_pylist() == [4.0, 3.5, 5.0]


def test_generic_with_yaml_mapping_parquet_images_and_users(tmp_path):
    sources, mapping = generic(tmp_path)
    ds = Dataset(import_dataset("generic", sources, tmp_path / "ds", mapping=mapping))
    shirt = ds.item("s1")
    assert (shirt["title"], shirt["category"], shirt["brand"], shirt["price"]) == ("Red shirt", "shirt", "Acme", 19.5)
    assert shirt["tags"] == ["red", "cotton"] and ds.extra("s1") == {"colour": "red"}
    assert ds.load_image("s1").size == (6, 4)
    jeans = ds.item("S2")
    assert jeans["tags"] == ["blue", "denim"] and jeans["description"] is None and jeans["price"] == 1299.0
    assert ds.extra("S2") == {"colour": "blue", "cost": "$1,299.00"}
    assert jeans["image"] is None
    # interactions.item_id was not mapped: it defaults to the column the items table maps item_id to (sku).
    assert ds.interactions.to_pylist() == [
        {"user_id": "c1", "item_id": "s1", "timestamp": 1600000000, "rating": 5.0, "review": None},
        {"user_id": "c1", "item_id": "S2", "timestamp": 1600000100, "rating": 4.0, "review": None},
        {"user_id": "c2", "item_id": "s1", "timestamp": 1600000200, "rating": None, "review": None},
    ]
    assert _skips(ds.root) == [
        ("products.csv", 3, "image", f"image file not found: {tmp_path / 'photos' / 'missing.png'} (item 'S2' kept)"),
        ("customers.csv", 4, "user_id", "user with no interactions: 'c3' has no interaction left"),
    ]
    assert ds.manifest["source"]["options"]["columns"]["interactions"]["item_id"] == "sku"


def test_generic_needs_no_mapping_when_columns_use_tailorgen_names(tmp_path):
    (tmp_path / "items.tsv").write_text("item_id\ttitle\ttags\n1\tMug\tkitchen|blue\n")
    (tmp_path / "events.csv").write_text(
        "user_id,item_id,timestamp,review\nu,1,2024-01-02T00:00:00,nice\nu,1,2024-01-02T00:00:00+01:00,\n"
    )
    ds = Dataset(import_dataset("generic", [tmp_path / "items.tsv", tmp_path / "events.csv"], tmp_path / "ds"))
    assert ds.item("1")["tags"] == ["kitchen", "blue"]
    assert ds.interactions.column("timestamp").to_pylist() == [1704153600, 1704150000]  # naive ISO read as UTC
    assert ds.interactions.column("review").to_pylist() == ["nice", None]


def test_generic_mapping_errors_are_clear(tmp_path):
    sources, _ = generic(tmp_path)
    with pytest.raises(DataError, match=r"products.csv: field 'title': no column for required field.*items.title="):
        import_dataset("generic", sources[:2], tmp_path / "ds", mapping={"items": {"item_id": "sku"}})
    with pytest.raises(DataError, match=r"products.csv: field 'title': mapped column 'nmae' is not in the file"):
        import_dataset("generic", sources[:2], tmp_path / "ds", mapping={"items": {"item_id": "sku", "title": "nmae"}})
    with pytest.raises(ValueError, match="unknown field.*'colour'"):
        load_mapping(pairs=["items.colour=colour"])
    with pytest.raises(ValueError, match="SECTION.KEY=VALUE"):
        load_mapping(pairs=["title=name"])
    assert load_mapping(pairs=["options.timestamp_unit=ms", "users.user_id=cust"])["users"] == {"user_id": "cust"}
    assert not (tmp_path / "ds").exists()


def test_wrong_sources_and_options_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"takes sources REVIEWS META; got 1"):
        import_dataset("amazon2018", [tmp_path], tmp_path / "ds")
    with pytest.raises(ValueError, match=r"does not take \['mapping'\]"):
        import_dataset("amazon2018", [], tmp_path / "ds", mapping={})
    with pytest.raises(FileNotFoundError, match="no u.data, u.item"):
        import_dataset("movielens-100k", tmp_path, tmp_path / "ds")
    with pytest.raises(ValueError, match="unknown format 'netflix'"):
        import_dataset("netflix", tmp_path, tmp_path / "ds")


# --------------------------------------------------------------------------- malformed input


def _broken_amazon2018(tmp: Path) -> list[Path]:
    """Amazon 2018 files with one of each row problem; see the expected skips below."""
    reviews = [
        {"reviewerID": "R1", "asin": "X1", "overall": 5.0, "unixReviewTime": 1500000000},
        '{"reviewerID": "R2", "asin": "X1", "overall": 4.0, "unixReviewTime": 15000',  # line 2: cut off
        {"asin": "X1", "overall": 4.0, "unixReviewTime": 1500000000},  # line 3: no reviewer
        {"reviewerID": "R3", "asin": "NOPE", "overall": 1.0, "unixReviewTime": 1500000000},  # line 4: unknown item
        {"reviewerID": "R3", "asin": "X2", "overall": "five", "unixReviewTime": 1500000000},  # line 5: bad rating
    ]
    meta = [
        {"asin": "X1", "title": "Wool scarf"},
        {"asin": "X3", "description": ["no title"]},  # line 2: missing title
        {"asin": "X1", "title": "Scarf again"},  # line 3: duplicate
        "[1, 2]",  # line 4: JSON, but not an object
        {"asin": "X2", "title": "Beanie"},
    ]
    return [_jsonl(tmp / "reviews.json", reviews), _jsonl(tmp / "meta.json.gz", meta, gz=True)]


EXPECTED_2018_SKIPS = [
    ("meta.json.gz", 2, "title", "missing required field"),
    ("meta.json.gz", 3, "item_id", "duplicate id: 'X1' first seen at {meta}:1"),
    ("meta.json.gz", 4, None, "broken JSON: expected an object, got list"),
    ("reviews.json", 2, None, "broken JSON: Expecting ',' delimiter at column 75"),
    ("reviews.json", 3, "user_id", "missing required field"),
    ("reviews.json", 4, "item_id", "unknown item: 'NOPE' is not in the item table"),
    ("reviews.json", 5, "rating", "not a number: 'five'"),
]


def test_bad_rows_are_counted_skips_with_file_line_and_field(tmp_path):
    sources = _broken_amazon2018(tmp_path)
    ds = Dataset(import_dataset("amazon2018", sources, tmp_path / "ds"))
    assert sorted(ds.item_row) == ["X1", "X2"] and ds.item("X1")["title"] == "Wool scarf"
    assert ds.interactions.to_pylist() == [
        {"user_id": "R1", "item_id": "X1", "timestamp": 1500000000, "rating": 5.0, "review": None}
    ]
    expected = [(f, n, fld, r.format(meta=sources[1])) for f, n, fld, r in EXPECTED_2018_SKIPS]
    assert _skips(ds.root) == expected
    report = _report(ds.root)
    assert report["n_skipped"] == ds.manifest["counts"]["skipped_rows"] == 7
    assert report["skipped_by_reason"]["broken JSON"] == 2


def test_strict_mode_stops_at_the_first_bad_row(tmp_path):
    sources = _broken_amazon2018(tmp_path)
    with pytest.raises(DataError, match=r"meta.json.gz:2: field 'title': missing required field") as info:
        import_dataset("amazon2018", sources, tmp_path / "ds", strict=True)
    assert (Path(info.value.file).name, info.value.line, info.value.field) == ("meta.json.gz", 2, "title")
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(
    ("make", "fmt", "opts", "pattern"),
    [
        # Each case has exactly one problem; strict mode must name it.
        (
            lambda t: [
                _jsonl(t / "r.json", ['{"reviewerID": "A"']),
                _jsonl(t / "m.json", [{"asin": "a", "title": "t"}]),
            ],
            "amazon2018",
            {},
            r"r.json:1: broken JSON: Expecting",
        ),
        (
            lambda t: [_jsonl(t / "r.json", []), _jsonl(t / "m.json", ["{'asin': 'a', 'title': 't'}", "{'asin': 'a'"])],
            "amazon2014",
            {},
            r"m.json:2: broken JSON",
        ),
        (
            lambda t: [
                _jsonl(t / "r.json", [{"user_id": "u", "parent_asin": "zz", "timestamp": 1000}]),
                _jsonl(t / "m.json", [{"parent_asin": "a", "title": "t"}]),
            ],
            "amazon2023",
            {},
            r"r.json:1: field 'item_id': unknown item: 'zz'",
        ),
        (
            lambda t: [
                _jsonl(t / "r.json", [{"user_id": "u", "parent_asin": "a", "rating": 5}]),
                _jsonl(t / "m.json", [{"parent_asin": "a", "title": "t"}]),
            ],
            "amazon2023",
            {},
            r"r.json:1: field 'timestamp': missing required field",
        ),
        (
            lambda t: [
                _write(t / "items.csv", "item_id,title\n1,Mug\n1,Mug again\n"),
                _write(t / "events.csv", "user_id,item_id,timestamp\nu,1,5\n"),
            ],
            "generic",
            {},
            r"items.csv:3: field 'item_id': duplicate id: '1' first seen at .*items.csv:2",
        ),
        (lambda t: ml100k(t), "movielens-100k", {"images": "posters"}, r"2.jpg: field 'image': unreadable image"),
        (lambda t: ml100k(t, posters=False), "movielens-100k", {}, r"u.user:3: field 'user_id': user with no inter"),
    ],
    ids=[
        "broken-json",
        "broken-python-literal",
        "unknown-item",
        "missing-field",
        "duplicate-id",
        "unreadable-image",
        "user-without-interactions",
    ],
)
def test_strict_mode_names_file_line_and_field(tmp_path, make, fmt, opts, pattern):
    sources = make(tmp_path)
    opts = {k: tmp_path / v for k, v in opts.items()}
    with pytest.raises(DataError, match=pattern):
        import_dataset(fmt, sources, tmp_path / "ds", strict=True, **opts)
    assert not (tmp_path / "ds").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds")], "temporary directory left behind"


def test_movielens_rows_with_wrong_field_counts_and_duplicates(tmp_path):
    root = ml100k(tmp_path, posters=False)
    with (root / "u.item").open("ab") as f:
        f.write(b"1|Toy Story again|01-Jan-1995||http://x|" + GENRE_FLAGS["1"].encode() + b"\n")  # line 3
        f.write(b"9|Short line|01-Jan-1995\n")  # line 4
    with (root / "u.data").open("a") as f:
        f.write("3\t9\t5\n")  # line 4
    ds = Dataset(import_dataset("movielens-100k", root, tmp_path / "ds"))
    assert _skips(ds.root) == [
        ("u.item", 3, "item_id", f"duplicate id: '1' first seen at {root / 'u.item'}:1"),
        ("u.item", 4, None, "wrong number of fields: expected 24, got 3"),
        ("u.data", 4, None, "wrong number of fields: expected 4, got 3"),
        ("u.user", 3, "user_id", "user with no interactions: '3' has no interaction left"),
    ]
    assert ds.item("1")["title"] == "Toy Story (1995)"


# --------------------------------------------------------------------------- atomic writes


def test_a_failed_import_leaves_an_existing_dataset_byte_identical(tmp_path):
    out = import_dataset("amazon2014", amazon2014(tmp_path), tmp_path / "ds")
    before = _snapshot(out)
    broken = _broken_amazon2018(tmp_path)
    with pytest.raises(DataError, match="missing required field"):
        import_dataset("amazon2018", broken, out, overwrite=True, strict=True)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ds")) == []
    # A dataset with nothing left to write fails too, also without touching the old one.
    empty_meta = [_jsonl(tmp_path / "r.json", []), _jsonl(tmp_path / "m.json", [{"asin": "a"}])]
    with pytest.raises(DataError, match="no items left to write"):
        import_dataset("amazon2018", empty_meta, out, overwrite=True)
    assert _snapshot(out) == before


def test_existing_output_is_refused_without_overwrite_and_replaced_with_it(tmp_path):
    out = import_dataset("amazon2014", amazon2014(tmp_path), tmp_path / "ds")
    before = _snapshot(out)
    with pytest.raises(FileExistsError, match="--overwrite"):
        import_dataset("amazon2018", amazon2018(tmp_path), out)
    assert _snapshot(out) == before
    import_dataset("amazon2018", amazon2018(tmp_path), out, overwrite=True)
    assert Dataset(out).manifest["source"]["format"] == "amazon2018" and sorted(Dataset(out).item_row) == ["X1", "X2"]


# --------------------------------------------------------------------------- CLI


def test_cli_imports_movielens_100k_with_posters(tmp_path):
    root = ml100k(tmp_path)
    out = tmp_path / "ds"
    result = CliRunner().invoke(
        main, ["data", "import", "movielens-100k", str(root), "--posters", str(tmp_path / "posters"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "2 items (1 with a local image, 0 with an image URL), 3 interactions, 2 users" in result.output
    assert "2 rows skipped (1 x unreadable image, 1 x user with no interactions)" in result.output
    assert Dataset(out).manifest["source"]["format"] == "movielens-100k"

    again = CliRunner().invoke(main, ["data", "import", "movielens-100k", str(root), "--out", str(out)])
    assert again.exit_code != 0 and "--overwrite" in again.output

    strict = CliRunner().invoke(
        main, ["data", "import", "movielens-100k", str(root), "--out", str(out), "--overwrite", "--strict"]
    )
    assert strict.exit_code != 0
    assert "u.user:3: field 'user_id': user with no interactions" in strict.output and "unchanged" in strict.output
    assert (out / "images" / "1.jpg").is_file()  # the earlier import is still there


def test_cli_imports_generic_with_map_overrides(tmp_path):
    sources, mapping = generic(tmp_path)
    out = tmp_path / "ds"
    args = ["data", "import", "generic", *map(str, sources), "--mapping", str(mapping), "--out", str(out)]
    # --map overrides the file: titles from the colour column; an empty value unmaps the rating column.
    args += ["--map", "items.title=colour", "--map", "interactions.rating="]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "2 items (1 with a local image, 0 with an image URL), 3 interactions, 2 users" in result.output
    ds = Dataset(out)
    assert ds.item("s1")["title"] == "red" and ds.extra("s1") == {"name": "Red shirt"}
    assert ds.interactions.column("rating").to_pylist() == [None, None, None]


def test_cli_imports_amazon2014_and_rejects_options_the_format_does_not_take(tmp_path):
    sources = amazon2014(tmp_path)
    ok = CliRunner().invoke(main, ["data", "import", "amazon2014", *map(str, sources), "--out", str(tmp_path / "a")])
    assert ok.exit_code == 0, ok.output
    assert "2 items (0 with a local image, 1 with an image URL), 3 interactions, 2 users" in ok.output
    assert "no rows skipped" in ok.output
    args = ["data", "import", "amazon2014", *map(str, sources), "--map", "items.title=x", "--out", str(tmp_path / "b")]
    bad = CliRunner().invoke(main, args)
    assert bad.exit_code == 2 and "does not take ['mapping']" in bad.output
    assert not (tmp_path / "b").exists()

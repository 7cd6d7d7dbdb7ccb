import io

import pytest
from PIL import Image

from tailorgen.data import DataError, Dataset, DatasetWriter, ImportReport, clean_interactions, clean_items


def _png(colour=(255, 0, 0)):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


def _items():
    return [
        ({"item_id": "a", "title": "A", "tags": ["x", None, ""]}, ("items.csv", 2)),
        ({"item_id": "b", "title": "B", "price": "12.5"}, ("items.csv", 3)),
        ({"item_id": "a", "title": "A again"}, ("items.csv", 4)),
        ({"item_id": "c", "title": ""}, ("items.csv", 5)),
    ]


def test_clean_items_reports_duplicates_and_missing_fields_with_file_and_line():
    report = ImportReport()
    kept = clean_items(_items(), report)
    assert [r["item_id"] for r in kept] == ["a", "b"]
    assert kept[0]["tags"] == ["x"] and kept[1]["price"] == 12.5
    assert report.n_skipped == 2
    dup, missing = report.skipped
    assert (dup["file"], dup["line"], dup["field"]) == ("items.csv", 4, "item_id")
    assert "first seen at items.csv:2" in dup["reason"]
    assert (missing["line"], missing["field"]) == (5, "title")


def test_strict_mode_raises_a_located_error():
    with pytest.raises(DataError, match=r"items.csv:4: field 'item_id': duplicate id"):
        clean_items(_items(), ImportReport(strict=True))


def test_clean_interactions_checks_types_and_known_items():
    rows = [
        ({"user_id": "u", "item_id": "a", "timestamp": "10", "rating": "4"}, ("r.csv", 2)),
        ({"user_id": "u", "item_id": "zz", "timestamp": 11}, ("r.csv", 3)),
        ({"user_id": "u", "item_id": "a", "timestamp": "soon"}, ("r.csv", 4)),
        ({"user_id": None, "item_id": "a", "timestamp": 1}, ("r.csv", 5)),
    ]
    report = ImportReport()
    kept = clean_interactions(rows, {"a"}, report)
    assert kept == [{"user_id": "u", "item_id": "a", "timestamp": 10, "rating": 4.0, "review": None}]
    assert [(s["line"], s["field"]) for s in report.skipped] == [(3, "item_id"), (4, "timestamp"), (5, "user_id")]


def test_writer_roundtrip_and_manifest(tmp_path):
    report = ImportReport()
    with DatasetWriter(tmp_path / "ds", source={"format": "test"}, report=report) as w:
        rel = w.write_image("a", _png())
        items = clean_items(_items(), report)
        items[0]["image"] = rel
        items[1]["image_bytes"] = _png((0, 0, 255))
        inter = clean_interactions([({"user_id": "u", "item_id": "b", "timestamp": 5}, ("r", 1))], {"a", "b"}, report)
        w.set_tables(items=items, interactions=inter)
    ds = Dataset(tmp_path / "ds")
    assert ds.manifest["counts"] == {
        "items": 2,
        "interactions": 1,
        "users": 1,
        "queries": 0,
        "items_with_image": 2,
        "skipped_rows": 2,
    }
    assert ds.load_image("a").getpixel((0, 0)) == (255, 0, 0)
    assert ds.load_image("b").getpixel((0, 0)) == (0, 0, 255)
    assert ds.queries is None
    assert ds.user_histories() == {"u": ["b"]}
    assert set(ds.manifest["files"]) == {"items.parquet", "interactions.parquet", "images/"}


def test_a_failing_write_leaves_nothing_behind_and_keeps_the_old_dataset(tmp_path):
    out = tmp_path / "ds"
    with DatasetWriter(out, source={}) as w:
        w.set_tables(items=[{"item_id": "a", "title": "A"}], interactions=[])
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(DataError, match="unknown item ids"), DatasetWriter(out, source={}, overwrite=True) as w:
        w.set_tables(
            items=[{"item_id": "b", "title": "B"}], interactions=[{"user_id": "u", "item_id": "a", "timestamp": 1}]
        )
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    with pytest.raises(FileExistsError, match="--overwrite"), DatasetWriter(out, source={}) as w:
        pass


def test_interactions_streamed_from_parquet_parts_equal_the_table_and_are_checked_across_parts(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tailorgen.data.schema import INTERACTIONS_SCHEMA
    from tailorgen.data.store import ParquetParts

    items = [{"item_id": i, "title": i.upper()} for i in "abc"]
    rows = [{"user_id": f"u{k % 3}", "item_id": "abc"[k % 3], "timestamp": k, "rating": 4.0} for k in range(10)]
    parts = []
    for k, (a, b) in enumerate(((0, 4), (4, 4), (4, 10))):  # the middle part is empty
        parts.append(tmp_path / f"p{k}.parquet")
        pq.write_table(pa.Table.from_pylist(rows[a:b], schema=INTERACTIONS_SCHEMA), parts[-1])
    with DatasetWriter(tmp_path / "one", source={}) as w:
        w.set_tables(items=items, interactions=rows)
    with DatasetWriter(tmp_path / "parts", source={}) as w:
        w.set_tables(items=items, interactions=ParquetParts(tuple(parts)))
    one, streamed = Dataset(tmp_path / "one"), Dataset(tmp_path / "parts")
    assert streamed.interactions.equals(one.interactions) and streamed.manifest["counts"] == one.manifest["counts"]
    # A bad row is named by its row in the whole table, and nothing is written.
    bad = rows[4:10]
    bad[3] = bad[3] | {"rating": float("nan")}
    pq.write_table(pa.Table.from_pylist(bad), parts[2])
    with (
        pytest.raises(DataError, match=r"interactions:7: field 'rating'"),
        DatasetWriter(tmp_path / "x", source={}) as w,
    ):
        w.set_tables(items=items, interactions=ParquetParts(tuple(parts)))
    pq.write_table(pa.Table.from_pylist(rows[4:6] + [rows[6] | {"item_id": "zz"}]), parts[2])
    unknown = r"interactions:6: field 'item_id': 1 unknown item ids, e.g. \['zz'\]"
    with pytest.raises(DataError, match=unknown), DatasetWriter(tmp_path / "x", source={}) as w:
        w.set_tables(items=items, interactions=ParquetParts(tuple(parts)))
    assert not (tmp_path / "x").exists()


def test_unreadable_image_names_the_file(tmp_path):
    with DatasetWriter(tmp_path / "ds", source={}) as w:
        rel = w.write_image("a", b"not a png")
        w.set_tables(items=[{"item_id": "a", "title": "A", "image": rel}], interactions=[])
    with pytest.raises(DataError, match=r"images/a.png: field 'image': unreadable image"):
        Dataset(tmp_path / "ds").load_image("a")


def test_loader_explains_what_is_not_a_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a tailorgen dataset"):
        Dataset(tmp_path)


def test_schema_type_errors_name_row_and_field(tmp_path):
    with pytest.raises(DataError, match=r"items:1: field 'price'"), DatasetWriter(tmp_path / "d", source={}) as w:
        w.set_tables(
            items=[{"item_id": "a", "title": "A"}, {"item_id": "b", "title": "B", "price": "cheap"}], interactions=[]
        )
    assert not (tmp_path / "d").exists()


def test_a_slice_of_items_reads_only_its_row_groups_and_equals_the_table_slice(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    import tailorgen.data.store as store

    monkeypatch.setattr(store, "ROW_GROUP_ROWS", 7)  # 30 items in 5 groups
    items = [{"item_id": f"i{k:02d}", "title": f"item {k}"} for k in range(30)]
    with DatasetWriter(tmp_path / "ds", source={"format": "test"}) as w:
        w.set_tables(items=items, interactions=[{"user_id": "u", "item_id": "i00", "timestamp": 1}])
    ds = Dataset(tmp_path / "ds")
    assert pq.ParquetFile(tmp_path / "ds" / "items.parquet").metadata.num_row_groups == 5 and ds.n_items == 30
    for start, stop in [(0, 7), (3, 12), (6, 30), (14, 15), (29, 30), (30, 30)]:
        part = ds.item_rows(start, stop, ["item_id", "title"])
        assert part.to_pylist() == ds.items.select(["item_id", "title"]).slice(start, stop - start).to_pylist()
    assert ds.image_from_row(ds.item_rows(0, 1).to_pylist()[0]) is None  # no image: None, as load_image says


def test_data_errors_cross_processes_whole():
    """A Dask worker sends a shard's DataError back pickled: file, line, field and type must survive."""
    import pickle

    from tailorgen.data.errors import DataError, UnknownIdError

    error = pickle.loads(pickle.dumps(DataError("meta-3.jsonl", 12, "title", "missing required field")))
    assert (error.file, error.line, error.field, str(error)) == (
        "meta-3.jsonl", 12, "title", "meta-3.jsonl:12: field 'title': missing required field"
    )  # fmt: skip
    unknown = pickle.loads(pickle.dumps(UnknownIdError("item", "x", "runs/shop")))
    assert isinstance(unknown, KeyError) and str(unknown) == "runs/shop: unknown item 'x'"

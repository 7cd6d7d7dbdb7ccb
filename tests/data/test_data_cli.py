"""`tailorgen data stats|split|fetch-images` through click's CliRunner, plus the stats numbers."""

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner
from PIL import Image

from tailorgen.cli import main
from tailorgen.data import Dataset, DatasetWriter
from tailorgen.data.splits import load_split
from tailorgen.data.stats import dataset_stats


def _png():
    buf = io.BytesIO()
    Image.new("RGB", (10, 10), (0, 128, 0)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def dataset(tmp_path):
    """3 users, 5 items (one with an image), 6 interactions; u1 has 3, u3 2, u2 1.

    Sparsity 1 - 6 / (3 * 5) = 0.6; history lengths 1, 2, 3 (mean and median 2); ratings 5, 4, 5, 3.
    """
    with DatasetWriter(tmp_path / "ds", source={"format": "test"}) as w:
        items = [{"item_id": f"i{n}", "title": f"item {n}"} for n in range(5)]
        items[0]["image"] = w.write_image("i0", _png())
        inter = [
            {"user_id": "u1", "item_id": "i0", "timestamp": 1, "rating": 5},
            {"user_id": "u1", "item_id": "i1", "timestamp": 2, "rating": 4},
            {"user_id": "u1", "item_id": "i2", "timestamp": 3, "rating": 5},
            {"user_id": "u2", "item_id": "i0", "timestamp": 1, "rating": 3},
            {"user_id": "u3", "item_id": "i3", "timestamp": 4},
            {"user_id": "u3", "item_id": "i0", "timestamp": 5},
        ]
        w.set_tables(items=items, interactions=inter, queries=[{"query_id": "q", "query": "x", "target_item_id": "i1"}])
    return tmp_path / "ds"


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_stats_numbers(dataset):
    s = dataset_stats(dataset)
    assert s["counts"] == {
        "users": 3,
        "items": 5,
        "interactions": 6,
        "queries": 1,
        "items_with_image": 1,
        "items_with_interactions": 4,
    }
    assert s["sparsity"] == pytest.approx(0.6)
    h = s["history_length"]
    assert (h["min"], h["max"], h["mean"], h["median"]) == (1, 3, 2.0, 2.0)
    assert [(b["lo"], b["hi"], b["users"]) for b in h["histogram"]] == [(1, 1, 1), (2, 2, 1), (3, 3, 1)]
    assert s["ratings"]["counts"] == {"3": 1, "4": 1, "5": 2}
    assert s["ratings"]["mean"] == pytest.approx(4.25)
    # i0 has 3 interactions, i1..i3 one each.
    assert s["interactions_per_item"] == {"mean": 1.5, "median": 1.0, "max": 3}


def test_stats_bins_group_long_histories():
    import numpy as np

    from tailorgen.data.stats import _histogram_edges

    edges = _histogram_edges(np.array([1, 5, 24]), bins=12)  # width 2: [1,2], [3,4], ..., [23,24]
    assert edges[0] == 1 and edges[1] - edges[0] == 2 and edges[-2] <= 24 < edges[-1]
    assert len(edges) - 1 == 12


def test_stats_command_text_json_and_plot(dataset, tmp_path):
    r = _run("data", "stats", dataset)
    assert r.exit_code == 0, r.output
    assert "sparsity      0.600000" in r.output
    assert "mean 2.00, median 2" in r.output
    assert "  1 | " in r.output and "█" in r.output
    assert "ratings (4 rated, mean 4.25)" in r.output

    r = _run("data", "stats", dataset, "--json")
    assert json.loads(r.output)["counts"]["interactions"] == 6

    png = tmp_path / "plots" / "hist.png"
    r = _run("data", "stats", dataset, "--plot", png)
    assert r.exit_code == 0 and "histogram written to" in r.output
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (600, 400)


def test_stats_without_ratings_or_interactions(tmp_path):
    with DatasetWriter(tmp_path / "empty", source={}) as w:
        w.set_tables(items=[{"item_id": "a", "title": "A"}], interactions=[])
    s = dataset_stats(tmp_path / "empty")
    assert s["history_length"] is None and s["ratings"] is None and s["sparsity"] == 1.0
    r = _run("data", "stats", tmp_path / "empty")
    assert r.exit_code == 0 and "interactions  0" in r.output


def test_split_command_writes_loadable_splits(dataset):
    r = _run("data", "split", dataset, "--method", "loo")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["counts"]["test"]["rows"] == 1  # only u1 has 3 interactions
    assert out["notes"]["short_history_users"]["ids"] == ["u2", "u3"]
    assert load_split(dataset, "loo")["test"].column("item_id").to_pylist() == ["i2"]

    r = _run("data", "split", dataset, "--method", "window", "--name", "w2", "--history", "2")
    assert r.exit_code == 0, r.output
    assert load_split(dataset, "w2")["windows"].to_pylist() == [
        {"user_id": "u1", "history": ["i0", "i1"], "target_item_id": "i2", "target_timestamp": 3}
    ]

    r = _run("data", "split", dataset, "--method", "user", "--fractions", "0.34,0.33,0.33", "--seed", "5")
    assert r.exit_code == 0, r.output
    assert [json.loads(r.output)["counts"][p]["users"] for p in ("train", "valid", "test")] == [1, 1, 1]

    r = _run("data", "split", dataset, "--method", "kcore", "--user-k", "2")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["kcore"]["users_after"] == 2


def test_split_command_errors_are_clear(dataset, tmp_path):
    r = _run("data", "split", dataset, "--method", "kcore")
    assert r.exit_code == 2 and "--method kcore needs --k" in r.output
    r = _run("data", "split", dataset, "--method", "user", "--fractions", "0.5,0.5")
    assert r.exit_code == 2 and "three non-negative fractions" in r.output
    assert _run("data", "split", dataset, "--method", "loo").exit_code == 0
    r = _run("data", "split", dataset, "--method", "loo")
    assert r.exit_code == 2 and "already exists" in r.output and "--overwrite" in r.output
    assert _run("data", "split", dataset, "--method", "loo", "--overwrite").exit_code == 0
    r = _run("data", "split", tmp_path, "--method", "loo")
    assert r.exit_code == 2 and "not a tailorgen dataset" in r.output


def test_help_texts_explain_the_options():
    r = _run("data", "--help")
    assert all(cmd in r.output for cmd in ("stats", "split", "fetch-images"))
    r = _run("data", "split", "--help")
    assert "second-last -> valid" in r.output and "--short-history" in r.output and "--stride" in r.output
    r = _run("data", "fetch-images", "--help")
    assert "never after 404" in r.output and "--cache-dir" in r.output
    r = _run("data", "stats", "--help")
    assert "--plot PNG" in r.output and "sparsity" in r.output


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/ok.png":
            body, status = _png(), 200
        else:
            body, status = b"missing", 404
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_fetch_images_command(tmp_path):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        with DatasetWriter(tmp_path / "ds", source={}) as w:
            w.set_tables(
                items=[
                    {"item_id": "a", "title": "A", "image_url": f"{base}/ok.png"},
                    {"item_id": "b", "title": "B", "image_url": f"{base}/gone.png"},
                ],
                interactions=[],
            )
        r = _run("data", "fetch-images", tmp_path / "ds", "--cache-dir", tmp_path / "cache", "--no-progress")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert r.exit_code == 0, r.output
    assert "1 downloaded, 0 from cache, 1 failed (1 x not_found)" in r.output
    assert "download_report.json" in r.output
    ds = Dataset(tmp_path / "ds")
    assert ds.load_image("a").size == (10, 10) and ds.load_image("b") is None

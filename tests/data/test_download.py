"""fetch_images against a real HTTP server on 127.0.0.1 serving images, errors and junk."""

import io
import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow.parquet as pq
import pytest
from PIL import Image

from tailorgen.common import hash_file
from tailorgen.data import Dataset, DatasetWriter
from tailorgen.data.download import (
    BROKEN_IMAGE,
    DEADLINE,
    HTTP_ERROR,
    NOT_FOUND,
    RETRIES_EXHAUSTED,
    BrokenImage,
    default_cache_dir,
    fetch_images,
    verify_image,
)


def _encode(fmt, size=(16, 12), colour=(200, 30, 40)):
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


PNG = _encode("PNG")
JPEG = _encode("JPEG", colour=(10, 120, 250))
# Noise, so the pixel data is long; cut in half, the header still parses and only a full decode fails.
_NOISE_JPEG = io.BytesIO()
Image.frombytes("RGB", (64, 64), bytes(range(256)) * 48).save(_NOISE_JPEG, format="JPEG")
TRUNCATED_JPEG = _NOISE_JPEG.getvalue()[: len(_NOISE_JPEG.getvalue()) // 2]
TINY_PNG = _encode("PNG", size=(4, 4))
HTML = b"<!DOCTYPE html><html><body><h1>Image not available</h1></body></html>"


class _Server:
    """Routes -> responses; counts requests per path and the most requests in flight at once."""

    def __init__(self):
        self.hits = Counter()
        self.inflight = 0
        self.max_inflight = 0
        self.lock = threading.Lock()
        self.delay = 0.0
        self.flaky_failures = Counter()  # path -> 500s still to send before succeeding
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/drip.png":  # one byte every 0.2 s: never idle for a whole read timeout
                    return self._drip()
                with server.lock:
                    server.hits[self.path] += 1
                    server.inflight += 1
                    server.max_inflight = max(server.max_inflight, server.inflight)
                try:
                    time.sleep(server.delay)
                    status, body, ctype, *headers = server.route(self.path)
                    self.send_response(status)
                    for name, value in (headers[0] if headers else {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with server.lock:
                        server.inflight -= 1

            def _drip(self):
                with server.lock:
                    server.hits[self.path] += 1
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(PNG)))
                self.end_headers()
                try:
                    for byte in PNG:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.2)
                except OSError:  # the client gave up, as it should
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def route(self, path):
        if path.startswith("/img/") and path.endswith(".png"):
            return 200, PNG, "image/png"
        if path == "/good.jpg":
            return 200, JPEG, "image/jpeg"
        if path == "/truncated.jpg":
            return 200, TRUNCATED_JPEG, "image/jpeg"
        if path == "/tiny.png":
            return 200, TINY_PNG, "image/png"
        if path == "/page.jpg":
            return 200, HTML, "text/html"
        if path == "/forbidden.png":
            return 403, b"no", "text/plain"
        if path == "/down.png":
            return 500, b"oops", "text/plain"
        if path == "/busy.png":
            with self.lock:
                if self.flaky_failures[path] > 0:
                    self.flaky_failures[path] -= 1
                    return 429, b"slow down", "text/plain", {"Retry-After": "0.3"}
            return 200, PNG, "image/png"
        if path == "/flaky.png":
            with self.lock:
                if self.flaky_failures[path] > 0:
                    self.flaky_failures[path] -= 1
                    return 500, b"try again", "text/plain"
            return 200, PNG, "image/png"
        return 404, b"not found", "text/plain"


@pytest.fixture
def server():
    s = _Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def _dataset(path, urls, with_image=()):
    """A dataset with one item per URL (item ids i0, i1, ...); items in with_image already have one."""
    with DatasetWriter(path, source={"format": "test"}) as w:
        items = []
        for n, url in enumerate(urls):
            row = {"item_id": f"i{n}", "title": f"item {n}", "image_url": url}
            if n in with_image:
                row["image"] = w.write_image(f"i{n}", PNG)
            items.append(row)
        inter = [{"user_id": "u", "item_id": "i0", "timestamp": 1}]
        w.set_tables(items=items, interactions=inter)
    return path


def _fetch(ds, cache, **kw):
    kw = {"concurrency": 4, "retries": 2, "timeout": 5.0, "backoff": 0.01, "progress": False} | kw
    return fetch_images(ds, cache_dir=cache, **kw)


def test_mixed_urls_end_up_downloaded_or_reported_with_their_reason(server, tmp_path):
    b = server.base
    server.flaky_failures["/flaky.png"] = 2
    urls = [
        f"{b}/img/a.png",
        f"{b}/good.jpg",
        f"{b}/missing.png",
        f"{b}/truncated.jpg",
        f"{b}/page.jpg",
        f"{b}/tiny.png",
        f"{b}/flaky.png",
        f"{b}/forbidden.png",
        f"{b}/down.png",
        f"{b}/img/a.png",  # same URL as i0: fetched once, file shared
    ]
    ds_dir = _dataset(tmp_path / "ds", urls)
    report = _fetch(ds_dir, tmp_path / "cache")

    assert (report.items_needing_image, report.urls) == (10, 9)
    assert (report.downloaded, report.from_cache, report.items_updated) == (3, 0, 4)
    failed = {f["url"].removeprefix(b): f for f in report.failed}
    assert {p: f["reason"] for p, f in failed.items()} == {
        "/missing.png": NOT_FOUND,
        "/truncated.jpg": BROKEN_IMAGE,
        "/page.jpg": BROKEN_IMAGE,
        "/tiny.png": BROKEN_IMAGE,
        "/forbidden.png": HTTP_ERROR,
        "/down.png": RETRIES_EXHAUSTED,
    }
    assert "HTML" in failed["/page.jpg"]["detail"]
    assert "smaller than the minimum" in failed["/tiny.png"]["detail"]
    assert failed["/down.png"]["detail"] == "3 attempts, last: HTTP 500"
    assert failed["/missing.png"]["item_ids"] == ["i2"]
    # 404 and 403 are not retried; 500 is, up to retries + 1 attempts; the flaky URL succeeded on the third.
    assert server.hits["/missing.png"] == 1 and server.hits["/forbidden.png"] == 1
    assert server.hits["/down.png"] == 3 and server.hits["/flaky.png"] == 3
    assert server.hits["/img/a.png"] == 1

    ds = Dataset(ds_dir)
    images = dict(zip(ds.items.column("item_id").to_pylist(), ds.items.column("image").to_pylist()))
    assert images["i0"] == images["i9"] and images["i0"].endswith(".png")
    assert images["i1"].endswith(".jpg") and images["i6"].endswith(".png")
    assert [i for i, p in images.items() if p is None] == ["i2", "i3", "i4", "i5", "i7", "i8"]
    assert ds.load_image("i0").getpixel((0, 0)) == (200, 30, 40)
    assert ds.load_image("i1").size == (16, 12)
    assert ds.manifest["counts"]["items_with_image"] == 4
    assert ds.manifest["files"]["items.parquet"] == hash_file(ds_dir / "items.parquet")
    assert ds.manifest["history"][-1]["step"] == "fetch_images"
    saved = json.loads((ds_dir / "download_report.json").read_text())
    assert saved["failed_by_reason"] == {NOT_FOUND: 1, BROKEN_IMAGE: 3, HTTP_ERROR: 1, RETRIES_EXHAUSTED: 1}
    assert len(saved["failed"]) == 6


def test_cache_prevents_a_second_request_and_rejects_are_not_cached(server, tmp_path):
    b = server.base
    urls = [f"{b}/img/a.png", f"{b}/good.jpg", f"{b}/page.jpg"]
    cache = tmp_path / "cache"
    first = _fetch(_dataset(tmp_path / "one", urls), cache)
    assert (first.downloaded, first.from_cache) == (2, 0)
    cached = sorted(p.name for p in cache.rglob("*") if p.is_file())
    assert len(cached) == 2  # the HTML page was not cached

    second = _fetch(_dataset(tmp_path / "two", urls), cache)
    assert (second.downloaded, second.from_cache) == (0, 2)
    assert server.hits["/img/a.png"] == 1 and server.hits["/good.jpg"] == 1
    assert server.hits["/page.jpg"] == 2  # rejected responses are tried again
    assert Dataset(tmp_path / "two").load_image("i1").size == (16, 12)


def test_a_damaged_cache_entry_is_fetched_again(server, tmp_path):
    url = f"{server.base}/img/a.png"
    cache = tmp_path / "cache"
    _fetch(_dataset(tmp_path / "one", [url]), cache)
    (entry,) = [p for p in cache.rglob("*") if p.is_file()]
    entry.write_bytes(b"garbage")
    report = _fetch(_dataset(tmp_path / "two", [url]), cache)
    assert (report.downloaded, report.from_cache) == (1, 0)
    assert server.hits["/img/a.png"] == 2
    assert entry.read_bytes() == PNG


def test_concurrency_is_bounded_but_used(server, tmp_path):
    server.delay = 0.15
    urls = [f"{server.base}/img/{n}.png" for n in range(8)]
    report = _fetch(_dataset(tmp_path / "ds", urls), tmp_path / "cache", concurrency=3)
    assert report.downloaded == 8
    assert server.max_inflight == 3


def test_429_waits_as_long_as_retry_after_asks(server, tmp_path):
    server.flaky_failures["/busy.png"] = 1
    start = time.perf_counter()
    report = _fetch(_dataset(tmp_path / "ds", [f"{server.base}/busy.png"]), tmp_path / "cache", backoff=0.01)
    assert report.downloaded == 1 and server.hits["/busy.png"] == 2
    assert time.perf_counter() - start >= 0.3  # backoff alone would have waited 0.01 s


def test_retries_on_connection_errors_then_gives_up(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report = _fetch(_dataset(tmp_path / "ds", [f"http://127.0.0.1:{port}/x.png"]), tmp_path / "cache", retries=1)
    (failure,) = report.failed
    assert failure["reason"] == RETRIES_EXHAUSTED and failure["attempts"] == 2
    assert "ConnectError" in failure["detail"]


def test_timeouts_are_retried_and_reported(server, tmp_path):
    server.delay = 0.5
    report = _fetch(
        _dataset(tmp_path / "ds", [f"{server.base}/img/slow.png"]), tmp_path / "cache", timeout=0.1, retries=1
    )
    (failure,) = report.failed
    assert failure["reason"] == RETRIES_EXHAUSTED and "Timeout" in failure["detail"]
    assert server.hits["/img/slow.png"] == 2


def test_a_server_that_trickles_bytes_is_cut_off_at_the_deadline(server, tmp_path):
    # The read timeout (5 s) never trips: a byte arrives every 0.2 s. Only the deadline ends it.
    start = time.perf_counter()
    report = _fetch(_dataset(tmp_path / "ds", [f"{server.base}/drip.png"]), tmp_path / "cache", deadline=1.0)
    elapsed = time.perf_counter() - start
    (failure,) = report.failed
    assert failure["reason"] == DEADLINE and "more than 1 s" in failure["detail"] and failure["attempts"] == 1
    assert elapsed < 3.0, f"took {elapsed:.1f} s"
    assert Dataset(tmp_path / "ds").items.column("image").to_pylist() == [None]


def test_fetch_options_out_of_range_are_refused_before_any_request(server, tmp_path):
    ds_dir = _dataset(tmp_path / "ds", [f"{server.base}/img/a.png"])
    for bad in ({"deadline": 0}, {"deadline": float("nan")}, {"timeout": float("inf")}, {"concurrency": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            _fetch(ds_dir, tmp_path / "cache", **bad)
    assert server.hits["/img/a.png"] == 0


def test_items_with_an_image_or_without_url_are_left_alone(server, tmp_path):
    ds_dir = _dataset(tmp_path / "ds", [f"{server.base}/img/a.png", None, f"{server.base}/img/b.png"], with_image={0})
    before = pq.read_table(ds_dir / "items.parquet").column("image").to_pylist()
    report = _fetch(ds_dir, tmp_path / "cache")
    assert (report.items_needing_image, report.downloaded) == (1, 1)
    after = pq.read_table(ds_dir / "items.parquet").column("image").to_pylist()
    assert after[0] == before[0] == "images/i0.png" and after[1] is None and after[2].startswith("images/fetched/")
    assert server.hits["/img/a.png"] == 0

    # Nothing left to fetch: a second run makes no request and changes no table.
    again = _fetch(ds_dir, tmp_path / "cache")
    assert (again.items_needing_image, again.downloaded) == (0, 0)
    assert pq.read_table(ds_dir / "items.parquet").column("image").to_pylist() == after


def test_a_crash_while_fetching_leaves_the_dataset_as_it_was(server, tmp_path, monkeypatch):
    ds_dir = _dataset(tmp_path / "ds", [f"{server.base}/img/a.png"])
    before = {p.name: p.read_bytes() for p in ds_dir.iterdir() if p.is_file()}

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("tailorgen.data.download._commit", boom)
    with pytest.raises(KeyboardInterrupt):
        _fetch(ds_dir, tmp_path / "cache")
    assert {p.name: p.read_bytes() for p in ds_dir.iterdir() if p.is_file()} == before
    assert Dataset(ds_dir).items.column("image").to_pylist() == [None]


def test_verify_image_accepts_real_images_and_names_the_problem_otherwise():
    assert verify_image(PNG) == ".png" and verify_image(JPEG) == ".jpg"
    for data, message in [(b"", "empty"), (HTML, "HTML"), (TRUNCATED_JPEG, "cannot decode"), (TINY_PNG, "4x4")]:
        with pytest.raises(BrokenImage, match=message):
            verify_image(data, min_size=8)
    assert verify_image(TINY_PNG, min_size=4) == ".png"


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TAILORGEN_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "images"
    monkeypatch.delenv("TAILORGEN_CACHE")
    assert default_cache_dir().parts[-3:] == (".cache", "tailorgen", "images")

"""Fetch the images of a dataset whose items list an ``image_url`` but have no image yet.

Public catalogs (Amazon ``imUrl``, MovieLens posters) ship URLs, not pictures, and a good
share of those URLs are dead, redirect to HTML error pages or return truncated files.
``fetch_images`` downloads them with bounded concurrency, retries what can succeed on a
second try (connection errors, timeouts, 5xx, 429) and never what cannot (404 and other
4xx), keeps every verified image in a shared on-disk cache keyed by the URL's sha256 (so a
re-import or a second dataset never downloads it again) and rejects anything PIL cannot
fully decode. Every URL that did not yield an image is listed with its reason in
``download_report.json``; nothing is dropped silently.

Writing never corrupts the dataset: image files are written via a temporary file and a
rename, and only then are ``items.parquet`` and ``manifest.json`` replaced (each atomically).
A crash before the table is replaced leaves the old dataset intact plus a few unreferenced
image files, which the next run reuses.
"""

from __future__ import annotations

import email.utils
import hashlib
import io
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image
from tqdm.auto import tqdm

from tailorgen.common import atomic_write_bytes, hash_file, hash_tree, read_json, write_json
from tailorgen.common.manifest import now_utc
from tailorgen.data.store import Dataset, count_items_with_image

# Failure reasons, as written to download_report.json.
NOT_FOUND = "not_found"  # HTTP 404 / 410: the image is gone; retrying cannot help
HTTP_ERROR = "http_error"  # any other 4xx (403, 401, ...): not retried either
BROKEN_IMAGE = "broken_image"  # the bytes are not a fully decodable image of at least min_size
RETRIES_EXHAUSTED = "retries_exhausted"  # connection errors, timeouts, 5xx or 429 on every attempt
TOO_LARGE = "too_large"  # the response exceeded max_bytes
INVALID_URL = "invalid_url"  # not an http(s) URL

# Status codes worth another attempt: the server may recover or stop rate-limiting us.
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_GONE_STATUS = frozenset({404, 410})
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}
# Retry-After can ask for minutes; we wait at most this long so one bad host cannot stall a run.
_MAX_WAIT_S = 30.0


def default_cache_dir() -> Path:
    """``$TAILORGEN_CACHE/images`` if set, else ``~/.cache/tailorgen/images``."""
    root = os.environ.get("TAILORGEN_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "tailorgen") / "images"


def url_key(url: str) -> str:
    """The cache key (and dataset file stem) of a URL: its sha256, so any URL maps to a safe name."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


class BrokenImage(ValueError):
    """The bytes are not an image we can use (HTML page, truncated file, too small...)."""


def verify_image(data: bytes, min_size: int = 8) -> str:
    """Return the file extension for ``data`` if it decodes completely, else raise BrokenImage.

    ``Image.verify`` checks the container's structure (and PNG CRCs) but not the pixel data,
    so the image is decoded a second time with ``load`` to catch truncated files.
    """
    if not data:
        raise BrokenImage("empty response")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format
            im.load()
            width, height = im.size
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        head = data[:64].lstrip().lower()
        if head.startswith((b"<!doctype html", b"<html")):
            raise BrokenImage("response is an HTML page, not an image") from e
        raise BrokenImage(f"cannot decode: {type(e).__name__}: {e}") from e
    if width < min_size or height < min_size:
        raise BrokenImage(f"{width}x{height} is smaller than the minimum {min_size}x{min_size}")
    return _EXTENSIONS.get(fmt or "", f".{(fmt or 'img').lower()}")


@dataclass
class _Outcome:
    url: str
    data: bytes | None = None
    ext: str | None = None
    from_cache: bool = False
    reason: str | None = None
    detail: str | None = None
    attempts: int = 0


@dataclass
class DownloadReport:
    """What ``fetch_images`` did, per URL. Saved as ``download_report.json`` in the dataset."""

    items_needing_image: int = 0
    urls: int = 0
    downloaded: int = 0
    from_cache: int = 0
    items_updated: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed_by_reason(self) -> dict[str, int]:
        return dict(Counter(f["reason"] for f in self.failed))

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": now_utc(),
            "items_needing_image": self.items_needing_image,
            "urls": self.urls,
            "downloaded": self.downloaded,
            "from_cache": self.from_cache,
            "items_updated": self.items_updated,
            "n_failed": len(self.failed),
            "failed_by_reason": self.failed_by_reason,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        s = f"{self.downloaded} downloaded, {self.from_cache} from cache, {len(self.failed)} failed"
        if self.failed:
            s += " (" + ", ".join(f"{n} x {r}" for r, n in sorted(self.failed_by_reason.items())) + ")"
        return s + f"; {self.items_updated} items now have an image"


class _Fetcher:
    """One URL -> verified image bytes, through the cache, with retries. Thread-safe."""

    def __init__(
        self,
        client: httpx.Client,
        cache_dir: Path,
        retries: int,
        backoff: float,
        min_size: int,
        max_bytes: int,
    ):
        self.client = client
        self.cache_dir = cache_dir
        self.retries = retries
        self.backoff = backoff
        self.min_size = min_size
        self.max_bytes = max_bytes

    def cache_path(self, url: str) -> Path:
        key = url_key(url)
        return self.cache_dir / key[:2] / key

    def __call__(self, url: str) -> _Outcome:
        if not url.lower().startswith(("http://", "https://")):
            return _Outcome(url, reason=INVALID_URL, detail="only http and https URLs are fetched")
        cached = self._from_cache(url)
        if cached is not None:
            return cached
        out = self._download(url)
        if out.data is None:
            return out
        try:
            out.ext = verify_image(out.data, self.min_size)
        except BrokenImage as e:
            # Not cached: a server that returned an error page today may serve the image tomorrow.
            return _Outcome(url, reason=BROKEN_IMAGE, detail=str(e), attempts=out.attempts)
        atomic_write_bytes(self.cache_path(url), out.data)
        return out

    def _from_cache(self, url: str) -> _Outcome | None:
        path = self.cache_path(url)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            ext = verify_image(data, self.min_size)
        except BrokenImage:
            # A damaged cache entry (disk error, older min_size) is dropped and fetched again.
            path.unlink(missing_ok=True)
            return None
        return _Outcome(url, data=data, ext=ext, from_cache=True)

    def _download(self, url: str) -> _Outcome:
        last = ""
        for attempt in range(self.retries + 1):
            wait = self.backoff * (2**attempt)
            try:
                with self.client.stream("GET", url) as response:
                    status = response.status_code
                    if status in _GONE_STATUS:
                        return _Outcome(url, reason=NOT_FOUND, detail=f"HTTP {status}", attempts=attempt + 1)
                    if status in _RETRY_STATUS:
                        last = f"HTTP {status}"
                        wait = max(wait, _retry_after(response.headers.get("Retry-After")))
                    elif status >= 400:
                        return _Outcome(url, reason=HTTP_ERROR, detail=f"HTTP {status}", attempts=attempt + 1)
                    else:
                        data = bytearray()
                        for chunk in response.iter_bytes():
                            data += chunk
                            if len(data) > self.max_bytes:
                                return _Outcome(
                                    url,
                                    reason=TOO_LARGE,
                                    detail=f"more than {self.max_bytes} bytes",
                                    attempts=attempt + 1,
                                )
                        return _Outcome(url, data=bytes(data), attempts=attempt + 1)
            except httpx.TransportError as e:  # connect/read errors and timeouts
                last = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            if attempt < self.retries:
                time.sleep(min(wait, _MAX_WAIT_S))
        return _Outcome(
            url,
            reason=RETRIES_EXHAUSTED,
            detail=f"{self.retries + 1} attempts, last: {last}",
            attempts=self.retries + 1,
        )


def _retry_after(value: str | None) -> float:
    """Seconds a 429/503 asks us to wait (delta-seconds or an HTTP date); 0 if absent or unreadable."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - time.time())


def _needs_image(items: pa.Table) -> pa.Array:
    """Rows with a URL but neither an image path nor embedded bytes."""
    mask = pc.and_(
        pc.and_(pc.is_null(items.column("image")), pc.is_null(items.column("image_bytes"))),
        pc.and_(pc.is_valid(items.column("image_url")), pc.not_equal(items.column("image_url"), "")),
    )
    return pc.fill_null(mask, False).combine_chunks()


def fetch_images(
    dataset_dir: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    concurrency: int = 8,
    retries: int = 3,
    timeout: float = 10.0,
    min_size: int = 8,
    backoff: float = 0.5,
    max_bytes: int = 20 * 1024 * 1024,
    progress: bool = True,
    client: httpx.Client | None = None,
) -> DownloadReport:
    """Download the missing images of ``dataset_dir`` and record them in the dataset.

    Args:
        dataset_dir: a tailorgen dataset whose items have ``image_url`` but no ``image``.
        cache_dir: shared image cache (default: ``default_cache_dir()``); only verified images
            are cached, so a URL that failed is tried again on the next run.
        concurrency: most requests in flight at once (threads and pooled connections).
        retries: extra attempts after a connection error, timeout, 5xx or 429, waiting
            ``backoff * 2**attempt`` seconds (or the server's Retry-After, up to 30 s) between them.
        timeout: seconds for connecting and for each read.
        min_size: smallest accepted width and height; smaller images count as broken.
        max_bytes: largest accepted response, so one huge file cannot fill memory.
        progress: show a tqdm bar.
        client: an httpx.Client to use (for proxies or custom headers); made here if None.

    Items sharing a URL get the same image file. Items whose URL failed keep ``image`` null.
    The report is also written to ``DATASET/download_report.json``.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    start = time.perf_counter()
    ds = Dataset(dataset_dir)
    root = ds.root
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    items = ds.items
    needs = _needs_image(items)
    urls_per_row = items.column("image_url").combine_chunks()
    wanted = pc.filter(urls_per_row, needs).to_pylist()
    unique_urls = list(dict.fromkeys(wanted))  # first-seen order, so the report is deterministic
    report = DownloadReport(items_needing_image=len(wanted), urls=len(unique_urls))

    outcomes: dict[str, _Outcome] = {}
    if unique_urls:
        own_client = client is None
        if own_client:
            client = httpx.Client(
                timeout=httpx.Timeout(timeout),
                follow_redirects=True,
                limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
                headers={"User-Agent": "tailorgen-image-fetcher"},
            )
        fetch = _Fetcher(client, cache, retries, backoff, min_size, max_bytes)
        write_lock = threading.Lock()

        def work(url: str) -> _Outcome:
            out = fetch(url)
            if out.data is not None:
                rel = f"images/fetched/{url_key(url)[:2]}/{url_key(url)}{out.ext}"
                path = root / rel
                if not path.exists() or path.read_bytes() != out.data:
                    atomic_write_bytes(path, out.data)
                out.detail = rel
                out.data = None  # the file is on disk; do not hold every image in memory
            with write_lock:
                outcomes[url] = out
            return out

        try:
            with (
                ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fetch") as pool,
                tqdm(total=len(unique_urls), desc="images", unit="url", disable=not progress) as bar,
            ):
                futures = [pool.submit(work, u) for u in unique_urls]
                for fut in as_completed(futures):
                    fut.result()
                    bar.update(1)
        finally:
            if own_client:
                client.close()

    item_ids = items.column("item_id").to_pylist()
    new_image = items.column("image").to_pylist()
    for i, (need, url) in enumerate(zip(needs.to_pylist(), urls_per_row.to_pylist())):
        if need and outcomes[url].reason is None:
            new_image[i] = outcomes[url].detail
            report.items_updated += 1
    ids_by_url: dict[str, list[str]] = {}
    for need, url, item_id in zip(needs.to_pylist(), urls_per_row.to_pylist(), item_ids):
        if need:
            ids_by_url.setdefault(url, []).append(item_id)
    for url in unique_urls:
        out = outcomes[url]
        if out.reason is None:
            report.from_cache += out.from_cache
            report.downloaded += not out.from_cache
        else:
            report.failed.append(
                {
                    "url": url,
                    "item_ids": ids_by_url[url],
                    "reason": out.reason,
                    "detail": out.detail,
                    "attempts": out.attempts,
                }
            )
    report.seconds = time.perf_counter() - start
    _commit(ds, items, new_image, report)
    return report


def _commit(ds: Dataset, items: pa.Table, new_image: list[str | None], report: DownloadReport) -> None:
    """Replace items.parquet, then the manifest, each atomically; the images are already in place."""
    root = ds.root
    manifest = read_json(root / "manifest.json")
    if report.items_updated:
        col = items.schema.get_field_index("image")
        items = items.set_column(col, items.schema.field(col), pa.array(new_image, pa.string()))
        buf = pa.BufferOutputStream()
        pq.write_table(items, buf, compression="zstd")
        atomic_write_bytes(root / "items.parquet", buf.getvalue().to_pybytes())
        manifest.setdefault("files", {})["items.parquet"] = hash_file(root / "items.parquet")
        if (root / "images").is_dir():
            manifest["files"]["images/"] = hash_tree(root / "images")
        manifest.setdefault("counts", {})["items_with_image"] = count_items_with_image(items)
    write_json(root / "download_report.json", report.as_dict())
    manifest.setdefault("history", []).append(
        {
            "step": "fetch_images",
            "at": now_utc(),
            "downloaded": report.downloaded,
            "from_cache": report.from_cache,
            "failed": len(report.failed),
            "items_updated": report.items_updated,
            "report": "download_report.json",
        }
    )
    write_json(root / "manifest.json", manifest)

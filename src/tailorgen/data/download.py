"""Fetch the images of a dataset whose items list an ``image_url`` but have no image yet.

Public catalogs (Amazon ``imUrl``, MovieLens posters) ship URLs, not pictures, and a good
share of those URLs are dead, redirect to HTML error pages or return truncated files.
``fetch_images`` downloads them with bounded concurrency, retries what can succeed on a
second try (connection errors, timeouts, 5xx, 429) and never what cannot (404 and other
4xx), keeps every verified image in a shared on-disk cache keyed by the URL's sha256 (so a
re-import or a second dataset never downloads it again) and rejects anything PIL cannot
fully decode; each image has a deadline, so a server that trickles bytes cannot hold a run
(the HTTP side is ``tailorgen.data.fetcher``). Every URL that did not yield an image is listed
with its reason in ``download_report.json``; nothing is dropped silently.

Writing never corrupts the dataset: image files are written via a temporary file and a
rename, and only then are ``items.parquet`` and ``manifest.json`` replaced (each atomically).
A crash before the table is replaced leaves the old dataset intact plus a few unreferenced
image files, which the next run reuses.
"""

from __future__ import annotations

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
from tqdm.auto import tqdm

from tailorgen.common import atomic_write_bytes, hash_file, hash_tree, read_json, write_json
from tailorgen.common.manifest import now_utc
from tailorgen.data.fetcher import (
    BROKEN_IMAGE,
    DEADLINE,
    HTTP_ERROR,
    INVALID_URL,
    NOT_FOUND,
    RETRIES_EXHAUSTED,
    TOO_LARGE,
    BrokenImage,
    FetchOutcome,
    ImageFetcher,
    url_key,
    verify_image,
)
from tailorgen.data.store import ROW_GROUP_ROWS, Dataset, count_items_with_image

__all__ = [
    "BROKEN_IMAGE",
    "DEADLINE",
    "HTTP_ERROR",
    "INVALID_URL",
    "NOT_FOUND",
    "RETRIES_EXHAUSTED",
    "TOO_LARGE",
    "BrokenImage",
    "DownloadReport",
    "default_cache_dir",
    "fetch_images",
    "url_key",
    "verify_image",
]


def default_cache_dir() -> Path:
    """``$TAILORGEN_CACHE/images`` if set, else ``~/.cache/tailorgen/images``."""
    root = os.environ.get("TAILORGEN_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "tailorgen") / "images"


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
    deadline: float = 60.0,
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
        deadline: most seconds one image may take, every attempt and wait included; a server
            that trickles bytes slower than ``timeout`` would otherwise hold a download forever.

    Items sharing a URL get the same image file. Items whose URL failed keep ``image`` null.
    The report is also written to ``DATASET/download_report.json``.
    """
    _check_limits(concurrency=concurrency, retries=retries, timeout=timeout, deadline=deadline, max_bytes=max_bytes)
    start = time.perf_counter()
    ds = Dataset(dataset_dir)
    items = ds.items
    needs = _needs_image(items)
    urls_per_row = items.column("image_url").combine_chunks()
    wanted = pc.filter(urls_per_row, needs).to_pylist()
    unique_urls = list(dict.fromkeys(wanted))  # first-seen order, so the report is deterministic
    report = DownloadReport(items_needing_image=len(wanted), urls=len(unique_urls))
    outcomes: dict[str, FetchOutcome] = {}
    if unique_urls:
        own_client = client is None
        if own_client:
            client = httpx.Client(
                timeout=httpx.Timeout(timeout),
                follow_redirects=True,
                limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
                headers={"User-Agent": "tailorgen-image-fetcher"},
            )
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        fetch = ImageFetcher(client, cache, retries, backoff, min_size, max_bytes, timeout, deadline)
        try:
            outcomes = _fetch_all(unique_urls, fetch, ds.root, concurrency, progress)
        finally:
            if own_client:
                client.close()
    new_image = _record_outcomes(items, needs, urls_per_row, unique_urls, outcomes, report)
    report.seconds = time.perf_counter() - start
    _commit(ds, items, new_image, report)
    return report


def _check_limits(**values: float) -> None:
    """The options' allowed ranges, checked before any request is made."""
    lowest = {"concurrency": 1, "retries": 0, "max_bytes": 1}
    for name, value in values.items():
        if not isinstance(value, int | float) or value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        if name in lowest and value < lowest[name]:
            raise ValueError(f"{name} must be at least {lowest[name]}, got {value}")
        if name not in lowest and value <= 0:
            raise ValueError(f"{name} must be more than 0 seconds, got {value}")


def _fetch_all(
    urls: list[str], fetch: ImageFetcher, root: Path, concurrency: int, progress: bool
) -> dict[str, FetchOutcome]:
    """Fetch every URL on a thread pool; each verified image is written into the dataset as soon as it arrives."""
    outcomes: dict[str, FetchOutcome] = {}
    lock = threading.Lock()

    def work(url: str) -> FetchOutcome:
        out = fetch(url)
        if out.data is not None:
            rel = f"images/fetched/{url_key(url)[:2]}/{url_key(url)}{out.ext}"
            path = root / rel
            if not path.exists() or path.read_bytes() != out.data:
                atomic_write_bytes(path, out.data)
            out.detail = rel
            out.data = None  # the file is on disk; do not hold every image in memory
        with lock:
            outcomes[url] = out
        return out

    with (
        ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fetch") as pool,
        tqdm(total=len(urls), desc="images", unit="url", disable=not progress) as bar,
    ):
        for fut in as_completed([pool.submit(work, u) for u in urls]):
            fut.result()
            bar.update(1)
    return outcomes


def _record_outcomes(
    items: pa.Table,
    needs: pa.Array,
    urls_per_row: pa.Array,
    unique_urls: list[str],
    outcomes: dict[str, FetchOutcome],
    report: DownloadReport,
) -> list[str | None]:
    """The items' new ``image`` column; fills the report's counts and its list of failed URLs."""
    new_image = items.column("image").to_pylist()
    ids_by_url: dict[str, list[str]] = {}
    rows = zip(needs.to_pylist(), urls_per_row.to_pylist(), items.column("item_id").to_pylist())
    for i, (need, url, item_id) in enumerate(rows):
        if not need:
            continue
        ids_by_url.setdefault(url, []).append(item_id)
        if outcomes[url].reason is None:
            new_image[i] = outcomes[url].detail
            report.items_updated += 1
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
    return new_image


def _commit(ds: Dataset, items: pa.Table, new_image: list[str | None], report: DownloadReport) -> None:
    """Replace items.parquet, then the manifest, each atomically; the images are already in place."""
    root = ds.root
    manifest = read_json(root / "manifest.json")
    if report.items_updated:
        col = items.schema.get_field_index("image")
        items = items.set_column(col, items.schema.field(col), pa.array(new_image, pa.string()))
        buf = pa.BufferOutputStream()
        pq.write_table(items, buf, compression="zstd", row_group_size=ROW_GROUP_ROWS)
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

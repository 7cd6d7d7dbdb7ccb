"""One URL -> verified image bytes: the HTTP side of ``tailorgen data fetch-images``.

``ImageFetcher`` downloads through a shared on-disk cache keyed by the URL's sha256, retries what
can succeed on a second try (connection errors, timeouts, 5xx, 429) and never what cannot (404
and other 4xx), bounds each connect and read by ``timeout`` and the whole image, every attempt and
wait included, by ``deadline``, and accepts only bytes PIL decodes completely.
"""

from __future__ import annotations

import email.utils
import hashlib
import io
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image

from tailorgen.common import atomic_write_bytes

# Failure reasons, as written to download_report.json.
NOT_FOUND = "not_found"  # HTTP 404 / 410: the image is gone; retrying cannot help
HTTP_ERROR = "http_error"  # any other 4xx (403, 401, ...): not retried either
BROKEN_IMAGE = "broken_image"  # the bytes are not a fully decodable image of at least min_size
RETRIES_EXHAUSTED = "retries_exhausted"  # connection errors, timeouts, 5xx or 429 on every attempt
TOO_LARGE = "too_large"  # the response exceeded max_bytes
INVALID_URL = "invalid_url"  # not an http(s) URL
DEADLINE = "deadline_exceeded"  # the image took longer than its deadline, all attempts and waits together

# Status codes worth another attempt: the server may recover or stop rate-limiting us.
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_GONE_STATUS = frozenset({404, 410})
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}
# Retry-After can ask for minutes; we wait at most this long so one bad host cannot stall a run.
_MAX_WAIT_S = 30.0


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
class FetchOutcome:
    url: str
    data: bytes | None = None
    ext: str | None = None
    from_cache: bool = False
    reason: str | None = None
    detail: str | None = None
    attempts: int = 0


class ImageFetcher:
    """One URL -> verified image bytes, through the cache, with retries, within a deadline. Thread-safe."""

    def __init__(
        self,
        client: httpx.Client,
        cache_dir: Path,
        retries: int,
        backoff: float,
        min_size: int,
        max_bytes: int,
        timeout: float = 10.0,
        deadline: float = 60.0,
    ):
        self.client = client
        self.cache_dir = cache_dir
        self.retries = retries
        self.backoff = backoff
        self.min_size = min_size
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.deadline = deadline

    def cache_path(self, url: str) -> Path:
        key = url_key(url)
        return self.cache_dir / key[:2] / key

    def __call__(self, url: str) -> FetchOutcome:
        if not url.lower().startswith(("http://", "https://")):
            return FetchOutcome(url, reason=INVALID_URL, detail="only http and https URLs are fetched")
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
            return FetchOutcome(url, reason=BROKEN_IMAGE, detail=str(e), attempts=out.attempts)
        atomic_write_bytes(self.cache_path(url), out.data)
        return out

    def _from_cache(self, url: str) -> FetchOutcome | None:
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
        return FetchOutcome(url, data=data, ext=ext, from_cache=True)

    def _download(self, url: str) -> FetchOutcome:
        """Attempts until one succeeds, fails for good, the retries run out or the deadline passes.

        ``timeout`` bounds each connect and each read, so a server that sends one byte every few
        seconds would never trip it; the deadline bounds the whole image.
        """
        stop = time.monotonic() + self.deadline
        last, made = "", 0
        for attempt in range(self.retries + 1):
            left = stop - time.monotonic()
            if left <= 0:
                break
            made += 1
            try:
                result = self._attempt(url, attempt, stop, min(self.timeout, left))
            except httpx.TransportError as e:  # connect/read errors and timeouts
                result = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            if isinstance(result, FetchOutcome):
                return result
            last, wait = result if isinstance(result, tuple) else (result, self.backoff * (2**attempt))
            if attempt < self.retries:
                time.sleep(max(0.0, min(wait, _MAX_WAIT_S, stop - time.monotonic())))
        if time.monotonic() >= stop:
            detail = f"more than {self.deadline:g} s" + (f"; last: {last}" if last else "")
            return FetchOutcome(url, reason=DEADLINE, detail=detail, attempts=made)
        return FetchOutcome(
            url,
            reason=RETRIES_EXHAUSTED,
            detail=f"{self.retries + 1} attempts, last: {last}",
            attempts=self.retries + 1,
        )

    def _attempt(self, url: str, attempt: int, stop: float, timeout: float) -> FetchOutcome | tuple[str, float]:
        """One GET: a final outcome, or (what went wrong, seconds to wait) when another attempt may succeed."""
        with self.client.stream("GET", url, timeout=httpx.Timeout(timeout)) as response:
            status = response.status_code
            if status in _GONE_STATUS:
                return FetchOutcome(url, reason=NOT_FOUND, detail=f"HTTP {status}", attempts=attempt + 1)
            if status in _RETRY_STATUS:
                wait = max(self.backoff * (2**attempt), _retry_after(response.headers.get("Retry-After")))
                return f"HTTP {status}", wait
            if status >= 400:
                return FetchOutcome(url, reason=HTTP_ERROR, detail=f"HTTP {status}", attempts=attempt + 1)
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > self.max_bytes:
                    return FetchOutcome(
                        url, reason=TOO_LARGE, detail=f"more than {self.max_bytes} bytes", attempts=attempt + 1
                    )
                if time.monotonic() > stop:
                    return FetchOutcome(
                        url,
                        reason=DEADLINE,
                        detail=f"more than {self.deadline:g} s ({len(data)} bytes received)",
                        attempts=attempt + 1,
                    )
            return FetchOutcome(url, data=bytes(data), attempts=attempt + 1)


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

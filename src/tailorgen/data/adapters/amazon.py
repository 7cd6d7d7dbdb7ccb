"""Amazon Reviews 2014, 2018 and 2023 (McAuley lab): a reviews file and a metadata file each.

All three are JSON lines, optionally gzipped. They differ in field names:

=========  =====================  ==========================  ===================================
           2014                   2018                        2023
=========  =====================  ==========================  ===================================
user       reviewerID             reviewerID                  user_id
item       asin                   asin                        parent_asin (asin as a fallback)
rating     overall                overall                     rating
time       unixReviewTime (s)     unixReviewTime (s)          timestamp (ms)
review     summary + reviewText   summary + reviewText        title + text
category   categories (paths)     category (one path)         categories (path) / main_category
image      imUrl                  imageURLHighRes / imageURL  images[{hi_res, large, thumb}]
brand      brand                  brand                       store
=========  =====================  ==========================  ===================================

Timestamps are read in the unit their size shows (seconds or milliseconds, see
``tailorgen.data.values``), since converted copies of the dumps mix them, and every date must be
plausible; ratings must be finite and on the 1-5 star scale, prices finite and >= 0.

The 2014 metadata was written with Python's ``repr`` rather than JSON, so its lines are read
as JSON first and as a Python literal (``ast.literal_eval``, never ``eval``) second.

Category paths become the item's tags and their most specific entry its category. Image URLs
go to ``image_url`` (``tailorgen data fetch-images`` downloads them later); a local folder of
images named by asin can be copied in with ``images=``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from tailorgen.data.adapters._common import (
    PathLike,
    attach_images,
    clean_interactions_table,
    extra_json,
    images_by_item_id,
    is_price_text,
    source_paths,
    source_record,
    text_or_none,
    track_kept_items,
    unique,
)
from tailorgen.data.adapters._readers import read_json_lines
from tailorgen.data.clean import clean_items
from tailorgen.data.errors import DataError, ImportReport
from tailorgen.data.store import DatasetWriter
from tailorgen.data.values import RATING_SCALES


def _review_text(headline: Any, body: Any) -> str | None:
    """Amazon reviews have a headline and a body; both carry opinion, so keep both."""
    parts = [t for t in (text_or_none(headline), text_or_none(body)) if t]
    return "\n\n".join(parts) or None


def _paths(value: Any) -> list[list[str]]:
    """Category paths as a list of lists of strings, whatever shape the source used."""
    if not isinstance(value, list):
        return []
    if all(isinstance(v, list) for v in value):
        return [[str(c) for c in p if c is not None] for p in value if p]
    return [[str(c) for c in value if c is not None]] if value else []


def _finish_item(row: dict, raw: dict, used: set[str], price_key: str) -> dict:
    """Parse the price and put every source field no column took 1:1 into ``extra``."""
    price = raw.get(price_key)
    row["price"] = price  # clean_items checks it (finite, >= 0) and reports it with file and line
    if not is_price_text(price):
        used = used | {price_key}  # a price text like "$1,299 - $1,499" stays in extra
    row["extra"] = extra_json(raw, used)
    row["tags"] = row.get("tags") or None
    return row


def _urls(value: Any) -> list[str]:
    """Image URLs from a list of them or a single one; anything else (a dict, a number) gives none."""
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [u.strip() for u in values if isinstance(u, str) and u.strip()]


def item_2014(raw: dict) -> dict:
    paths = _paths(raw.get("categories"))
    row = {
        "item_id": raw.get("asin"),
        "title": text_or_none(raw.get("title")),
        "description": text_or_none(raw.get("description")),
        "category": paths[0][-1] if paths and paths[0] else None,
        "tags": unique(c for p in paths for c in p),
        "image_url": next(iter(_urls(raw.get("imUrl"))), None),
        "brand": text_or_none(raw.get("brand")),
    }
    # categories stays in extra too: several paths flattened into tags lose their structure.
    return _finish_item(row, raw, {"asin", "title", "description", "imUrl", "brand"}, "price")


def item_2018(raw: dict) -> dict:
    path = _paths(raw.get("category"))
    path = path[0] if path else []
    # A string here is one URL, not a list of characters.
    urls = _urls(raw.get("imageURLHighRes")) or _urls(raw.get("imageURL"))
    row = {
        "item_id": raw.get("asin"),
        "title": text_or_none(raw.get("title")),
        "description": text_or_none(raw.get("description")),
        "category": path[-1] if path else None,
        "tags": unique(path),
        "image_url": urls[0] if urls else None,
        "brand": text_or_none(raw.get("brand")),
    }
    # imageURL / imageURLHighRes stay in extra: image_url holds only the first one.
    return _finish_item(row, raw, {"asin", "title", "description", "category", "brand"}, "price")


def _image_2023(images: Any) -> str | None:
    """The main image's largest URL (hi_res, else large, else thumb); else the first image's."""
    if not isinstance(images, list):
        return None
    images = [im for im in images if isinstance(im, dict)]
    ordered = sorted(images, key=lambda im: im.get("variant") != "MAIN")  # stable: MAIN first
    for im in ordered:
        for size in ("hi_res", "large", "thumb"):
            if im.get(size):
                return str(im[size])
    return None


def item_2023(raw: dict) -> dict:
    path = _paths(raw.get("categories"))
    path = path[0] if path else []
    row = {
        "item_id": raw.get("parent_asin") or raw.get("asin"),
        "title": text_or_none(raw.get("title")),
        "description": text_or_none(raw.get("description")),
        "category": path[-1] if path else text_or_none(raw.get("main_category")),
        "tags": unique(path),
        "image_url": _image_2023(raw.get("images")),
        "brand": text_or_none(raw.get("store")),
    }
    used = {"title", "description", "categories", "store"} | ({"parent_asin"} if raw.get("parent_asin") else {"asin"})
    return _finish_item(row, raw, used, "price")


def review_2014(raw: dict) -> dict:
    """2014 and 2018 reviews share their field names."""
    return {
        "user_id": raw.get("reviewerID"),
        "item_id": raw.get("asin"),
        "timestamp": raw.get("unixReviewTime"),
        "rating": raw.get("overall"),
        "review": _review_text(raw.get("summary"), raw.get("reviewText")),
    }


def review_2023(raw: dict) -> dict:
    return {
        "user_id": raw.get("user_id"),
        # Metadata is keyed by parent_asin (the product, not one of its colour/size variants).
        "item_id": raw.get("parent_asin") or raw.get("asin"),
        "timestamp": raw.get("timestamp"),  # milliseconds as published; read with unit "auto"
        "rating": raw.get("rating"),
        "review": _review_text(raw.get("title"), raw.get("text")),
    }


# Fields only a reviews file has: a META file made of them was given in the REVIEWS place.
_REVIEW_KEYS = frozenset({"reviewerID", "overall", "unixReviewTime", "reviewText", "user_id", "rating"})


def _keys_seen(rows, seen: set[str], limit: int = 5):
    """Pass rows through, collecting the keys of the first few (to recognise a file given in the wrong place)."""
    for n, (raw, where) in enumerate(rows):
        if n < limit:
            seen.update(raw)
        yield raw, where


@dataclass(frozen=True)
class AmazonFormat:
    """How one edition of the dump reads: its item and review converters, and how its metadata is written."""

    name: str
    to_item: Callable[[dict], dict]
    to_review: Callable[[dict], dict]
    python_literals: bool  # 2014's metadata is Python-literal dicts, not JSON


FORMATS = {
    "amazon2014": AmazonFormat("amazon2014", item_2014, review_2014, python_literals=True),
    "amazon2018": AmazonFormat("amazon2018", item_2018, review_2014, python_literals=False),
    "amazon2023": AmazonFormat("amazon2023", item_2023, review_2023, python_literals=False),
}


def import_options(strict: bool) -> dict[str, Any]:
    # Timestamps are read by size (2014/2018 publish seconds, 2023 milliseconds; converted files mix them).
    return {"strict": strict, "timestamp_unit": "auto", "rating_scale": list(RATING_SCALES["amazon"])}


def read_items(fmt: AmazonFormat, meta_path: Path, report: ImportReport, where: dict | None = None) -> list[dict]:
    """The cleaned items of one metadata file; ``where`` (if given) gets each kept id's (file, line).

    Refuses a reviews file given in the metadata's place (its rows have review fields, no title).
    """
    meta_keys: set[str] = set()
    meta = _keys_seen(read_json_lines(meta_path, report, python_literals=fmt.python_literals), meta_keys)
    rows = ((fmt.to_item(raw), at) for raw, at in meta)
    items = clean_items(rows if where is None else track_kept_items(rows, where), report)
    if not items and meta_keys & _REVIEW_KEYS and "title" not in meta_keys:
        raise DataError(
            str(meta_path),
            None,
            None,
            f"no item could be read: its rows have review fields ({', '.join(sorted(meta_keys & _REVIEW_KEYS))}); "
            "are REVIEWS and META swapped? Give the reviews file first, then the metadata",
        )
    return items


def read_interactions(fmt: AmazonFormat, reviews_path: Path, known_items: set[str], report: ImportReport) -> pa.Table:
    """The cleaned interactions of one reviews file, with items among ``known_items``."""
    reviews = read_json_lines(reviews_path, report, python_literals=fmt.python_literals)
    return clean_interactions_table(
        ((fmt.to_review(raw), at) for raw, at in reviews),
        known_items,
        report,
        timestamp_unit="auto",
        rating_scale=RATING_SCALES["amazon"],
    )


def _import_amazon(
    fmt: AmazonFormat,
    src: PathLike | Sequence[PathLike],
    out: PathLike,
    *,
    overwrite: bool,
    strict: bool,
    images: PathLike | None,
) -> Path:
    reviews_path, meta_path = source_paths(fmt.name, src, ("REVIEWS", "META"))
    report = ImportReport(strict=strict)
    paths = {"reviews": reviews_path, "meta": meta_path, "images": images}
    source = source_record(fmt.name, paths, import_options(strict))
    sources = [p for p in (reviews_path, meta_path, images) if p is not None]
    with DatasetWriter(Path(out), source=source, overwrite=overwrite, report=report, sources=sources) as writer:
        items = read_items(fmt, meta_path, report)
        attach_images(writer, items, images_by_item_id(items, images), report)
        interactions = read_interactions(fmt, reviews_path, {it["item_id"] for it in items}, report)
        writer.set_tables(items=items, interactions=interactions)
    return Path(out)


def import_amazon2014(
    src: PathLike | Sequence[PathLike],
    out: PathLike,
    *,
    overwrite: bool = False,
    strict: bool = False,
    images: PathLike | None = None,
) -> Path:
    """Amazon Reviews 2014: ``src`` is (reviews JSON lines, metadata lines in JSON or Python-literal form)."""
    return _import_amazon(FORMATS["amazon2014"], src, out, overwrite=overwrite, strict=strict, images=images)


def import_amazon2018(
    src: PathLike | Sequence[PathLike],
    out: PathLike,
    *,
    overwrite: bool = False,
    strict: bool = False,
    images: PathLike | None = None,
) -> Path:
    """Amazon Reviews 2018: ``src`` is (reviews JSONL, meta JSONL), either may be gzipped."""
    return _import_amazon(FORMATS["amazon2018"], src, out, overwrite=overwrite, strict=strict, images=images)


def import_amazon2023(
    src: PathLike | Sequence[PathLike],
    out: PathLike,
    *,
    overwrite: bool = False,
    strict: bool = False,
    images: PathLike | None = None,
) -> Path:
    """Amazon Reviews 2023: ``src`` is (reviews JSONL, meta JSONL); millisecond timestamps become seconds."""
    return _import_amazon(FORMATS["amazon2023"], src, out, overwrite=overwrite, strict=strict, images=images)

"""Row cleaning shared by every importer: required fields, the id policy, the number and timestamp policy.

A bad row is never stored with a made-up value: it is a counted skip in the import report naming
file, line and field (or, with ``strict``, a ``DataError``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from tailorgen.data.errors import ImportReport, InvalidValue
from tailorgen.data.ids import normalize_id
from tailorgen.data.schema import ITEMS_SCHEMA, REQUIRED_INTERACTION_FIELDS, REQUIRED_ITEM_FIELDS
from tailorgen.data.values import finite_number, price_value, rating_value, timestamp_seconds

# A row from some source file, with where it came from, so errors can name file and line.
Provenance = tuple[str, int | None]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _has_value(value: Any) -> bool:
    """Present at all: not None and not blank text. (A NaN is present, and then reported as not a number.)"""
    return value is not None and not (isinstance(value, str) and not value.strip())


def clean_items(rows: Iterable[tuple[dict, Provenance]], report: ImportReport) -> list[dict]:
    """Keep well-formed item rows: required fields present, ids valid and unique. Others are reported.

    Ids follow ``tailorgen.data.ids.normalize_id``; a price that is not a finite number >= 0 is
    reported and dropped (the item stays); price text that is no single price ("$1 - $2") becomes
    None, and the adapters keep it in ``extra``.
    """
    seen: dict[str, Provenance] = {}
    kept = []
    for row, (file, line) in rows:
        missing = next((f for f in REQUIRED_ITEM_FIELDS if _is_missing(row.get(f))), None)
        if missing:
            report.skip(file, line, missing, "missing required field")
            continue
        try:
            item_id = normalize_id(row["item_id"])
        except InvalidValue as e:
            report.skip(file, line, "item_id", str(e))
            continue
        if item_id in seen:
            first = seen[item_id]
            report.skip(file, line, "item_id", f"duplicate id: '{item_id}' first seen at {first[0]}:{first[1]}")
            continue
        seen[item_id] = (file, line)
        row = {k: row.get(k) for k in ITEMS_SCHEMA.names}
        row["item_id"] = item_id
        if row["tags"] is not None:
            row["tags"] = [str(t) for t in row["tags"] if not _is_missing(t)]
        if row["price"] is not None:
            try:
                row["price"] = price_value(row["price"])
            except InvalidValue as e:
                report.skip(file, line, "price", f"{e}; item '{item_id}' kept without a price")
                row["price"] = None
        kept.append(row)
    return kept


class _Skip(Exception):
    def __init__(self, field_name: str, reason: str):
        self.field, self.reason = field_name, reason


def _interaction(
    row: dict, known_items: set[str], unit: str, dates: tuple[int, int] | None, scale: tuple[float, float] | None
) -> dict:
    """One interaction row cleaned, or _Skip naming the first bad field."""
    missing = next((f for f in REQUIRED_INTERACTION_FIELDS if _is_missing(row.get(f))), None)
    if missing:
        raise _Skip(missing, "missing required field")
    ids = {}
    for name in ("user_id", "item_id"):
        try:
            ids[name] = normalize_id(row[name])
        except InvalidValue as e:
            raise _Skip(name, str(e)) from None
    if ids["item_id"] not in known_items:
        raise _Skip("item_id", f"unknown item: '{ids['item_id']}' is not in the item table")
    try:
        ts = timestamp_seconds(row["timestamp"], unit, dates)
    except InvalidValue as e:
        raise _Skip("timestamp", str(e)) from None
    rating = row.get("rating")
    if _has_value(rating):
        try:
            rating = rating_value(rating, scale) if scale else finite_number(rating)
        except InvalidValue as e:
            raise _Skip("rating", str(e)) from None
    else:
        rating = None
    review = row.get("review")
    return {
        **ids,
        "timestamp": ts,
        "rating": rating,
        "review": None if _is_missing(review) else str(review),
    }


def clean_interactions(
    rows: Iterable[tuple[dict, Provenance]],
    known_items: set[str],
    report: ImportReport,
    *,
    timestamp_unit: str = "s",
    dates: tuple[int, int] | None = None,
    rating_scale: tuple[float, float] | None = None,
) -> list[dict]:
    """Keep interactions with every required field, valid ids, a known item, a timestamp and a finite rating.

    Timestamps are read in ``timestamp_unit`` (see ``tailorgen.data.values.timestamp_seconds``);
    importers pass ``dates=PLAUSIBLE_DATES`` and their format's ``rating_scale``. A row with a
    bad value is skipped and reported with the field, never stored with a made-up value.
    """
    kept = []
    for row, (file, line) in rows:
        try:
            kept.append(_interaction(row, known_items, timestamp_unit, dates, rating_scale))
        except _Skip as e:
            report.skip(file, line, e.field, e.reason)
    return kept

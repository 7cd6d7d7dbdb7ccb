"""The number and timestamp policy of imports: every number finite and in range, every date plausible.

Each function takes one source value and returns the value tailorgen stores, or raises
``InvalidValue`` whose message is the reason; the importers turn that into a counted skip
naming file, line and field (or, with ``--strict``, a ``DataError``).

* **Numbers** are real numbers: ``True`` is not a rating, ``NaN``/``Infinity`` (which JSON
  readers accept) and ``1e999`` are not numbers, and text must parse as one.
* **Ratings** must lie on the format's scale (``RATING_SCALES``; a generic import states its
  own with ``options.rating_scale``). A rating off the scale skips the interaction, as an
  unreadable one always did.
* **Prices** are finite and >= 0. A bad price drops the price, not the item.
* **Timestamps** are whole seconds since the Unix epoch. A number is read in the declared unit
  (``s``, ``ms``) or, with ``auto``, in the unit its size says: below 1e11 seconds, below 1e14
  milliseconds, below 1e17 microseconds, else nanoseconds (for dates from 1973 to 5138 these
  ranges cannot overlap). Text is a number or ISO-8601 (naive times are UTC); Parquet dates and
  timestamps are taken as they are. Imports then check the date is plausible for something a
  person did (``PLAUSIBLE_DATES``: 1980-01-01 to 2100-01-01), which is what catches a unit read
  wrongly: seconds read as milliseconds land in January 1970, milliseconds read as seconds after
  the year 30,000.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any

from tailorgen.data.errors import InvalidValue

# Interactions store int64 seconds.
_INT64 = (-(2**63), 2**63)
PLAUSIBLE_DATES = (
    int(_dt.datetime(1980, 1, 1, tzinfo=_dt.UTC).timestamp()),
    int(_dt.datetime(2100, 1, 1, tzinfo=_dt.UTC).timestamp()),
)
TIMESTAMP_UNITS = ("s", "ms", "auto")
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
# Published rating scales: Amazon reviews are 1-5 stars, MovieLens 0.5-5 in half stars (1-5 in ml-100k).
RATING_SCALES = {"amazon": (1.0, 5.0), "movielens": (0.5, 5.0)}
# A generic import's default scale takes stars, 10-point scales, thumbs (-1/1) and Jester's -10..10.
DEFAULT_RATING_SCALE = (-10.0, 10.0)
_PRICE = re.compile(r"^\s*[$€£]?\s*(\d[\d,]*(?:\.\d+)?|\.\d+)\s*$")


def _short(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def finite_number(value: Any) -> float:
    """``value`` as a finite float: numbers and numeric text; never a bool, NaN or infinity."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidValue(f"not a number: {_short(value)}")
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise InvalidValue(f"not a number: {_short(value)}") from None
    else:
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            raise InvalidValue(f"not a finite number: {_short(value)}") from None
    if not math.isfinite(number):
        raise InvalidValue(f"not a finite number: {_short(value)}")
    return number


def rating_value(value: Any, scale: tuple[float, float]) -> float:
    """A rating on ``scale`` (inclusive)."""
    number = finite_number(value)
    lo, hi = scale
    if not lo <= number <= hi:
        raise InvalidValue(f"out of range: {number:g} is off the rating scale {lo:g}..{hi:g}")
    return number


def price_value(value: Any) -> float | None:
    """A price >= 0: numbers, or text like "$1,299.00". Text that is no single price (a range) gives None.

    Raises ``InvalidValue`` for a number that is not finite or is negative (and for a bool).
    """
    if isinstance(value, bool):
        raise InvalidValue(f"not a price: {value!r}")
    if isinstance(value, int | float):
        number = finite_number(value)
    elif isinstance(value, str):
        m = _PRICE.match(value)
        if m:
            number = finite_number(m.group(1).replace(",", ""))
        elif _looks_numeric(value):
            number = finite_number(value)  # "-5", "nan", "inf", "1e999"
        else:
            return None  # "$10.99 - $15.99": the adapters keep such text in extra
    else:
        raise InvalidValue(f"not a price: {_short(value)}")
    if number < 0:
        raise InvalidValue(f"negative price: {number:g}")
    return number


def parse_rating_scale(text: Any) -> tuple[float, float]:
    """``"1..5"`` (or a two-item list) as (low, high), finite with low < high."""
    parts = text if isinstance(text, list | tuple) else str(text).split("..")
    try:
        lo, hi = (finite_number(p) for p in parts)
    except (InvalidValue, ValueError):
        raise ValueError(f"options.rating_scale must be LOW..HIGH, e.g. 1..5; got {text!r}") from None
    if not lo < hi:
        raise ValueError(f"options.rating_scale must have LOW < HIGH; got {text!r}")
    return lo, hi


def timestamp_seconds(value: Any, unit: str = "s", dates: tuple[int, int] | None = None) -> int:
    """``value`` as whole seconds since the epoch (see the module doc); with ``dates`` it must lie in [lo, hi)."""
    if unit not in TIMESTAMP_UNITS:
        raise ValueError(f"timestamp unit must be one of {TIMESTAMP_UNITS}, got {unit!r}")
    read_as = "a date"
    if isinstance(value, _dt.datetime | _dt.date):
        seconds = _datetime_seconds(value)
    elif isinstance(value, str) and not _looks_numeric(value):
        try:
            parsed = _dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidValue(f"not a timestamp: {_short(value)} (expected a number or ISO-8601 text)") from None
        seconds = _datetime_seconds(parsed)
    else:
        number = finite_number(value)
        if isinstance(value, int) and not isinstance(value, bool):
            number = value  # exact, however large
        read_as = _unit_of(number) if unit == "auto" else unit
        seconds = math.floor(number / _PER_SECOND[read_as]) if read_as != "s" else math.floor(number)
        read_as = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}[read_as]
    if dates is not None and not dates[0] <= seconds < dates[1]:
        read = f" read as {read_as} is {_iso(seconds)}" if read_as != "a date" else ""
        hint = "; is the timestamp unit right?" if read else ""
        raise InvalidValue(
            f"implausible date: {_short(value)}{read}, outside {_iso(dates[0])[:10]}..{_iso(dates[1])[:10]}{hint}"
        )
    if not _INT64[0] <= seconds < _INT64[1]:
        raise InvalidValue(f"out of range: {_short(value)} does not fit a 64-bit timestamp")
    return int(seconds)


def _looks_numeric(text: str) -> bool:
    try:
        float(text.strip())
    except ValueError:
        return False
    return True


def _unit_of(number: float) -> str:
    size = abs(number)
    return "s" if size < 1e11 else "ms" if size < 1e14 else "us" if size < 1e17 else "ns"


def _datetime_seconds(value: _dt.date) -> int:
    if not isinstance(value, _dt.datetime):
        value = _dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    # timedelta arithmetic is exact for every datetime, where .timestamp() fails near year 1 and 9999.
    return (value - _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)) // _dt.timedelta(seconds=1)


def _iso(seconds: int) -> str:
    try:
        return (_dt.datetime(1970, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(seconds=int(seconds))).isoformat()[:19]
    except OverflowError:
        return "year 10000 or later" if seconds > 0 else "before year 1"

"""The id policy and the path policy: ids are data, paths are made by tailorgen, never taken from data.

Ids (item, user, query ids) may hold any text a source has: ``../../etc/passwd``, ``a/b``,
``😀``, a 10,000-character string. They are stored as they are, and no file or folder name is
ever built from one directly. Two rules follow:

* ``normalize_id`` decides what counts as an id: a string (kept exactly, not stripped) or an
  integer (and an integral float, which is how pandas writes an integer column with blanks); it
  must not be blank and must be valid Unicode. A dict, a list, a bool, NaN or infinity is not an
  id, so ``{"a": 1}`` never becomes the user ``"{'a': 1}"``.
* ``id_file_stem`` is the only way a file name is made from an id: the id itself when it is
  *plain* (lower-case ASCII letters, digits, ``_`` and ``-``, at most 64 characters, not a name
  Windows reserves), otherwise a readable slug, ``~`` and 20 hex digits of the id's SHA-256.
  Plain names never contain ``~``, so a plain name and a hashed one never collide, and two
  different ids collide only if 80 bits of SHA-256 do: ``a/b`` and ``a_b`` get different files,
  and names stay distinct on case-insensitive file systems. The id itself stays in the record.

Paths: ``resolve_inside`` joins a path that came from data (an image column) to the folder it
is relative to and refuses absolute paths and any that leave that folder (``..``, symlinks);
``plain_name`` checks a name a user gives for a folder tailorgen creates (a split name).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path
from typing import Any

from tailorgen.data.errors import InvalidValue

PLAIN_ID = re.compile(r"[a-z0-9_][a-z0-9_-]{0,63}")
# Names Windows refuses for a file whatever the extension; a dataset folder may be copied there.
_RESERVED = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))})
HASH_HEX = 20
_SLUG_CHARS = 40
_EXTENSION = re.compile(r"\.[a-z0-9]{1,10}")


def normalize_id(value: Any) -> str:
    """The id ``value`` stands for, as a string; raises ``InvalidValue`` (with the reason) if it is not an id."""
    if isinstance(value, bool) or value is None:
        raise InvalidValue(f"not an id: {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValue(f"not an id: {value!r}")
        return str(int(value)) if value.is_integer() else repr(value)
    if not isinstance(value, str):
        raise InvalidValue(f"not an id: a {type(value).__name__} ({_short(value)}), expected text or an integer")
    if not value.strip():
        raise InvalidValue("missing required field")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue(f"not an id: not valid Unicode text ({_short(value)})") from None
    return value


def id_file_stem(item_id: str) -> str:
    """A safe, collision-free file name stem for ``item_id`` (see the module doc)."""
    if PLAIN_ID.fullmatch(item_id) and item_id not in _RESERVED:
        return item_id
    digest = hashlib.sha256(item_id.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_HEX]
    slug = re.sub(r"[^a-z0-9_-]+", "_", item_id.lower()).strip("_-")[:_SLUG_CHARS]
    return f"{slug or 'id'}~{digest}"


def id_file_name(item_id: str, extension: str) -> str:
    """``id_file_stem`` plus an extension, which must look like one (``.png``); anything else becomes ``.bin``."""
    extension = extension.lower()
    return id_file_stem(item_id) + (extension if _EXTENSION.fullmatch(extension) else ".bin")


class OutsideRootError(ValueError):
    """A path from data or from the user would leave the folder it must stay in."""


def resolve_inside(root: str | os.PathLike, path: str | os.PathLike, what: str = "path") -> Path:
    """``root / path`` if that stays inside ``root`` once resolved (``..`` and symlinks followed).

    An absolute ``path`` is refused even if it happens to point inside ``root``: paths in data
    are relative to their folder, and an absolute one says the data was made elsewhere.
    """
    text = os.fspath(path)
    if not text or "\x00" in text:
        raise OutsideRootError(f"{what} {text!r} is not a path")
    candidate = Path(text)
    if candidate.is_absolute() or candidate.drive:
        raise OutsideRootError(f"{what} {text!r} is absolute; it must be relative to {root}")
    base = Path(root).resolve()
    resolved = (base / candidate).resolve()
    if not resolved.is_relative_to(base):
        raise OutsideRootError(f"{what} {text!r} leaves {root}")
    return resolved


def is_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """True if ``path`` is ``root`` or lies under it, once both are resolved."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())


def plain_name(name: str, what: str = "name") -> str:
    """``name`` if it is one plain path component (no separator, not hidden, not ``.``/``..``), else ValueError."""
    if not name or name.strip() != name or any(c in name for c in "/\\\x00") or name.startswith("."):
        raise ValueError(f"{what} {name!r} must be a plain folder name (no '/', '\\', leading '.' or spaces)")
    return name


def _short(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"

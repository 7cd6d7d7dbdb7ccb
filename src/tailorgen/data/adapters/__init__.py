"""Import public datasets into tailorgen's schema: Amazon Reviews 2014/2018/2023, MovieLens, any CSV/Parquet.

Every adapter reads its source files row by row with file and line attached, cleans them
through ``clean_items`` / ``clean_interactions`` (a bad row is a counted skip in
``import_report.json``, or a ``DataError`` naming file, line and field with ``strict=True``),
and writes through ``DatasetWriter``, which builds the dataset in a temporary directory and
renames it into place only when complete. Source fields no column takes go to ``extra``.

>>> import_dataset("movielens-100k", "ml-100k/", "runs/ml100k", images="posters/")
"""

from __future__ import annotations

import inspect
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tailorgen.common import read_json
from tailorgen.data.adapters.amazon import import_amazon2014, import_amazon2018, import_amazon2023
from tailorgen.data.adapters.generic import import_generic, load_mapping, normalize_mapping
from tailorgen.data.adapters.movielens import import_movielens_100k, import_movielens_csv
from tailorgen.data.errors import ImportReport

# format name -> adapter(src, out, *, overwrite, strict, **format options) -> dataset directory
ADAPTERS: dict[str, Callable[..., Path]] = {
    "amazon2014": import_amazon2014,
    "amazon2018": import_amazon2018,
    "amazon2023": import_amazon2023,
    "movielens-100k": import_movielens_100k,
    "movielens-csv": import_movielens_csv,
    "generic": import_generic,
}


def adapter_options(format: str) -> list[str]:
    """The keyword options a format's adapter takes (beyond the sources and the output)."""
    params = inspect.signature(_adapter(format)).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def _adapter(format: str) -> Callable[..., Path]:
    try:
        return ADAPTERS[format]
    except KeyError:
        raise ValueError(f"unknown format '{format}'; formats are {sorted(ADAPTERS)}") from None


def import_dataset(
    format: str, src: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike, **opts: Any
) -> Path:
    """Import ``src`` (one path or several, as the format needs) in ``format`` into the dataset ``out``.

    ``opts``: ``overwrite``, ``strict``, ``images`` (a local image folder) and, for ``generic``,
    ``mapping``. An option the format does not take is an error rather than silently ignored.
    """
    adapter = _adapter(format)
    if not os.fspath(out).strip():
        raise ValueError("the dataset folder (--out) is an empty path; give a folder name")
    unknown = sorted(set(opts) - set(adapter_options(format)))
    if unknown:
        raise ValueError(f"format '{format}' does not take {unknown}; it takes {adapter_options(format)}")
    return adapter(src, out, **opts)


def read_import_report(dataset_dir: str | os.PathLike) -> ImportReport:
    """The import report a dataset was written with, for printing its summary."""
    data = read_json(Path(dataset_dir) / "import_report.json")
    return ImportReport(skipped=list(data["skipped"]), counts=Counter(data["skipped_by_reason"]))


__all__ = [
    "ADAPTERS",
    "adapter_options",
    "import_amazon2014",
    "import_amazon2018",
    "import_amazon2023",
    "import_dataset",
    "import_generic",
    "import_movielens_100k",
    "import_movielens_csv",
    "load_mapping",
    "normalize_mapping",
    "read_import_report",
]

"""k-core filtering and the train/valid/test splits every model and benchmark reads.

Four methods, each a pure function on an interactions table plus a writer:

* ``kcore``: drop users and items with too few interactions, repeatedly, until none is left;
* ``leave_one_out``: per user, the last interaction is test, the second-last valid, the rest train
  (the protocol of most sequential-recommendation papers, UniMP included);
* ``user_split``: users (with all their interactions) go to train/valid/test at random, seeded,
  for models that must generalise to unseen users;
* ``sliding_windows``: every window of N consecutive history items -> the next item, for training
  and evaluating next-item models on fixed-length contexts.

Reproducibility: rows are always ordered by (user_id, timestamp, original row number), so two
interactions with the same timestamp keep the order they have in ``interactions.parquet``, and a
split run twice on the same input writes byte-identical Parquet files. ``split.json`` records the
method, its parameters, the seed, counts and the sha256 of the input and of every output file;
``load_split`` checks those hashes so a stale or damaged split is an error, not a silent mismatch.

Splits live in ``DATASET/splits/NAME/`` (NAME a plain folder name) and are written atomically
(built in a temporary directory, renamed into place); ``overwrite`` replaces only a folder that
holds a split.json.

Why one file of about 450 lines: the four methods share the writer, the split record and its
checks, and read best side by side.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tailorgen import __version__
from tailorgen.common import atomic_dir, hash_file, read_json, write_json
from tailorgen.common.manifest import now_utc
from tailorgen.data.errors import DataError
from tailorgen.data.ids import plain_name
from tailorgen.data.schema import TABLES
from tailorgen.data.store import Dataset

METHODS = ("kcore", "loo", "user", "window")
# Users listed by name in split.json notes; beyond this only the count is kept, so the file stays small.
MAX_LISTED = 1000
_ROW = "__row"

WINDOWS_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        # The N (or fewer, down to min_history) items before the target, oldest first.
        pa.field("history", pa.list_(pa.string()), nullable=False),
        pa.field("target_item_id", pa.string(), nullable=False),
        pa.field("target_timestamp", pa.int64(), nullable=False),
    ]
)


# ---------------------------------------------------------------------------------------------
# ordering


def _ordered(interactions: pa.Table) -> pa.Table:
    """Rows sorted by (user_id, timestamp, original row): the one deterministic order all splits use.

    The original row number is an explicit sort key, so ties on timestamp are broken by file order
    whatever sort algorithm Arrow uses.
    """
    t = interactions.append_column(_ROW, pa.array(np.arange(len(interactions), dtype=np.int64)))
    return t.sort_by([("user_id", "ascending"), ("timestamp", "ascending"), (_ROW, "ascending")])


def _user_groups(ordered: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows already sorted by user: (position within user, user's length per row, group starts)."""
    n = len(ordered)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    users = ordered.column("user_id").combine_chunks()
    # A new group starts wherever user_id differs from the previous row.
    changed = pc.not_equal(users.slice(1), users.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    starts = np.concatenate([[0], np.flatnonzero(changed) + 1]).astype(np.int64)
    lengths = np.diff(np.append(starts, n))
    group = np.repeat(np.arange(len(starts)), lengths)
    position = np.arange(n, dtype=np.int64) - starts[group]
    return position, lengths[group], starts


def _strip(table: pa.Table) -> pa.Table:
    return table.drop_columns([_ROW]) if _ROW in table.column_names else table


def _listed(ids: list[str]) -> dict[str, Any]:
    return {"count": len(ids), "ids": ids[:MAX_LISTED], "listed_all": len(ids) <= MAX_LISTED}


# ---------------------------------------------------------------------------------------------
# k-core


@dataclass
class KCoreStats:
    """What k-core filtering removed, and how many passes it needed to reach a fixed point."""

    user_k: int
    item_k: int
    iterations: int
    users_before: int
    items_before: int
    interactions_before: int
    users_after: int
    items_after: int
    interactions_after: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def kcore(
    interactions: pa.Table, k: int | None = None, *, user_k: int | None = None, item_k: int | None = None
) -> tuple[pa.Table, KCoreStats]:
    """Keep the largest subset where every user has >= user_k and every item >= item_k interactions.

    Removing a sparse user can push an item below its threshold and vice versa, so both filters
    are applied in turn until a pass removes nothing. Every row counts as one interaction (a user
    who bought the same item twice has two). ``k`` sets both thresholds; ``user_k``/``item_k``
    override it per side. Row order is preserved.
    """
    user_k = user_k if user_k is not None else (k or 0)
    item_k = item_k if item_k is not None else (k or 0)
    if user_k < 0 or item_k < 0:
        raise ValueError("k-core thresholds must be >= 0")

    def n_unique(t: pa.Table, col: str) -> int:
        return len(pc.unique(t.column(col)))

    before = (n_unique(interactions, "user_id"), n_unique(interactions, "item_id"), len(interactions))
    table = interactions
    iterations = 0
    while True:
        iterations += 1
        removed = False
        for col, threshold in (("user_id", user_k), ("item_id", item_k)):
            if threshold <= 1:  # every present id has at least one interaction
                continue
            counts = table.group_by(col).aggregate([([], "count_all")])
            keep_ids = counts.filter(pc.greater_equal(counts.column("count_all"), threshold)).column(col)
            if len(keep_ids) < len(counts):
                table = table.filter(pc.is_in(table.column(col), value_set=keep_ids.combine_chunks()))
                removed = True
        if not removed:
            break
    stats = KCoreStats(
        user_k=user_k,
        item_k=item_k,
        iterations=iterations,
        users_before=before[0],
        items_before=before[1],
        interactions_before=before[2],
        users_after=n_unique(table, "user_id"),
        items_after=n_unique(table, "item_id"),
        interactions_after=len(table),
    )
    return table, stats


# ---------------------------------------------------------------------------------------------
# splits


@dataclass
class SplitResult:
    """Output tables of one split method, its parameters, and notes on users it treated specially."""

    method: str
    tables: dict[str, pa.Table]
    params: dict[str, Any]
    seed: int | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        out = {}
        for name, t in self.tables.items():
            out[name] = {"rows": len(t), "users": len(pc.unique(t.column("user_id")))}
            item_col = "item_id" if "item_id" in t.column_names else "target_item_id"
            out[name]["items"] = len(pc.unique(t.column(item_col)))
        return out


def leave_one_out(interactions: pa.Table, short_history: Literal["train", "drop"] = "train") -> SplitResult:
    """Chronological leave-one-out: per user, last -> test, second-last -> valid, the rest -> train.

    Users with fewer than 3 interactions cannot give a train, a valid and a test item. By default
    (``short_history="train"``) all their interactions go to train: they still teach the model
    about items, and they are never evaluated on a history that is empty. ``"drop"`` leaves them
    out entirely. Either way they are counted and listed in ``notes["short_history_users"]``.
    """
    if short_history not in ("train", "drop"):
        raise ValueError(f"short_history must be 'train' or 'drop', got {short_history!r}")
    ordered = _ordered(interactions)
    position, length, starts = _user_groups(ordered)
    from_end = length - 1 - position
    long_enough = length >= 3
    test = long_enough & (from_end == 0)
    valid = long_enough & (from_end == 1)
    train = (long_enough & (from_end >= 2)) | (~long_enough if short_history == "train" else False)
    users = ordered.column("user_id").combine_chunks()
    short_users = pc.take(users, pa.array(starts[length[starts] < 3])).to_pylist() if len(starts) else []
    tables = {
        "train": _strip(ordered.filter(pa.array(train))),
        "valid": _strip(ordered.filter(pa.array(valid))),
        "test": _strip(ordered.filter(pa.array(test))),
    }
    return SplitResult(
        method="loo",
        tables=tables,
        params={"short_history": short_history},
        notes={
            "short_history_users": {
                **_listed(short_users),
                "rule": "fewer than 3 interactions",
                "went_to": "train" if short_history == "train" else "dropped",
            }
        },
    )


def user_split(
    interactions: pa.Table, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> SplitResult:
    """Assign whole users to train/valid/test at random, so no user appears in two parts.

    Users are sorted by id, then permuted by ``numpy.random.default_rng(seed)``, so the split
    depends only on the set of users and the seed, not on row order. Part sizes are
    ``round(cumsum(fractions) * n_users)`` boundaries, so they add up to exactly n_users.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or not all(np.isfinite(f) and f >= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    ordered = _ordered(interactions)
    user_ids = np.array(pc.unique(ordered.column("user_id")).to_pylist(), dtype=object)
    user_ids.sort()
    perm = np.random.default_rng(seed).permutation(len(user_ids))
    bounds = np.rint(np.cumsum(fractions) * len(user_ids)).astype(int)
    bounds[-1] = len(user_ids)
    parts = np.split(user_ids[perm], bounds[:-1])
    tables = {
        name: _strip(ordered.filter(pc.is_in(ordered.column("user_id"), value_set=pa.array(list(ids), pa.string()))))
        for name, ids in zip(("train", "valid", "test"), parts)
    }
    return SplitResult(method="user", tables=tables, params={"fractions": list(fractions)}, seed=seed)


def sliding_windows(
    interactions: pa.Table, history_len: int, stride: int = 1, min_history: int | None = None
) -> SplitResult:
    """Every window of ``history_len`` consecutive items of a user -> the item right after it.

    For a user with items s0..s(L-1) (time order), the target positions are L-1, L-1-stride, ...
    down to ``min_history``: anchored at the most recent item, so every user's latest interaction
    is a target whatever the stride. The history of target t is s[max(0, t-history_len) : t]; it
    has ``history_len`` items except near the start, where ``min_history`` (default
    ``history_len``: full windows only) allows shorter ones. Users with at most ``min_history``
    interactions yield no window and are counted and listed in ``notes``.
    """
    if history_len < 1 or stride < 1:
        raise ValueError("history_len and stride must be >= 1")
    min_history = history_len if min_history is None else min_history
    if not 1 <= min_history <= history_len:
        raise ValueError(f"min_history must be between 1 and history_len ({history_len}), got {min_history}")
    ordered = _ordered(interactions)
    position, length, starts = _user_groups(ordered)
    is_target = (position >= min_history) & ((length - 1 - position) % stride == 0)
    targets = np.flatnonzero(is_target)
    hist_len = np.minimum(position[targets], history_len)
    offsets = np.concatenate([[0], np.cumsum(hist_len)]).astype(np.int32)
    # Row indices of every history item, window after window: target - hist_len + (0..hist_len-1).
    within = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], hist_len)
    history_rows = np.repeat(targets - hist_len, hist_len) + within
    items = ordered.column("item_id").combine_chunks()
    history = pa.ListArray.from_arrays(pa.array(offsets), pc.take(items, pa.array(history_rows)))
    target_idx = pa.array(targets)
    table = pa.Table.from_arrays(
        [
            pc.take(ordered.column("user_id"), target_idx).combine_chunks(),
            history,
            pc.take(items, target_idx),
            pc.take(ordered.column("timestamp"), target_idx).combine_chunks(),
        ],
        schema=WINDOWS_SCHEMA,
    )
    users = ordered.column("user_id").combine_chunks()
    no_window = pc.take(users, pa.array(starts[length[starts] <= min_history])).to_pylist() if len(starts) else []
    return SplitResult(
        method="window",
        tables={"windows": table},
        params={"history_len": history_len, "stride": stride, "min_history": min_history},
        notes={"users_without_window": {**_listed(no_window), "rule": f"at most {min_history} interactions"}},
    )


# ---------------------------------------------------------------------------------------------
# on disk


def _write_parquet(table: pa.Table, path: Path) -> None:
    # Fixed options and no timestamps in the metadata, so identical tables give identical bytes.
    pq.write_table(table, path, compression="zstd", write_statistics=True)


def split_dataset(
    dataset_dir: str | os.PathLike,
    method: Literal["kcore", "loo", "user", "window"],
    name: str | None = None,
    *,
    overwrite: bool = False,
    k: int | None = None,
    user_k: int | None = None,
    item_k: int | None = None,
    short_history: Literal["train", "drop"] = "train",
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    history_len: int = 10,
    stride: int = 1,
    min_history: int | None = None,
) -> dict[str, Any]:
    """Compute a split of the dataset's interactions and write it to ``DATASET/splits/NAME/``.

    ``method="kcore"`` writes only the filtered ``interactions.parquet``. For the other methods,
    ``k``/``user_k``/``item_k`` (if given) k-core filter the interactions first, and the filter's
    statistics go into ``split.json``. ``name`` defaults to the method. Returns split.json's content.
    """
    if method not in METHODS:
        raise ValueError(f"unknown split method {method!r}; choose one of {', '.join(METHODS)}")
    name = plain_name(name or method, "split name")
    ds = Dataset(dataset_dir)
    inter_path = ds.root / TABLES["interactions"][0]
    interactions = ds.interactions
    filtered, kstats = interactions, None
    if method == "kcore" or k is not None or user_k is not None or item_k is not None:
        if method == "kcore" and k is None and user_k is None and item_k is None:
            raise ValueError("method 'kcore' needs k, user_k or item_k")
        filtered, kstats = kcore(interactions, k, user_k=user_k, item_k=item_k)
    if method == "kcore":
        result = SplitResult(
            method="kcore", tables={"interactions": filtered}, params={"user_k": kstats.user_k, "item_k": kstats.item_k}
        )
    elif method == "loo":
        result = leave_one_out(filtered, short_history=short_history)
    elif method == "user":
        result = user_split(filtered, fractions=fractions, seed=seed)
    else:
        result = sliding_windows(filtered, history_len=history_len, stride=stride, min_history=min_history)

    out = ds.root / "splits" / name
    meta: dict[str, Any] = {
        "name": name,
        "method": result.method,
        "params": result.params,
        "seed": result.seed,
        "kcore": kstats.as_dict() if kstats else None,
        "counts": result.counts(),
        "notes": result.notes,
        "inputs": {"interactions.parquet": hash_file(inter_path)},
        "outputs": {},
        "created": now_utc(),
        "tailorgen_version": __version__,
    }
    with atomic_dir(out, overwrite=overwrite, replaceable=lambda d: (d / "split.json").is_file(), what="split") as tmp:
        for part, table in result.tables.items():
            filename = f"{part}.parquet"
            _write_parquet(table, tmp / filename)
            meta["outputs"][filename] = hash_file(tmp / filename)
        write_json(tmp / "split.json", meta)
    return meta


@dataclass
class Split:
    """A split read back from disk: its tables by part name and its split.json."""

    name: str
    meta: dict[str, Any]
    tables: dict[str, pa.Table]

    def __getitem__(self, part: str) -> pa.Table:
        try:
            return self.tables[part]
        except KeyError:
            raise KeyError(f"split '{self.name}' has no part '{part}'; it has {sorted(self.tables)}") from None

    @property
    def method(self) -> str:
        return self.meta["method"]


def list_splits(dataset_dir: str | os.PathLike) -> list[str]:
    root = Path(dataset_dir) / "splits"
    return sorted(p.name for p in root.iterdir() if (p / "split.json").exists()) if root.is_dir() else []


def load_split(dataset_dir: str | os.PathLike, name: str, *, allow_stale: bool = False) -> Split:
    """Read ``DATASET/splits/NAME`` and check it is intact and made from the current interactions.

    Raises DataError if an output file's hash differs from split.json (damaged or edited), or, unless
    ``allow_stale``, if interactions.parquet changed since the split was made (re-run the split).
    """
    root = Path(dataset_dir)
    folder = root / "splits" / name
    meta_path = folder / "split.json"
    if not meta_path.exists():
        have = list_splits(root)
        raise FileNotFoundError(
            f"no split '{name}' in {root / 'splits'} (have: {', '.join(have) or 'none'}); "
            "create it with `tailorgen data split`"
        )
    meta = read_json(meta_path)
    tables = {}
    for filename, expected in meta["outputs"].items():
        path = folder / filename
        if not path.exists():
            raise DataError(str(path), None, None, "listed in split.json but missing")
        if hash_file(path) != expected:
            raise DataError(str(path), None, None, "content hash differs from split.json; the split is damaged")
        tables[filename.removesuffix(".parquet")] = pq.read_table(path)
    inter_path = root / TABLES["interactions"][0]
    expected_in = meta["inputs"].get("interactions.parquet")
    if not allow_stale and expected_in and inter_path.exists() and hash_file(inter_path) != expected_in:
        raise DataError(
            str(inter_path),
            None,
            None,
            f"changed since split '{name}' was made; re-run `tailorgen data split ... --overwrite` "
            "(or pass allow_stale=True)",
        )
    return Split(name=name, meta=meta, tables=tables)


__all__ = [
    "METHODS",
    "WINDOWS_SCHEMA",
    "KCoreStats",
    "Split",
    "SplitResult",
    "kcore",
    "leave_one_out",
    "list_splits",
    "load_split",
    "sliding_windows",
    "split_dataset",
    "user_split",
]

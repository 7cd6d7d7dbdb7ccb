"""A FAISS vector index keyed by string ids: exact (flat), inverted-file (ivf) or graph (hnsw).

Why a wrapper around FAISS at all: the rest of tailorgen speaks item ids (strings) and cosine
similarity, wants to exclude a user's own history from results, and needs indexes saved beside a
run and reloaded bit-for-bit. FAISS does the numerics; this class does ids, exclusion, input
checks and persistence, and nothing else.

Similarity is the inner product. With ``normalize=True`` (the default) vectors and queries are
L2-normalized copies, so the score is cosine similarity; tailorgen's encoders already return
unit rows, and normalizing again is cheap insurance against a caller passing raw vectors.

Id mapping: the index is append-only, so the row at which a vector was added is a stable int64
label, and FAISS already assigns exactly these sequential labels (0..ntotal-1) when ``add`` is
called without ids, for all three kinds. We therefore keep our own ``list[str]`` (label -> id)
plus ``dict[str, int]`` (id -> label) instead of wrapping in ``IndexIDMap2``: the map would add
a second id array and a hash table inside FAISS to store the identity function, and
``IndexHNSWFlat`` does not accept ``add_with_ids`` without such a wrapper anyway. Mapping
labels back is one array lookup.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tailorgen.common import atomic_dir, read_json, write_json

KINDS = ("flat", "ivf", "hnsw")

# Parameters each kind accepts, with defaults. None means "chosen from the data at first add".
_DEFAULTS: dict[str, dict[str, Any]] = {
    "flat": {},
    # nlist ~ 4*sqrt(N) is the usual FAISS guideline; capped at N/39 so every centroid gets the
    # 39 training points FAISS asks for (below ~100k vectors the cap is the one that binds).
    # nprobe=16 lists scanned per query; train_size caps the k-means sample (None: 50*nlist)
    # because k-means over every vector of a 1M catalog costs minutes for no recall gain.
    "ivf": {"nlist": None, "nprobe": 16, "train_size": None, "seed": 0},
    # M neighbours per node; efConstruction / efSearch: beam widths while building / searching.
    "hnsw": {"m": 32, "ef_construction": 40, "ef_search": 64},
}
# Parameters that only affect search, so they may change after vectors are added.
_SEARCH_PARAMS = {"nprobe", "ef_search"}
_FORMAT_VERSION = 1
Exclude = Iterable[str] | Sequence[Iterable[str]] | None


class VectorIndex:
    """Nearest-neighbour search over string-keyed vectors by inner product (cosine when normalized).

    >>> index = VectorIndex("hnsw", m=16)
    >>> index.add(["a", "b", "c"], vectors)        # (3, D) float32
    >>> ids, scores = index.search(queries, k=2, exclude=[{"a"}, set()])

    Kinds: ``"flat"`` exact search (``IndexFlatIP``), the default and the right choice up to a few
    hundred thousand vectors; ``"ivf"`` (``IndexIVFFlat``: ``nlist``, ``nprobe``, ``train_size``,
    ``seed``), trained on the first batch added; ``"hnsw"`` (``IndexHNSWFlat``: ``m``,
    ``ef_construction``, ``ef_search``). See ``_DEFAULTS`` for defaults and why.
    """

    def __init__(self, kind: str = "flat", *, normalize: bool = True, **params: Any):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
        unknown = sorted(set(params) - set(_DEFAULTS[kind]))
        if unknown:
            accepted = ", ".join(_DEFAULTS[kind]) or "none"
            raise TypeError(f"VectorIndex(kind={kind!r}) got unknown parameter(s) {unknown}; it accepts: {accepted}")
        self.kind = kind
        self.normalize = bool(normalize)
        self._params = {**_DEFAULTS[kind], **params}
        self._check_params(self._params)
        self._index: faiss.Index | None = None
        self._dim: int | None = None
        self._ids: list[str] = []
        self._pos: dict[str, int] = {}
        self._id_array: np.ndarray | None = None  # object array of self._ids, rebuilt lazily after add

    # ------------------------------------------------------------------ properties

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._pos

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"VectorIndex(kind={self.kind!r}, {params}, dim={self._dim}, count={len(self)})"

    @property
    def dim(self) -> int | None:
        """Vector dimension, fixed by the first ``add`` (None while empty)."""
        return self._dim

    @property
    def ids(self) -> list[str]:
        """Ids in the order they were added (a copy)."""
        return list(self._ids)

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, with data-dependent ones (ivf ``nlist``) resolved once trained."""
        return {"normalize": self.normalize, **self._params}

    def set_params(self, **params: Any) -> VectorIndex:
        """Change search-time parameters (``nprobe`` for ivf, ``ef_search`` for hnsw) in place."""
        bad = sorted(set(params) - (_SEARCH_PARAMS & set(_DEFAULTS[self.kind])))
        if bad:
            allowed = sorted(_SEARCH_PARAMS & set(_DEFAULTS[self.kind])) or "none"
            raise ValueError(
                f"{bad} cannot be changed on a {self.kind!r} index; search-time parameters are: {allowed} "
                "(build-time parameters need a new index)"
            )
        new = {**self._params, **params}
        self._check_params(new)
        self._params = new
        if self._index is not None:
            self._apply_search_params()
        return self

    # ------------------------------------------------------------------ building

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> VectorIndex:
        """Append vectors under new string ids. Adding again appends; an id already present raises.

        An ivf index trains its coarse quantizer on the first batch (or a sample of it), so that
        batch should be representative; later batches are assigned to the existing lists.
        Everything is validated before the index is touched, so a bad batch changes nothing.
        """
        if isinstance(ids, str):
            raise TypeError("ids must be a list of strings; wrap a single id in a list")
        ids = list(ids)
        x = self._as_matrix(vectors, "vectors")
        if len(ids) != len(x):
            raise ValueError(f"got {len(ids)} ids for {len(x)} vectors; pass one id per row")
        for i, item_id in enumerate(ids):
            if not isinstance(item_id, str):
                raise TypeError(f"ids[{i}] is {type(item_id).__name__} {item_id!r}; ids must be strings")
        seen: set[str] = set()
        for item_id in ids:
            if item_id in self._pos:
                raise ValueError(f"id {item_id!r} is already in the index; ids must be unique (drop it from the batch)")
            if item_id in seen:
                raise ValueError(f"id {item_id!r} appears twice in this batch; ids must be unique")
            seen.add(item_id)
        if len(x) == 0:
            return self
        if self._index is None:
            self._index = self._build(x)
            self._dim = x.shape[1]
        self._index.add(x)
        start = len(self._ids)
        self._ids.extend(ids)
        self._pos.update((item_id, start + i) for i, item_id in enumerate(ids))
        self._id_array = None
        return self

    def _build(self, x: np.ndarray) -> faiss.Index:
        """Create (and for ivf, train) the FAISS index for the first batch ``x``."""
        return self._empty_index(x[self.training_rows(len(x))], len(x))

    def training_rows(self, n: int) -> np.ndarray:
        """Rows of an ``n``-vector first batch that an ivf index trains its k-means on.

        A sample, fixed by ``seed``, when the batch is larger than ``train_size``: a job that holds
        the vectors in partitions gathers exactly these rows and calls ``train``. Flat and hnsw
        train on nothing: their one row only fixes the dimension."""
        if self.kind != "ivf":
            return np.arange(min(n, 1))
        train_size = self._params["train_size"] or 50 * self._nlist_for(n)
        if n <= train_size:
            return np.arange(n)
        return np.sort(np.random.default_rng(self._params["seed"]).choice(n, size=int(train_size), replace=False))

    def train(self, sample: np.ndarray, n: int) -> VectorIndex:
        """Build the empty index for ``n`` vectors, an ivf one trained on ``sample`` (the rows ``training_rows(n)``).

        For jobs that add the vectors in parts elsewhere and ``merge`` the parts: the result equals
        one ``add`` of all ``n`` vectors in the same order."""
        if self._index is not None:
            raise RuntimeError("the index already holds vectors; train a new VectorIndex")
        if len(sample) == 0:
            raise ValueError(
                "train needs the rows training_rows(n) of the vectors (at least one: it fixes the dimension)"
            )
        x = self._as_matrix(sample, "sample")
        self._index = self._empty_index(x, n)
        self._dim = x.shape[1]
        return self

    def _nlist_for(self, n: int) -> int:
        nlist = self._params["nlist"]
        return int(nlist) if nlist is not None else max(1, min(round(4 * math.sqrt(n)), n // 39))

    def _empty_index(self, sample: np.ndarray, n: int) -> faiss.Index:
        d = sample.shape[1]
        if self.kind == "flat":
            return faiss.IndexFlatIP(d)
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, int(self._params["m"]), faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = int(self._params["ef_construction"])
            index.hnsw.efSearch = int(self._params["ef_search"])
            return index
        nlist = self._nlist_for(n)
        if nlist > n:
            raise ValueError(
                f"nlist={nlist} exceeds the {n} vectors in the first batch; k-means needs at least one vector "
                "per list: add more vectors in the first batch or pass a smaller nlist"
            )
        self._params["nlist"] = nlist
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = int(self._params["seed"])
        index.train(sample)
        index.nprobe = min(int(self._params["nprobe"]), nlist)
        return index

    def merge(self, other: VectorIndex) -> VectorIndex:
        """Append ``other``'s vectors and ids (FAISS ``merge_from``): a part built from the same trained index.

        Flat and ivf only (an HNSW graph cannot be joined; build it on one machine). Parts merged in
        order give the index one ``add`` of everything in that order would."""
        if self.kind not in ("flat", "ivf") or other.kind != self.kind:
            raise ValueError(
                f"only flat and ivf indexes merge, and only with their own kind; got {self.kind} and {other.kind}"
            )
        if other._index is None:
            return self
        if self._index is None or self._dim != other._dim:
            raise ValueError(f"merge into a trained index of the same dimension (have {self._dim}, got {other._dim})")
        if self.kind == "ivf" and not same_centroids(self, other):
            raise ValueError("the ivf parts were trained apart; build every part from the same trained index")
        clash = next((i for i in other._ids if i in self._pos), None)
        if clash is not None:
            raise ValueError(f"id {clash!r} is in both indexes; ids must be unique")
        start = len(self._ids)
        self._index.merge_from(other._index, start if self.kind == "ivf" else 0)  # flat: labels are row numbers
        self._ids.extend(other._ids)
        self._pos.update((item_id, start + i) for i, item_id in enumerate(other._ids))
        self._id_array = None
        return self

    def _apply_search_params(self) -> None:
        if self.kind == "ivf":
            self._index.nprobe = min(int(self._params["nprobe"]), self._index.nlist)
        elif self.kind == "hnsw":
            self._index.hnsw.efSearch = int(self._params["ef_search"])

    # ------------------------------------------------------------------ searching

    def search(self, queries: np.ndarray, k: int, exclude: Exclude = None) -> tuple[list[list[str]], np.ndarray]:
        """The ``k`` best ids per query row, best first, and their scores as a (Q, k) array.

        ``exclude`` is one set of ids removed from every query's results, or a list with one set
        per query (the query item itself, the user's history). Excluded ids never appear and the
        other results move up, so ``k`` results still come back whenever enough remain. Only when
        fewer than ``k`` are reachable (a tiny index; an ivf index whose probed lists run out) is
        a row shorter than ``k``; its missing scores are ``-inf``.

        Exclusion over-fetches ``k + m`` neighbours in one batched FAISS call, where ``m`` is the
        largest number of excluded ids of any query that are actually in the index, then filters.
        For flat this is exact: at most ``m`` of the top ``k + m`` can be excluded. We prefer it to
        FAISS ``SearchParameters(sel=IDSelectorBatch)`` because a selector applies to a whole call:
        per-query exclusion sets would mean one FAISS call per query, giving up the BLAS matrix
        product (flat) and the OpenMP spread over queries that make batched search fast, and a
        hash set would be rebuilt per query. Over-fetching by a handful of ids costs almost
        nothing. (A history of thousands of items makes every query of the batch fetch thousands;
        still correct, just slower: split such batches by user.)
        """
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if self._index is None:
            raise RuntimeError("the index is empty; add vectors with .add(ids, vectors) before searching")
        q = self._as_matrix(queries, "queries")
        n_q = len(q)
        sets = exclusion_sets(exclude, n_q)
        k = int(k)
        if len(self) == 0:  # trained but empty (a shard of items without images): nothing to find
            return [[] for _ in range(n_q)], np.full((n_q, k), -np.inf, np.float32)
        # How many of each query's exclusions can actually occupy a result slot.
        m = max((sum(1 for e in s if e in self._pos) for s in sets), default=0) if sets else 0
        fetch = min(k + m, len(self))
        if n_q == 0:
            return [], np.zeros((0, k), np.float32)
        scores, labels = self._index.search(q, fetch)
        if self._id_array is None:
            self._id_array = np.array(self._ids, dtype=object)
        out_scores = np.full((n_q, k), -np.inf, dtype=np.float32)
        out_ids: list[list[str]] = []
        if not sets:
            valid = labels >= 0
            for r in range(n_q):
                row = self._id_array[labels[r][valid[r]]].tolist()
                out_ids.append(row)
                out_scores[r, : len(row)] = scores[r][valid[r]]
            return out_ids, out_scores
        for r in range(n_q):
            skip = sets[r]
            row_ids: list[str] = []
            for j, label in enumerate(labels[r]):
                if label < 0:
                    break  # FAISS pads with -1 after the last result
                item_id = self._ids[label]
                if item_id in skip:
                    continue
                out_scores[r, len(row_ids)] = scores[r, j]
                row_ids.append(item_id)
                if len(row_ids) == k:
                    break
            out_ids.append(row_ids)
        return out_ids, out_scores

    def vector(self, item_id: str) -> np.ndarray | None:
        """The vector stored under ``item_id`` (normalized, if the index normalizes), or None when absent."""
        label = self._pos.get(item_id)
        if label is None:
            return None
        if self.kind == "ivf" and not self._index.direct_map.type:
            self._index.make_direct_map()  # ivf finds a label's list through this map (8 bytes a vector)
        return self._index.reconstruct(label)

    # ------------------------------------------------------------------ validation

    def _as_matrix(self, x: Any, name: str) -> np.ndarray:
        """A C-contiguous float32 (N, dim) copy, checked and (if ``normalize``) L2-normalized."""
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} must be a 2-D numeric array, got {type(x).__name__}: {e}") from e
        if arr.ndim != 2:
            hint = f" (for a single row use {name}[None, :])" if arr.ndim == 1 else ""
            raise ValueError(f"{name} must be a 2-D array of shape (N, dim), got shape {arr.shape}{hint}")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
        if self._dim is not None and arr.shape[1] != self._dim:
            raise ValueError(
                f"{name} have dimension {arr.shape[1]} but this index holds {self._dim}-dimensional vectors; "
                "embed them with the same encoder that built the index"
            )
        if arr.shape[1] == 0:
            raise ValueError(f"{name} have dimension 0")
        out = np.array(arr, dtype=np.float32, order="C", copy=True)
        finite = np.isfinite(out).all(axis=1)
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            raise ValueError(
                f"{name} row {bad} contains NaN or infinity ({(~finite).sum()} bad rows in all); "
                "fix or drop those rows (often a failed encode or a division by zero)"
            )
        if self.normalize and len(out):
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            zero = norms[:, 0] == 0
            if zero.any():
                raise ValueError(
                    f"{name} row {int(np.flatnonzero(zero)[0])} is all zeros, so its cosine similarity is undefined; "
                    "drop it, or build the index with normalize=False for raw inner products"
                )
            out /= norms
        return out

    @staticmethod
    def _check_params(params: dict[str, Any]) -> None:
        for name in ("nlist", "nprobe", "train_size", "m", "ef_construction", "ef_search"):
            v = params.get(name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1):
                raise ValueError(f"{name} must be a positive integer, got {v!r}")

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write ``index.faiss``, ``ids.parquet`` and ``meta.json`` to directory ``path`` atomically.

        The directory appears only once all three files are complete, so a crash never leaves an
        index whose ids and vectors disagree. Ids go to Parquet (not .npy) because NumPy stores
        strings at fixed width, which for long ids costs several times their size.
        """
        if self._index is None:
            raise RuntimeError("the index is empty; add vectors before saving")
        with atomic_dir(path, overwrite=overwrite) as tmp:
            faiss.write_index(self._index, str(tmp / "index.faiss"))
            pq.write_table(pa.table({"id": pa.array(self._ids, pa.string())}), tmp / "ids.parquet")
            write_json(
                tmp / "meta.json",
                {
                    "format_version": _FORMAT_VERSION,
                    "kind": self.kind,
                    "params": self.get_params(),
                    "dim": self._dim,
                    "count": len(self),
                    "faiss_version": faiss.__version__,
                },
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> VectorIndex:
        """Read an index written by ``save``; checks that ids, vectors and metadata agree."""
        path = Path(path)
        meta_path = path / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{path} is not a saved VectorIndex (no meta.json); write one with .save()")
        meta = read_json(meta_path)
        if meta.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"{meta_path}: format_version is {meta.get('format_version')}, expected {_FORMAT_VERSION}")
        params = dict(meta["params"])
        normalize = params.pop("normalize", True)
        self = cls(meta["kind"], normalize=normalize, **params)
        self._index = faiss.read_index(str(path / "index.faiss"))
        self._ids = pq.read_table(path / "ids.parquet").column("id").to_pylist()
        self._pos = {item_id: i for i, item_id in enumerate(self._ids)}
        self._dim = int(meta["dim"])
        counts = {"meta.json": meta["count"], "ids.parquet": len(self._ids), "index.faiss": self._index.ntotal}
        if len(set(counts.values())) != 1 or len(self._pos) != len(self._ids) or self._index.d != self._dim:
            raise ValueError(f"{path}: the saved files disagree (counts {counts}, dim {self._index.d} vs {self._dim})")
        self._apply_search_params()
        return self


def same_centroids(a: VectorIndex, b: VectorIndex) -> bool:
    """Whether two trained ivf indexes have the very same centroids (parts or shards of one trained index)."""
    a, b = a._index, b._index
    ca, cb = a.quantizer.reconstruct_n(0, a.nlist), b.quantizer.reconstruct_n(0, b.nlist)
    return ca.shape == cb.shape and np.array_equal(ca, cb)


def exclusion_sets(exclude: Exclude, n_q: int) -> list[set[str]] | None:
    """Normalize ``exclude`` to one set per query, or None when nothing is excluded."""
    if exclude is None:
        return None
    if isinstance(exclude, str):
        raise TypeError("exclude must be a set of ids or a list of sets, not a single string; wrap it: {id}")
    if isinstance(exclude, set | frozenset):
        shared = set(exclude)
        return [shared] * n_q if shared else None
    exclude = list(exclude)
    if exclude and all(isinstance(e, str) for e in exclude):
        shared = set(exclude)  # a flat list of ids: one set for every query
        return [shared] * n_q
    if len(exclude) != n_q:
        raise ValueError(
            f"exclude has {len(exclude)} entries for {n_q} queries; pass one set per query, or a single set "
            "to exclude the same ids from every query"
        )
    sets = []
    for i, e in enumerate(exclude):
        if e is None:
            sets.append(set())
        elif isinstance(e, str):
            raise TypeError(f"exclude[{i}] is the string {e!r}; each entry must be a set of ids, e.g. {{{e!r}}}")
        else:
            sets.append(set(e))
    return sets if any(sets) else None

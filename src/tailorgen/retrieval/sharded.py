"""An index in shards: S ``VectorIndex`` parts of one catalog, searched apart, their top-k merged.

Why: a catalog's vectors can outgrow one machine's memory (100M x 384 float32 is 154 GB), and a
single merged index cannot be held anywhere. Cut into shards, each held by its own process or
machine (``tailorgen.scale.search`` puts one on each Dask worker), a query goes to every shard and
the best ``k`` of the ``S * k`` answers are kept.

The merge adds no approximation of its own: every id of the one-index top-k is in its shard's
top-k. For ``flat`` shards the result is the exact search of the whole catalog. For ``ivf`` shards
filled from one trained empty index (``tailorgen scale index`` builds them so; the centroids are
checked) every shard probes the same ``nprobe`` lists for a query, so together they scan exactly
the vectors the single index would, and return its results. Exactly equal scores are the one
exception: shards are merged in their order and FAISS's heap breaks ties by label, so ties may
come in another order, and a tie at the k-th place may keep another of the tied ids. (HNSW shards
would be searched and merged too, but each graph's search is its own approximation.)

On disk: a folder with ``shards.json`` (kind, parameters, dimension, each shard's folder and
count) and one saved ``VectorIndex`` per shard, written through a temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tailorgen.common import atomic_dir, read_json, write_json
from tailorgen.retrieval.index import Exclude, VectorIndex, exclusion_sets, same_centroids

SHARDS_FILE = "shards.json"
_FORMAT_VERSION = 1


def shard_name(i: int) -> str:
    return f"shard-{i:05d}"


def merge_top_k(results: Sequence[tuple[list[list[str]], np.ndarray]], k: int) -> tuple[list[list[str]], np.ndarray]:
    """Per query, the ``k`` best of every shard's (ids, scores) answer, best first; shards in order on ties.

    Rows shorter than ``k`` (scores ``-inf`` past their end) stay short, as ``VectorIndex.search``'s."""
    if not results:
        raise ValueError("merge_top_k needs at least one shard's results")
    n_q = len(results[0][0])
    scores = np.full((n_q, len(results) * k), -np.inf, np.float32)  # (Q, S*k): shard s in columns s*k..
    for s, (_, shard_scores) in enumerate(results):
        width = min(k, np.shape(shard_scores)[1] if n_q else 0)
        scores[:, s * k : s * k + width] = np.asarray(shard_scores, np.float32)[:, :width]
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # stable: earlier shards first among equal scores
    out_ids, out_scores = [], np.full((len(scores), k), -np.inf, np.float32)
    for q, best in enumerate(order):
        ids = [i for shard_ids, _ in results for i in (shard_ids[q] + [None] * k)[:k]]
        keep = [j for j in best if ids[j] is not None]
        out_ids.append([ids[j] for j in keep])
        out_scores[q, : len(keep)] = scores[q, keep]
    return out_ids, out_scores


class ShardedIndex:
    """S ``VectorIndex`` shards searched as one: ``search`` has ``VectorIndex.search``'s contract.

    >>> sharded = ShardedIndex([VectorIndex("flat").add(ids[:n], x[:n]), VectorIndex("flat").add(ids[n:], x[n:])])
    >>> sharded.search(queries, k=10, exclude=[{"a"}, set()])   # the same as one index of all of them
    """

    def __init__(self, shards: Sequence[VectorIndex]):
        if not shards:
            raise ValueError("a ShardedIndex needs at least one shard")
        kinds, dims = {s.kind for s in shards}, {s.dim for s in shards}
        if len(kinds) != 1 or len(dims) != 1 or None in dims:
            raise ValueError(f"shards must be filled and of one kind and dimension; got kinds {kinds}, dims {dims}")
        seen: set[str] = set()
        for i, shard in enumerate(shards):
            clash = next((x for x in shard.ids if x in seen), None)
            if clash is not None:
                raise ValueError(f"id {clash!r} is in shard {i} and an earlier one; ids must be unique")
            seen.update(shard.ids)
        self.shards = list(shards)
        self.kind, self.dim = kinds.pop(), dims.pop()
        if self.kind == "ivf" and not all(same_centroids(self.shards[0], s) for s in self.shards[1:]):
            raise ValueError("the ivf shards were trained apart; fill every shard from one trained index")

    def __len__(self) -> int:
        return sum(len(s) for s in self.shards)

    def __contains__(self, item_id: object) -> bool:
        return any(item_id in s for s in self.shards)

    def __repr__(self) -> str:
        return f"ShardedIndex(kind={self.kind!r}, shards={len(self.shards)}, dim={self.dim}, count={len(self)})"

    @property
    def ids(self) -> list[str]:
        """Ids shard by shard, each in the order it was added: the order of one index filled the same way."""
        return [i for s in self.shards for i in s.ids]

    def get_params(self) -> dict:
        return self.shards[0].get_params()

    def set_params(self, **params) -> ShardedIndex:
        for shard in self.shards:
            shard.set_params(**params)
        return self

    def search(self, queries: np.ndarray, k: int, exclude: Exclude = None) -> tuple[list[list[str]], np.ndarray]:
        """Every shard's ``k`` best, merged (``merge_top_k``); see ``VectorIndex.search``."""
        sets = exclusion_sets(exclude, len(np.asarray(queries)))
        return merge_top_k([s.search(queries, k, exclude=sets) for s in self.shards], k)

    def vector(self, item_id: str) -> np.ndarray | None:
        return next((v for s in self.shards if (v := s.vector(item_id)) is not None), None)

    def save(self, path: str | os.PathLike, overwrite: bool = False, **about) -> Path:
        """The shards and ``shards.json`` (with ``about``: e.g. the encoder that made the vectors), atomically."""
        with atomic_dir(path, overwrite=overwrite) as tmp:
            for i, shard in enumerate(self.shards):
                shard.save(tmp / shard_name(i))
            write_shards_file(tmp, [len(s) for s in self.shards], self.kind, self.get_params(), self.dim, **about)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ShardedIndex:
        path = Path(path)
        meta = read_shards_file(path)
        return cls([VectorIndex.load(path / s["name"]) for s in meta["shards"]])


def write_shards_file(folder: Path, counts: Sequence[int], kind: str, params: dict, dim: int, **about) -> None:
    """``shards.json``: what ``read_shards_file`` checks the shard folders against, and ``about`` them."""
    shards = [{"name": shard_name(i), "count": int(n)} for i, n in enumerate(counts)]
    meta = {"format_version": _FORMAT_VERSION, "kind": kind, "params": params, "dim": dim, "count": sum(counts)}
    write_json(Path(folder) / SHARDS_FILE, meta | about | {"shards": shards})


def read_shards_file(path: Path) -> dict:
    """``shards.json``, checked: shard folders named in order (never a path from the file), each a saved index
    of the kind, dimension and count it says."""
    file = Path(path) / SHARDS_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"{path} is not a sharded index (no {SHARDS_FILE}); `tailorgen scale index --shards` writes one"
        )
    meta = read_json(file)
    if meta.get("format_version") != _FORMAT_VERSION:
        raise ValueError(f"{file}: format_version is {meta.get('format_version')}, expected {_FORMAT_VERSION}")
    shards = meta.get("shards") or []
    if not shards or sum(int(s["count"]) for s in shards) != meta["count"]:
        raise ValueError(f"{file}: the shards' counts do not add up to its count ({meta['count']})")
    for i, s in enumerate(shards):
        if s["name"] != shard_name(i):
            raise ValueError(f"{file}: shard {i} is named {s['name']!r}, expected {shard_name(i)!r}")
        shard_meta = Path(path) / s["name"] / "meta.json"
        if not shard_meta.is_file():
            raise ValueError(f"{file}: shard {s['name']!r} is not a saved index in {path}")
        got = read_json(shard_meta)
        if (got["count"], got["kind"], got["dim"]) != (s["count"], meta["kind"], meta["dim"]):
            raise ValueError(
                f"{file}: shard {s['name']} holds {got['count']} {got['kind']} vectors of dimension {got['dim']}, "
                f"not {s['count']} {meta['kind']} of {meta['dim']}"
            )
    return meta


def load_index(path: str | os.PathLike) -> VectorIndex | ShardedIndex:
    """A saved index, one (``meta.json``) or sharded (``shards.json``)."""
    path = Path(path)
    return ShardedIndex.load(path) if (path / SHARDS_FILE).is_file() else VectorIndex.load(path)

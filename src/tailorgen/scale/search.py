"""`tailorgen scale search`: a sharded index held on the cluster, one shard per worker, searched as one.

``ShardsOnCluster(client, folder)`` starts one Dask actor per shard of a ``ShardedIndex`` folder
(``tailorgen scale index --shards S``), spread over the workers; each loads its shard once and
keeps it in memory. ``search`` sends the queries to every actor at once and merges their top-k
(``retrieval.merge_top_k``): the results of ``ShardedIndex.search`` on one machine, with each
worker holding only its shard. Queries and results travel; vectors never do.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tailorgen.retrieval import VectorIndex, merge_top_k
from tailorgen.retrieval.index import Exclude, exclusion_sets
from tailorgen.retrieval.sharded import read_shards_file


class ShardServer:
    """On a worker (as a Dask actor): one saved shard, loaded once, searched on request."""

    def __init__(self, folder: str):
        self.index = VectorIndex.load(folder)

    def search(self, queries: np.ndarray, k: int, exclude: list[set[str]] | None):
        return self.index.search(queries, k, exclude=exclude)

    def vector(self, item_id: str) -> np.ndarray | None:
        return self.index.vector(item_id)


class ShardsOnCluster:
    """A ``ShardedIndex`` folder served by the cluster's workers; ``search`` as ``VectorIndex.search``.

    An actor lives in its worker's memory: if that worker dies, make a new ``ShardsOnCluster``."""

    def __init__(self, client, folder: str | os.PathLike):
        self.folder = Path(folder).resolve()  # workers may start in another folder
        self.meta = read_shards_file(self.folder)
        self.kind, self.dim, self.count = self.meta["kind"], int(self.meta["dim"]), int(self.meta["count"])
        self.names = [s["name"] for s in self.meta["shards"]]
        workers = sorted(client.scheduler_info()["workers"])
        if not workers:
            # ConnectionError (an OSError): the CLI prints it as one line, like a scheduler it cannot reach.
            raise ConnectionError("the cluster has no workers to hold the shards; start some, or wait for them")
        futures = [  # pure=False: a fresh actor each time, never one an earlier ShardsOnCluster started
            client.submit(
                ShardServer, str(self.folder / n), actor=True, workers=[workers[i % len(workers)]], pure=False
            )
            for i, n in enumerate(self.names)
        ]
        self.actors = client.gather(futures)

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"ShardsOnCluster(kind={self.kind!r}, shards={len(self.names)}, dim={self.dim}, count={self.count})"

    def vector(self, item_id: str) -> np.ndarray | None:
        """The vector stored under ``item_id``, from the worker whose shard holds it (None when none does)."""
        pending = [a.vector(item_id) for a in self.actors]  # every shard asked at once
        return next((v for v in (p.result() for p in pending) if v is not None), None)

    def search(self, queries: np.ndarray, k: int, exclude: Exclude = None) -> tuple[list[list[str]], np.ndarray]:
        """Every shard's ``k`` best, all asked at once, merged (``merge_top_k``); see ``VectorIndex.search``."""
        queries = np.asarray(queries, np.float32)
        sets = exclusion_sets(exclude, len(queries))
        pending = [a.search(queries, k, sets) for a in self.actors]
        return merge_top_k([p.result() for p in pending], k)

"""Where a job runs: an existing Dask cluster (its scheduler's address) or a LocalCluster on 127.0.0.1."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def dask_client(
    scheduler: str | None = None, workers: int = 2, threads_per_worker: int = 1, announce: bool = True
) -> Iterator:
    """A ``distributed.Client``: on the cluster at ``scheduler`` (``tcp://HOST:PORT``), else on a new
    ``LocalCluster`` of ``workers`` processes bound to 127.0.0.1, closed when the block ends.

    One thread a worker by default: torch in each worker process then uses one core (Dask sets
    OMP_NUM_THREADS=1 for the processes it starts), so N workers fill N cores without fighting.
    ``announce`` prints the dashboard's address to stderr (Dask's own progress view).
    """
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler, timeout="30s") as client:
            _announce(client, announce)
            yield client
        return
    if workers < 1 or threads_per_worker < 1:
        raise ValueError(f"workers and threads_per_worker must be >= 1, got {workers} and {threads_per_worker}")
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # a free port: two jobs at once do not collide
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        _announce(client, announce)
        yield client


def _announce(client, announce: bool) -> None:
    if announce:
        workers = len(client.scheduler_info().get("workers", {}))
        print(f"dask: {workers} workers; dashboard {client.dashboard_link}", file=sys.stderr)

"""Partitions, running a function over them on the cluster, and what a worker process keeps between tasks."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

# Retries of a task that raised (a full disk, a flaky read); a task whose worker died is
# rescheduled by Dask anyway, up to its `distributed.scheduler.allowed-failures` (3).
RETRIES = 2


@dataclass(frozen=True)
class Partition:
    """Rows ``start:stop`` of a table (items, or a job's list of requests), the ``index``-th part."""

    index: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"part-{self.index:05d}"

    def __len__(self) -> int:
        return self.stop - self.start


def partitions(n: int, size: int) -> list[Partition]:
    """``n`` rows cut into parts of ``size`` (the last one shorter)."""
    if size < 1:
        raise ValueError(f"partition size must be >= 1, got {size}")
    return [Partition(i, s, min(s + size, n)) for i, s in enumerate(range(0, n, size))]


def run_partitions(
    client,
    fn: Callable,
    parts: list[Partition],
    *args: Any,
    own: Callable[[Partition], tuple] | None = None,
    desc: str = "job",
    progress: bool = True,
) -> dict[int, Any]:
    """``fn(part, *own(part), *args)`` for every part, on the cluster; the results by part index.

    ``own(part)`` gives what only that part's task needs (its share of a list), so each task
    carries its share and not the whole list.

    A part whose task fails after its retries stops the job (the others are cancelled) with
    that task's error; the parts already written stay written, so a rerun skips them.
    """
    from distributed import as_completed

    run = uuid.uuid4().hex[:8]
    futures = {
        client.submit(
            fn, part, *(own(part) if own else ()), *args, key=f"{desc}-{part.name}-{run}", retries=RETRIES, pure=False
        ): part
        for part in parts
    }
    results = {}
    try:
        with tqdm(total=len(parts), desc=desc, unit="part", disable=not progress) as bar:
            for future in as_completed(futures):
                results[futures[future].index] = future.result()
                bar.update()
    except BaseException:
        client.cancel(list(futures))
        raise
    return results


# One worker process keeps what its tasks load (a dataset, an encoder, a generator) for the next.
_KEPT: dict[Hashable, Any] = {}


def kept(key: Hashable, make: Callable[[], Any]) -> Any:
    """``make()`` once per worker process and ``key``; later tasks of the process reuse it."""
    if key not in _KEPT:
        _KEPT[key] = make()
    return _KEPT[key]

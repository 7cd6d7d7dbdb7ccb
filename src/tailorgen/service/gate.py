"""Bounded concurrency and a bounded queue in front of the models.

A lane runs at most ``workers`` calls at once on its own threads (the event loop stays free to
answer health checks and queue-full refusals); at most ``queue`` more wait. A request beyond that
is refused at once with ``Busy``, which the app answers 503 with Retry-After: a client that backs
off gets served, and a burst never grows the server's memory without bound.
"""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial


class Busy(Exception):
    def __init__(self, lane: str, retry_after: int):
        super().__init__(f"the {lane} queue is full; retry in {retry_after} s")
        self.lane, self.retry_after = lane, retry_after


class Lane:
    def __init__(self, name: str, workers: int, queue: int):
        self.name, self.workers, self.capacity = name, workers, workers + queue
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix=f"tailorgen-{name}")
        self.admitted = 0  # running + waiting; only the event loop's thread touches it
        self.mean_seconds = 1.0  # a running mean of one call's time, for Retry-After

    async def run(self, fn, /, *args, **kwargs):
        if self.admitted >= self.capacity:
            raise Busy(self.name, self.retry_after())
        self.admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self.executor, partial(self._timed, fn, *args, **kwargs)
            )
        finally:
            self.admitted -= 1

    def _timed(self, fn, /, *args, **kwargs):
        """Run on a worker; keeps a running mean of the call's own time (not its wait in the queue)."""
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.mean_seconds = 0.8 * self.mean_seconds + 0.2 * (time.perf_counter() - t0)

    def retry_after(self) -> int:
        """Seconds until the calls admitted now are done, if they take their usual time: clients that
        wait that long find room, and do not all come back at once."""
        return max(1, math.ceil(self.mean_seconds * self.admitted / self.workers))

    def state(self) -> dict:
        return {"workers": self.workers, "capacity": self.capacity, "admitted": self.admitted}

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

"""The machine's fp32 matmul rate, timed in the run that compares against it (the benchmarks' yardstick)."""

from __future__ import annotations

import statistics
import time


def matmul_gflops(n: int = 1024, repeats: int = 20, library: str = "torch") -> float:
    """GFLOP/s of an n x n fp32 matmul now: the median of ``repeats`` after 3 warm-up calls.

    ``library``: "torch" (the BLAS torch calls, for torch workloads) or "numpy" (NumPy's BLAS,
    the closest stand-in for FAISS's, which links a BLAS of its own).
    """
    if library == "torch":
        import torch

        a, b = torch.randn(n, n), torch.randn(n, n)
    elif library == "numpy":
        import numpy as np

        a, b = np.random.default_rng(0).standard_normal((2, n, n), dtype=np.float32)
    else:
        raise ValueError(f"library must be 'torch' or 'numpy', got {library!r}")
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9

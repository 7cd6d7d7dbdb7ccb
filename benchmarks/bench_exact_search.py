"""Exact search of 1M items in batches of 1,000 queries, against the machine's matmul floor (issue #27).

    python benchmarks/bench_exact_search.py --data runs/demo/shop/embeddings/text-*.npz --out docs/exact_search_1m.json

The catalog's embeddings are grown to N vectors as in bench_retrieval.py (``replicated``: a random
catalog item plus noise, renormalized). Exact top-10 by inner product costs N x D x Q x 2 FLOPs,
so the floor of a batch is that over the fp32 matmul rate timed in the same run. Variants, each
run --repeats times in turn (round robin, so drift falls on all alike):

- ``wrapper``: ``tailorgen.retrieval.VectorIndex("flat")`` as shipped (normalization and id
  mapping included);
- ``faiss-db1024``: a bare ``faiss.IndexFlatIP`` with FAISS's defaults (database blocks of 1,024
  rows for its BLAS products);
- ``faiss-dbN``: the same index with larger blocks;
- ``faiss-threshold20-db16384``: BLAS forced from 20 queries (FAISS's threshold before 1.15).
Each variant's top-10 is checked against the bare default's before any is timed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_retrieval import replicated  # noqa: E402
from machine import matmul_gflops  # noqa: E402
from tailorgen.common.manifest import environment_versions, now_utc  # noqa: E402
from tailorgen.retrieval import VectorIndex  # noqa: E402


def faiss_search(index: faiss.Index, queries: np.ndarray, k: int, threshold: int, database_bs: int) -> np.ndarray:
    saved = faiss.cvar.distance_compute_blas_threshold, faiss.cvar.distance_compute_blas_database_bs
    faiss.cvar.distance_compute_blas_threshold, faiss.cvar.distance_compute_blas_database_bs = threshold, database_bs
    try:
        return index.search(queries, k)[1]
    finally:
        faiss.cvar.distance_compute_blas_threshold, faiss.cvar.distance_compute_blas_database_bs = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="an embeddings/*.npz cache of tailorgen")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--noise", type=float, default=1.5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    base, queries, data = replicated(args.data, args.n, args.queries, args.noise, args.seed)
    k, default_threshold = args.k, faiss.cvar.distance_compute_blas_threshold
    bare = faiss.IndexFlatIP(base.shape[1])
    bare.add(base)
    wrapper = VectorIndex("flat").add([str(i) for i in range(len(base))], base)
    variants = {"wrapper": lambda: np.array(wrapper.search(queries, k)[0], dtype=np.int64)}
    for bs in (1024, 4096, 16384, 65536):
        variants[f"faiss-db{bs}"] = lambda bs=bs: faiss_search(bare, queries, k, default_threshold, bs)
    variants["faiss-threshold20-db16384"] = lambda: faiss_search(bare, queries, k, 20, 16384)

    reference = variants["faiss-db1024"]()
    agreement = {name: float(np.mean(f()[:, :k] == reference)) for name, f in variants.items()}
    rates = [matmul_gflops(library="numpy")]
    seconds = {name: [] for name in variants}
    for r in range(args.repeats):
        for name, f in variants.items():
            t = time.perf_counter()
            f()
            seconds[name].append(time.perf_counter() - t)
        rates.append(matmul_gflops(library="numpy"))
        print(f"repeat {r + 1}/{args.repeats}: " + ", ".join(f"{n} {s[-1]:.2f} s" for n, s in seconds.items()),
              file=sys.stderr)  # fmt: skip
    rate = statistics.median(rates)
    floor_s = 2 * base.shape[0] * base.shape[1] * len(queries) / (rate * 1e9)
    result = {
        "what": "exact search, issue #27 (benchmarks/bench_exact_search.py)",
        "date": now_utc(),
        "machine": {"cpu": platform.processor() or platform.machine(), "faiss_threads": faiss.omp_get_max_threads()},
        "versions": environment_versions(),
        "data": data,
        "n": len(base),
        "queries": len(queries),
        "matmul_gflops": rates,
        "floor_ms_per_query": 1000 * floor_s / len(queries),
        "faiss_default_blas_threshold": default_threshold,
        "agreement_with_faiss_defaults": agreement,
        "variants": {
            name: {
                "ms_per_query_median": 1000 * statistics.median(s) / len(queries),
                "ms_per_query_min": 1000 * min(s) / len(queries),
                "ms_per_query_max": 1000 * max(s) / len(queries),
                "share_of_matmul_rate": floor_s / statistics.median(s),
                "seconds": s,
            }
            for name, s in seconds.items()
        },
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

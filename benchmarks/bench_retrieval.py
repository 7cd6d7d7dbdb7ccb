"""Build and query time, and recall@10, of tailorgen's FAISS indexes beside a NumPy brute force.

    python benchmarks/bench_retrieval.py --sizes 10k,100k,1M --json retrieval.json

For each catalog size N: SYNTHETIC clustered unit vectors (D=384, the MiniLM size; fixed seed),
1000 held-out queries from the same distribution, k=10. Methods, run side by side in one process
on the same data:

- ``numpy``: exact search as one would write it by hand (matrix product per block of queries,
  ``argpartition``, sort the top k). Its result is the ground truth for recall.
- ``flat``, ``ivf``, ``hnsw``: ``tailorgen.retrieval.VectorIndex`` (so the wrapper's id mapping
  and normalization are included in the times), each at its default and one wider search setting.
- ``ivf-sq8`` (only when asked for in --methods): scalar quantization with exact re-ranking, FAISS
  directly (``measure_ivf_sq8``), a lever measured before it is offered as a ``VectorIndex`` kind.

Build = everything until the index can answer (normalize copy, k-means training, adding, graph
construction). Query = one batched call for all queries; latency = median of single-query calls.
An HNSW build whose projected time exceeds --budget-s is stopped and reported as skipped.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from tailorgen.common.manifest import environment_versions, now_utc
from tailorgen.retrieval import VectorIndex

SIZES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000}


# ---------------------------------------------------------------------------- data


def synthetic(n: int, n_queries: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Clustered unit vectors: 100 topics, N/100 product clusters around them, items around those.

    Two levels, like a catalog (category -> product line -> item), so neighbourhoods have the
    coarse-and-fine structure of real embeddings rather than uniform noise, where every index
    degrades. Typical cosine: ~0.72 to a same-cluster item, ~0.44 same topic, ~0 otherwise.
    """
    rng = np.random.default_rng(seed)
    n_topics, n_clusters = 100, max(10, n // 100)
    scale = 1 / math.sqrt(dim)
    topics = rng.standard_normal((n_topics, dim), dtype=np.float32) * scale
    clusters = topics[rng.integers(0, n_topics, n_clusters)] + 0.8 * scale * rng.standard_normal(
        (n_clusters, dim), dtype=np.float32
    )
    out = np.empty((n + n_queries, dim), np.float32)
    for s in range(0, len(out), 100_000):  # in chunks: no second 1.5 GB temporary at 1M
        e = min(s + 100_000, len(out))
        x = clusters[rng.integers(0, n_clusters, e - s)]
        x += 0.8 * scale * rng.standard_normal((e - s, dim), dtype=np.float32)
        out[s:e] = x / np.linalg.norm(x, axis=1, keepdims=True)
    desc = {"kind": "synthetic", "topics": n_topics, "clusters": n_clusters, "dim": dim, "seed": seed}
    return out[:n], out[n:], desc


def replicated(npz: Path, n: int, n_queries: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """A real catalog's embeddings (an ``embeddings/*.npz`` cache of tailorgen) grown to ``n``:
    each vector a random catalog item plus Gaussian noise of total norm ``noise``, renormalized,
    like variants of the same products; queries are drawn the same way. Unlike ``synthetic``, the
    coarse structure (categories, colours, brands) is the real one."""
    with np.load(npz, allow_pickle=False) as z:
        catalog = z["vectors"].astype(np.float32)
    catalog /= np.linalg.norm(catalog, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    dim = catalog.shape[1]
    out = np.empty((n + n_queries, dim), np.float32)
    for s in range(0, len(out), 100_000):
        e = min(s + 100_000, len(out))
        x = catalog[rng.integers(0, len(catalog), e - s)]
        x += noise / np.sqrt(dim) * rng.standard_normal((e - s, dim), dtype=np.float32)
        out[s:e] = x / np.linalg.norm(x, axis=1, keepdims=True)
    desc = {"kind": "replicated", "source": str(npz), "catalog": len(catalog), "noise": noise, "dim": dim, "seed": seed}
    return out[:n], out[n:], desc


# ---------------------------------------------------------------------------- numpy baseline


def numpy_search(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k by inner product: blocks of queries so the score matrix stays ~256 MB."""
    block = max(1, (1 << 26) // len(base))
    out = np.empty((len(queries), k), np.int64)
    for s in range(0, len(queries), block):
        scores = queries[s : s + block] @ base.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out[s : s + block] = np.take_along_axis(top, order, axis=1)
    return out


# ---------------------------------------------------------------------------- measuring


def recall(found: list[list[int]] | np.ndarray, truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth.tolist())]))


def latency_ms(search_one, queries: np.ndarray, n: int) -> float:
    times = []
    for i in range(min(n, len(queries))):
        t = time.perf_counter()
        search_one(queries[i : i + 1])
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def build_hnsw_with_budget(ids: list[str], base: np.ndarray, params: dict, budget_s: float):
    """Add in chunks and stop early when the projected total exceeds the budget (graph build is
    superlinear, so the projection from the first chunks is a lower bound, times 1.2 for safety)."""
    index = VectorIndex("hnsw", **params)
    n = len(base)
    chunk = max(10_000, n // 20)
    t0 = time.perf_counter()
    for s in range(0, n, chunk):
        index.add(ids[s : s + chunk], base[s : s + chunk])
        elapsed = time.perf_counter() - t0
        projected = 1.2 * elapsed * n / min(s + chunk, n)
        if s + chunk < n and projected > budget_s:
            return None, {"added": s + chunk, "elapsed_s": round(elapsed, 1), "projected_s": round(projected)}
    return index, time.perf_counter() - t0


def run_size(name: str, n: int, args) -> list[dict]:
    k, rows = args.k, []
    print(f"\n[{name}] generating {n:,} vectors ({args.data or 'synthetic'}) + {args.queries} queries", file=sys.stderr)
    if args.data:
        base, queries, data_desc = replicated(args.data, n, args.queries, args.noise, args.seed)
    else:
        base, queries, data_desc = synthetic(n, args.queries, args.dim, args.seed)
    ids = [str(i) for i in range(n)]

    def row(method, params, build_s, query_s, lat, rec, note=""):
        r = {
            "N": n,
            "method": method,
            "params": params,
            "build_s": build_s,
            "query_s": query_s,
            "qps": None if query_s is None else args.queries / query_s,
            "latency_ms_p50": lat,
            f"recall@{k}": rec,
            "note": note,
            "data": data_desc,
        }
        rows.append(r)
        print(
            f"[{name}] {method:6} {json.dumps(params):48} build {_fmt(build_s)} s  query {_fmt(query_s)} s  "
            f"recall {_fmt(rec, 3)} {note}",
            file=sys.stderr,
        )

    # NumPy baseline = ground truth. "Build" for numpy is nothing: the matrix is the index.
    t = time.perf_counter()
    truth = numpy_search(base, queries, k)
    np_query = time.perf_counter() - t
    np_lat = latency_ms(lambda q: numpy_search(base, q, k), queries, args.latency_queries)
    row("numpy", {}, 0.0, np_query, np_lat, 1.0, "exact; ground truth")

    def measure(index: VectorIndex, method: str, build_s: float, settings: list[dict]):
        for setting in settings:
            if setting:
                index.set_params(**setting)
            t = time.perf_counter()
            found, _ = index.search(queries, k)
            q_s = time.perf_counter() - t
            lat = latency_ms(lambda q: index.search(q, k), queries, args.latency_queries)
            labels = [[int(i) for i in r] for r in found]
            row(method, index.get_params(), build_s, q_s, lat, recall(labels, truth, k))

    methods = args.methods.split(",")
    if "flat" in methods:
        t = time.perf_counter()
        flat = VectorIndex("flat").add(ids, base)
        measure(flat, "flat", time.perf_counter() - t, [{}])
        del flat
        gc.collect()

    if "ivf" in methods:
        t = time.perf_counter()
        ivf = VectorIndex("ivf").add(ids, base)
        ivf_build = time.perf_counter() - t
        measure(ivf, "ivf", ivf_build, [{}, {"nprobe": 64}])
        del ivf
        gc.collect()
    if "ivf-sq8" in methods:
        measure_ivf_sq8(base, queries, truth, args, row)
        gc.collect()
    if "hnsw" not in methods:
        return _speedups(rows, np_query, np_lat)

    hnsw_params = {"m": args.hnsw_m, "ef_construction": args.hnsw_ef_construction}
    hnsw, built = build_hnsw_with_budget(ids, base, hnsw_params, args.budget_s)
    if hnsw is None:
        note = (
            f"skipped: {built['added']:,} vectors took {built['elapsed_s']} s, projected "
            f"{built['projected_s'] / 60:.0f} min > budget {args.budget_s / 60:.0f} min"
        )
        row("hnsw", hnsw_params, None, None, None, None, note)
    else:
        measure(hnsw, "hnsw", built, [{}, {"ef_search": 128}])
        del hnsw
    gc.collect()

    return _speedups(rows, np_query, np_lat)


def measure_ivf_sq8(base: np.ndarray, queries: np.ndarray, truth: np.ndarray, args, row) -> None:
    """Scalar quantization with exact re-ranking, as a lever (FAISS directly; no ``VectorIndex`` kind
    yet): IVF lists of 8-bit codes (a quarter of the float vectors' memory on the scanned path), the
    top ``k_factor * k`` re-scored on the float vectors (``IndexRefineFlat``). nlist and the k-means
    sample as ``VectorIndex("ivf")`` chooses them (4 sqrt(N), 50 per list)."""
    n, k = len(base), args.k
    nlist = int(min(4 * math.sqrt(n), n // 39))
    t = time.perf_counter()
    index = faiss.index_factory(base.shape[1], f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(args.seed).choice(n, size=min(n, 50 * nlist), replace=False)
    index.train(base[np.sort(sample)])
    refined = faiss.IndexRefineFlat(index)
    refined.add(base)
    build = time.perf_counter() - t
    for nprobe, k_factor in ((16, 1), (16, 4), (64, 4)):
        faiss.extract_index_ivf(index).nprobe = nprobe
        refined.k_factor = k_factor
        t = time.perf_counter()
        _, found = refined.search(queries, k)
        q_s = time.perf_counter() - t
        lat = latency_ms(lambda q: refined.search(q, k), queries, args.latency_queries)
        params = {"nlist": nlist, "nprobe": nprobe, "k_factor": k_factor}
        row("ivf-sq8", params, build, q_s, lat, recall(found.tolist(), truth, k), "re-ranked on floats")


def _speedups(rows: list[dict], np_query: float, np_lat: float) -> list[dict]:
    for r in rows:
        if r["query_s"]:
            r["query_speedup_vs_numpy"] = np_query / r["query_s"]
            r["latency_speedup_vs_numpy"] = np_lat / r["latency_ms_p50"]
    return rows


# ---------------------------------------------------------------------------- reporting


def _fmt(x, digits=2) -> str:
    if x is None:
        return "—"
    if isinstance(x, float) and x >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}" if isinstance(x, float) else f"{x:,}"


def machine() -> dict:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(mem_gib, 1),
        "arch": platform.machine(),
        "faiss_omp_threads": faiss.omp_get_max_threads(),
    }


def markdown(rows: list[dict], k: int) -> str:
    lines = [
        f"| N | method | parameters | build s | query s (1000 q) | QPS | latency ms (1 q) | recall@{k} "
        "| query speed vs numpy | latency vs numpy |",
        "|--:|:--|:--|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        p = {k_: v for k_, v in r["params"].items() if k_ not in ("normalize", "seed", "train_size")}
        params = ", ".join(f"{a}={b}" for a, b in p.items()) or "—"
        speed = f"{r['query_speedup_vs_numpy']:.1f}x" if r.get("query_speedup_vs_numpy") else "—"
        lat_speed = f"{r['latency_speedup_vs_numpy']:.1f}x" if r.get("latency_speedup_vs_numpy") else "—"
        method = r["method"] + (f" ({r['note']})" if r["note"] and r["method"] == "hnsw" else "")
        lines.append(
            f"| {r['N']:,} | {method} | {params} | {_fmt(r['build_s'])} | {_fmt(r['query_s'])} | "
            f"{_fmt(r['qps'], 0)} | {_fmt(r['latency_ms_p50'])} | {_fmt(r[f'recall@{k}'], 3)} | {speed} | {lat_speed} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10k,100k,1M", help=f"comma-separated, from {', '.join(SIZES)}")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--latency-queries", type=int, default=100, help="single-query calls timed per method")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hnsw-m", type=int, default=16)
    ap.add_argument("--hnsw-ef-construction", type=int, default=40)
    ap.add_argument("--budget-s", type=float, default=600, help="skip an HNSW build projected to take longer")
    ap.add_argument("--json", type=Path, default=None, help="also write all rows and the machine here")
    ap.add_argument("--data", type=Path, default=None,
                    help="an embeddings/*.npz cache to replicate with noise instead of synthetic vectors")  # fmt: skip
    ap.add_argument("--noise", type=float, default=0.5, help="--data: the noise's norm before renormalizing")
    ap.add_argument("--methods", default="flat,ivf,hnsw", help="which indexes to build beside NumPy")
    args = ap.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",")]
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        ap.error(f"unknown size(s) {bad}; choose from {', '.join(SIZES)}")

    started = time.perf_counter()
    rows = []
    for s in sizes:
        rows += run_size(s, SIZES[s], args)
    info = {
        "command": "python " + " ".join(sys.argv),
        "date": now_utc(),
        "machine": machine(),
        "versions": environment_versions(),
        "data": f"{args.data} replicated with noise {args.noise} (replicated())"
        if args.data
        else "SYNTHETIC clustered unit vectors (see synthetic() in this file); not real embeddings",
        "k": args.k,
        "queries": args.queries,
        "wall_s": round(time.perf_counter() - started, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }
    m = info["machine"]
    print(f"\nRetrieval benchmark on {info['data']} (seed={args.seed}), {args.queries} queries, k={args.k}")
    print(
        f"Machine: {m['cpu']}, nproc={m['nproc']}, {m['memory_gib']} GiB RAM, faiss {faiss.__version__} "
        f"({m['faiss_omp_threads']} OpenMP threads), numpy {np.__version__}"
    )
    print(f"Command: {info['command']}  (wall {info['wall_s']} s, peak RSS {info['peak_rss_gib']} GiB)\n")
    print(markdown(rows, args.k))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**info, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Throughput and memory of `tailorgen scale encode` and `scale index` with 1 and 2 local workers.

A catalog of N items is made by replicating a shop's items (ids `ID~K`, titles with the copy
number, the same image files linked), so the work per item is the real work on real texts and
images; only the count grows. For each worker count, a fresh cache: embed by text and by image
(`encode_on_dask`), then build a flat and an IVF index (`index_on_dask`); the wall time, the
per-task compute times from Dask's task stream, the peak RSS of each worker process and of this
one, and the bytes of each part file (what a worker sends to the next step).

    python benchmarks/bench_scale.py --shop runs/demo/shop --items 100000 --workers 1,2 \
        --out docs/scale_bench.json

``--modalities image --index-kinds ''`` embeds only the images and builds no index (a million
images take a core about half an hour). ``--shards S`` also saves each index in S shards merged
by the workers and times ``scale search``'s way of searching them (one shard per worker, held by
a Dask actor, the top-k merged) against one process searching the whole index, on the same queries.

With ``--seed-vectors NOISE`` nothing is embedded: the text parts are written from the shop's own
MiniLM vectors, each row a random catalog item's plus Gaussian noise of norm NOISE, renormalized
(``bench_retrieval.replicated``), and only the index is built: the index stage at a million items
without the hours that embedding a million texts takes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def replicate(shop: Path, n_items: int, out: Path) -> Path:
    """A dataset of ``n_items`` rows: the shop's items copied with new ids, image files hard-linked."""
    from tailorgen.data import Dataset, DatasetWriter

    if (out / "manifest.json").exists() and Dataset(out).n_items == n_items:
        return out
    ds = Dataset(shop)
    items = ds.items
    copies = -(-n_items // len(items))
    parts = []
    for k in range(copies):
        ids = items.column("item_id") if k == 0 else pc.binary_join_element_wise(items.column("item_id"), f"~{k}", "")
        title = items.column("title") if k == 0 else pc.binary_join_element_wise(items.column("title"), f" ({k})", "")
        parts.append(
            items.set_column(0, "item_id", ids).set_column(items.schema.get_field_index("title"), "title", title)
        )
    table = pa.concat_tables(parts).slice(0, n_items)
    with DatasetWriter(out, source={"format": "replicated", "shop": str(shop), "copies": copies}, overwrite=True) as w:
        images = w.subdir("images")
        for f in (shop / "images").rglob("*"):
            if f.is_file():
                target = images / f.relative_to(shop / "images")
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(f, target)
        w.set_tables(items=table, interactions=ds.interactions)
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not getrusage's ru_maxrss: Linux keeps that across
    exec, so a worker started from a 4 GB client would report the client's peak as its own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed_text_parts(shop: Path, dataset: Path, cache: Path, partition: int, noise: float) -> None:
    """The text parts (and the joined cache) of ``dataset`` from the shop's vectors plus noise, as if embedded."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_retrieval import replicated
    from tailorgen.data import Dataset
    from tailorgen.encoders import encode_catalog
    from tailorgen.encoders.catalog import catalog_cache_path, write_embeddings
    from tailorgen.encoders.factory import make_encoder
    from tailorgen.scale import partitions

    encoder = make_encoder("text", None)
    source = catalog_cache_path(Dataset(shop), encoder)
    encode_catalog(Dataset(shop), encoder, progress=False)
    ds = Dataset(dataset)
    vectors, _, _ = replicated(source, ds.n_items, 0, noise, seed=0)
    ids = ds.items.column("item_id").to_pylist()
    target = catalog_cache_path(ds, encoder, cache)
    parts_dir = target.with_name(target.stem + ".parts")
    for part in partitions(len(ids), partition):
        write_embeddings(
            parts_dir / f"{part.name}.npz",
            ids[part.start : part.stop],
            vectors[part.start : part.stop],
            encoder.fingerprint,
        )
    write_embeddings(target, ids, vectors, encoder.fingerprint)


def search_speed(client, single: Path, sharded: Path, queries: np.ndarray, k: int = 10, batch: int = 100) -> dict:
    """Milliseconds a query, in batches of ``batch``: one process holding the whole index, and the shards
    held on the workers (``ShardsOnCluster``); and whether their answers agree."""
    from tailorgen.retrieval import VectorIndex
    from tailorgen.scale.search import ShardsOnCluster

    out = {}
    for name, index in (
        ("one_process", VectorIndex.load(single)),
        ("shards_on_workers", ShardsOnCluster(client, sharded)),
    ):
        index.search(queries[:batch], k)  # warm
        t = time.perf_counter()
        found = [index.search(queries[s : s + batch], k)[0] for s in range(0, len(queries), batch)]
        out[name] = {"ms_per_query": 1000 * (time.perf_counter() - t) / len(queries), "found": found}
    same = np.mean([a == b for fa, fb in zip(out["one_process"].pop("found"), out["shards_on_workers"].pop("found"))
                    for a, b in zip(fa, fb)])  # fmt: skip
    return out | {"queries": len(queries), "batch": batch, "k": k, "same_results_share": float(same)}


def run(dataset: Path, workers: int, partition: int, cache: Path, index_root: Path, seeded: bool = False,
        modalities: tuple[str, ...] = ("text", "image"), kinds: tuple[str, ...] = ("flat", "ivf"),
        shards: int = 1) -> dict:  # fmt: skip
    from distributed import get_task_stream

    from tailorgen.encoders.catalog import read_embeddings
    from tailorgen.scale import dask_client, encode_on_dask, index_on_dask

    if not seeded:
        shutil.rmtree(cache, ignore_errors=True)
    result = {"workers": workers}
    with dask_client(workers=workers) as client:
        for modality in () if seeded else modalities:
            with get_task_stream(client) as stream:
                t = time.perf_counter()
                parts = encode_on_dask(client, dataset, modality, None, cache, partition, progress=True)
                wall = time.perf_counter() - t
            tasks = [
                sum(s["stop"] - s["start"] for s in task["startstops"] if s["action"] == "compute")
                for task in stream.data
            ]
            sizes = [parts.part_file(p).stat().st_size for p in parts.parts]
            result[f"encode_{modality}"] = {
                "items": parts.total, "seconds": wall, "items_per_second": parts.total / wall,
                "partitions": len(parts.parts), "task_seconds_median": float(np.median(tasks)),
                "part_file_bytes_median": int(np.median(sizes)), "joined_file_bytes": parts.cache_file.stat().st_size,
            }  # fmt: skip
        for kind in kinds:
            params = {"nprobe": 16} if kind == "ivf" else {}
            out = index_root / f"{kind}-{workers}"
            t = time.perf_counter()
            index = index_on_dask(client, dataset, out, "text", None, kind, params, cache, partition, overwrite=True)
            result[f"index_text_{kind}"] = {
                "seconds": time.perf_counter() - t,
                "count": len(index),
                **index.get_params(),
            }
            if shards > 1:
                t = time.perf_counter()
                index_on_dask(client, dataset, out.with_name(out.name + "-shards"), "text", None, kind, params, cache,
                              partition, overwrite=True, shards=shards)  # fmt: skip
                result[f"index_text_{kind}"]["sharded_seconds"] = time.perf_counter() - t
                rows = np.random.default_rng(1).choice(len(index), 2000, replace=False)
                queries = read_embeddings(next(cache.glob("text-*.npz")))[1][np.sort(rows)]  # catalog rows as queries
                del index
                search = search_speed(client, out, out.with_name(out.name + "-shards"), queries)
                result[f"index_text_{kind}"]["search"] = search
        result["worker_peak_rss_mb"] = sorted(client.run(peak_rss_mb).values())
    result["client_peak_rss_mb"] = peak_rss_mb()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shop", type=Path, required=True)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--partition", type=int, default=20_000)
    ap.add_argument("--work", type=Path, default=Path("runs/bench-scale"))
    ap.add_argument("--seed-vectors", type=float, default=None, metavar="NOISE",
                    help="index only, on the shop's text vectors replicated with this noise (see above)")  # fmt: skip
    ap.add_argument("--modalities", default="text,image", help="what to embed (comma-separated; ignored when seeded)")
    ap.add_argument("--index-kinds", default="flat,ivf", help="indexes of the text vectors to build ('': none)")
    ap.add_argument("--shards", type=int, default=1, help="also save each index in this many shards and time search")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    modalities, kinds = (
        tuple(filter(None, args.modalities.split(","))),
        tuple(filter(None, args.index_kinds.split(","))),
    )
    dataset = replicate(args.shop, args.items, args.work / f"catalog-{args.items}")
    seeded = args.seed_vectors is not None
    if seeded:
        seed_text_parts(args.shop, dataset, args.work / "cache-seeded", args.partition, args.seed_vectors)
    runs = [
        run(dataset, int(w), args.partition, args.work / ("cache-seeded" if seeded else f"cache-{w}"),
            args.work / "indexes", seeded, modalities, kinds, args.shards)
        for w in args.workers.split(",")
    ]  # fmt: skip
    record = {
        "command": "python benchmarks/bench_scale.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "items": args.items,
        "runs": runs,
    }
    print(json.dumps(record, indent=2))
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()

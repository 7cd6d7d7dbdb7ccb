"""Throughput of `tailorgen scale import` with 1 and 2 local workers, beside the single-machine import.

An Amazon Reviews 2023 dump is written from a shop: each item a metadata row (title, description,
category path, price, store, an image URL), each interaction a review, the whole replicated to
``--reviews`` reviews (items copied with new ids as the reviews need them) and cut into
``--shards`` files of each kind. Then, on the same files: ``tailorgen data import`` on the
shards concatenated (one process), and ``import_on_dask`` with each worker count. Wall time,
rows per second, the peak RSS of each worker and of this process, and a check that every
dataset equals the single-machine one.

    python benchmarks/bench_scale_import.py --shop runs/demo/shop --reviews 1000000 --shards 8 \
        --out docs/scale_import.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_scale import peak_rss_mb  # noqa: E402

SHOP_EPOCH = 1_600_000_000  # the shop counts seconds from 0; the dump's dates must be plausible (2020 on)


def write_dump(shop: Path, n_reviews: int, shards: int, out: Path) -> dict[str, list[Path]]:
    """The shop as an Amazon 2023 dump of ``n_reviews`` reviews in ``shards`` files of each kind."""
    from tailorgen.data import Dataset

    ds = Dataset(shop)
    items = ds.items.select(["item_id", "title", "description", "category", "price"]).to_pylist()
    reviews = ds.interactions.select(["user_id", "item_id", "timestamp", "rating"]).to_pylist()
    copies = -(-n_reviews // len(reviews))
    rng = np.random.default_rng(0)
    meta, rows = [], []
    for k in range(copies):
        suffix = "" if k == 0 else f"~{k}"
        meta += [
            {"parent_asin": it["item_id"] + suffix, "title": it["title"], "description": [it["description"] or ""],
             "categories": ["Shop", it["category"]], "price": it["price"], "store": "Shop",
             "images": [{"variant": "MAIN", "large": f"https://img.example/{it['item_id']}.png"}]}
            for it in items
        ]  # fmt: skip
        rows += [
            {"user_id": r["user_id"] + suffix, "parent_asin": r["item_id"] + suffix, "rating": float(r["rating"] or 4),
             "timestamp": (SHOP_EPOCH + int(r["timestamp"])) * 1000, "title": "Review",
             "text": "Fits well." * int(rng.integers(1, 8))}
            for r in reviews
        ]  # fmt: skip
    rows = rows[:n_reviews]
    paths: dict[str, list[Path]] = {}
    out.mkdir(parents=True, exist_ok=True)
    for name, data in (("meta", meta), ("reviews", rows)):
        paths[name] = []
        for s in range(shards):
            path = out / f"{name}-{s:03d}.jsonl"
            with path.open("w") as f:
                for row in data[s * len(data) // shards : (s + 1) * len(data) // shards]:
                    f.write(json.dumps(row) + "\n")
            paths[name].append(path)
        with (out / f"{name}-all.jsonl").open("wb") as f:
            for path in paths[name]:
                f.write(path.read_bytes())
    return paths


def reset_peak_rss() -> float:
    """Reset this process's peak RSS (Linux: 5 into clear_refs) to its current RSS, and return that, so that
    each run's peak is its own and not the one-process import's before it."""
    Path("/proc/self/clear_refs").write_text("5")
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("VmRSS:")).split()[1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shop", type=Path, required=True)
    ap.add_argument("--reviews", type=int, default=1_000_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--work", type=Path, default=Path("runs/bench-scale-import"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from tailorgen.data import Dataset
    from tailorgen.data.adapters import import_dataset
    from tailorgen.scale import dask_client, import_on_dask

    shutil.rmtree(args.work, ignore_errors=True)
    paths = write_dump(args.shop, args.reviews, args.shards, args.work / "dump")
    sizes = {k: sum(p.stat().st_size for p in v) for k, v in paths.items()}
    t = time.perf_counter()
    single = Dataset(import_dataset("amazon2023", [args.work / "dump" / f"{k}-all.jsonl" for k in ("reviews", "meta")],
                                    args.work / "single"))  # fmt: skip
    result = {
        "what": "scale import, issue #28 (benchmarks/bench_scale_import.py)",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpu": platform.processor() or platform.machine()},
        "reviews": single.interactions.num_rows,
        "items": single.n_items,
        "shards": args.shards,
        "bytes": sizes,
        "single_machine_seconds": time.perf_counter() - t,
        "single_machine_peak_rss_mb": peak_rss_mb(),
        "dask": [],
    }
    print(f"single machine: {result['single_machine_seconds']:.1f} s", file=sys.stderr)
    for workers in map(int, args.workers.split(",")):
        client_start_mb = reset_peak_rss()
        with dask_client(workers=workers) as client:
            t = time.perf_counter()
            out = import_on_dask(client, "amazon2023", paths["reviews"], paths["meta"], args.work / f"dask-{workers}")
            seconds = time.perf_counter() - t
            worker_rss = sorted(client.run(peak_rss_mb).values())
        ds = Dataset(out)
        equal = ds.items.equals(single.items) and ds.interactions.equals(single.interactions)
        result["dask"].append({
            "workers": workers, "seconds": seconds, "reviews_per_second": ds.interactions.num_rows / seconds,
            "worker_peak_rss_mb": worker_rss, "equal_to_single_machine": equal,
            "client_rss_at_start_mb": client_start_mb, "client_peak_rss_mb": peak_rss_mb(),
        })  # fmt: skip
        print(f"{workers} worker(s): {seconds:.1f} s, equal {equal}", file=sys.stderr)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

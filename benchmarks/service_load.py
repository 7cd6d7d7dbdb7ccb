"""Load on `tailorgen serve`: N concurrent clients on 127.0.0.1 for a bounded time.

Starts the server as its own process over DATASET, waits until /ready, then runs N asyncio httpx
clients, each sending requests back to back, drawn from a fixed mix of endpoints (mostly the
cheap answers, a few image generations). Reports per endpoint the count, p50/p95/p99 latency of
the answered requests, the 503s (a full queue, documented, with Retry-After) and every other
error, and writes the record as JSON.

    python benchmarks/service_load.py runs/demo/shop --clients 50 --seconds 60 --out runs/load.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np

from tailorgen.data import Dataset

# (endpoint, weight): what a shop page or a researcher's script asks most.
MIX = [("recommend", 35), ("search", 20), ("rate", 15), ("explain", 8), ("user", 12), ("personalize", 5),
       ("imagine", 5)]  # fmt: skip


def request_for(kind: str, user: str, item: str, query: str) -> tuple[str, str, dict]:
    if kind == "recommend":
        return "GET", "/api/recommend", {"params": {"user": user, "k": 10}}
    if kind == "search":
        return "GET", "/api/search", {"params": {"user": user, "query": query, "k": 10}}
    if kind in ("rate", "explain"):
        return "GET", f"/api/{kind}", {"params": {"user": user, "item": item}}
    if kind == "user":
        return "GET", f"/api/users/{user}", {}
    if kind == "personalize":
        return "POST", "/api/personalize", {"json": {"user": user, "item": item, "n": 1}}
    return "POST", "/api/imagine", {"json": {"user": user, "keywords": "dress", "n": 1}}


async def client(url: str, users, items, queries, until: float, seed: int, log: list) -> None:
    rng = random.Random(seed)
    kinds, weights = zip(*MIX, strict=True)
    async with httpx.AsyncClient(base_url=url, timeout=120) as c:
        while time.monotonic() < until:
            kind = rng.choices(kinds, weights)[0]
            user = rng.choice(users)
            method, path, kwargs = request_for(kind, user, rng.choice(items), queries.get(user, "dress"))
            t0 = time.perf_counter()
            try:
                r = await c.request(method, path, **kwargs)
                status = r.status_code
            except httpx.HTTPError as e:
                status = type(e).__name__
            log.append((kind, status, time.perf_counter() - t0, time.monotonic() <= until))
            if status == 503:
                await asyncio.sleep(float(r.headers.get("retry-after", 1)))


def summarize(log: list, seconds: float) -> dict:
    """Per endpoint: every request started in the window (latency percentiles of those answered 200);
    throughput counts the answers that came back inside the window."""
    by_kind = defaultdict(list)
    for kind, status, latency, in_window in log:
        by_kind[kind].append((status, latency, in_window))
    out = {}
    for kind, rows in sorted(by_kind.items()):
        ok = np.array([lat for s, lat, _ in rows if s == 200])
        ok_in_window = sum(s == 200 and w for s, _, w in rows)
        q = np.percentile(ok, [50, 95, 99]) * 1000 if len(ok) else [float("nan")] * 3
        out[kind] = {"requests": len(rows), "ok": len(ok), "503": sum(s == 503 for s, _, _ in rows),
                     "other_errors": sum(s not in (200, 503) for s, _, _ in rows),
                     "p50_ms": round(q[0], 1), "p95_ms": round(q[1], 1), "p99_ms": round(q[2], 1),
                     "ok_per_s": round(ok_in_window / seconds, 2)}  # fmt: skip
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--serve-args", default="", help="Extra arguments for tailorgen serve, e.g. '--gnr DIR'.")
    args = ap.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    exe = str(Path(sys.executable).parent / "tailorgen")
    cmd = [exe, "serve", str(args.dataset), "--port", str(port), "--outputs", "runs/load-outputs",
           *args.serve_args.split()]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        t0 = time.monotonic()
        while True:
            try:
                if httpx.get(url + "/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() - t0 > 600:
                raise SystemExit("the server did not come up")
            time.sleep(0.5)
        load_s = time.monotonic() - t0
        ds = Dataset(args.dataset)
        users = sorted(ds.user_histories())
        items = ds.items.column("item_id").to_pylist()
        queries = {q["user_id"]: q["query"] for q in ds.queries.to_pylist()} if ds.queries is not None else {}
        log: list = []
        until = time.monotonic() + args.seconds
        start = time.monotonic()

        async def run_all():
            await asyncio.gather(*(client(url, users, items, queries, until, k, log) for k in range(args.clients)))

        asyncio.run(run_all())
        drained = time.monotonic() - start
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    record = {
        "command": " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "clients": args.clients,
        "seconds": args.seconds,
        "drained_after_s": round(drained, 1),  # the requests in flight at the end of the window come back
        "server_ready_s": round(load_s, 1),
        "endpoints": summarize(log, args.seconds),
    }
    print(json.dumps(record, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()

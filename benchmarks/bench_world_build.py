"""Time and peak memory of `tailorgen world build` at a given size.

    python benchmarks/bench_world_build.py --items 100000 --users 10000 --out /tmp/shop100k

Prints one JSON line: sizes, wall seconds, peak resident memory (MiB), bytes on disk.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import time

from tailorgen.world import WorldConfig, build_world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    t0 = time.perf_counter()
    summary = build_world(
        WorldConfig(n_items=args.items, n_users=args.users, seed=args.seed), args.out, overwrite=True, progress=False
    )
    seconds = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    disk = subprocess.run(["du", "-sb", args.out], capture_output=True, text=True).stdout.split()[0]
    print(
        json.dumps(
            {
                **summary,
                "wall_seconds": round(seconds, 1),
                "peak_rss_mib": round(peak_mib),
                "disk_bytes": int(disk),
                "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
            }
        )
    )


if __name__ == "__main__":
    main()

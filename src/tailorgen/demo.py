"""The demo behind `tailorgen demo` (the README's main command).

It sits downstream of every stage and only orchestrates them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tailorgen.common import write_json
from tailorgen.common.manifest import write_run_manifest
from tailorgen.data.stats import dataset_stats, plot_history_lengths
from tailorgen.world import WorldConfig
from tailorgen.world.build import ensure_shop
from tailorgen.world.preview import sample_grid


def run_demo(out: Path, seed: int = 0, n_items: int = 2000, n_users: int = 300) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cfg = WorldConfig(n_items=n_items, n_users=n_users, seed=seed)
    shop = ensure_shop(out / "shop", cfg)
    sample_grid(shop, out / "samples.png")
    plot_history_lengths(shop, out / "history_lengths.png")
    summary = {
        "shop": str(shop),
        "stats": dataset_stats(shop),
        "samples": str(out / "samples.png"),
        "history_plot": str(out / "history_lengths.png"),
    }
    write_json(out / "summary.json", summary)
    write_run_manifest(
        out,
        "tailorgen demo",
        dataclasses.asdict(cfg),
        seed,
        {"shop": shop / "manifest.json", "samples": out / "samples.png", "summary": out / "summary.json"},
    )
    return summary

"""`tailorgen demo`: the README's main command, the whole job on the embedded default."""

from __future__ import annotations

from pathlib import Path

import click

from tailorgen.cli import main


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="runs/demo",
    show_default=True,
    help="Run directory; everything the demo writes goes here.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--items", "n_items", type=int, default=2000, show_default=True)
@click.option("--users", "n_users", type=int, default=300, show_default=True)
def demo(out, seed, n_items, n_users) -> None:
    """Run the demo on the embedded default: build the demo shop and describe it.

    Writes OUT/shop (the dataset), OUT/samples.png (a grid of items per category),
    OUT/summary.json (counts, history-length and rating statistics) and OUT/manifest.json.
    An existing OUT/shop built with the same settings is reused.
    """
    from tailorgen.data.stats import format_stats
    from tailorgen.demo import run_demo

    summary = run_demo(Path(out), seed=seed, n_items=n_items, n_users=n_users)
    click.echo(format_stats(summary["stats"]))
    click.echo(f"\nwrote {out}/: shop/, samples.png, history_lengths.png, summary.json, manifest.json")

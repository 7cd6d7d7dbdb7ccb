"""`tailorgen demo`: the README's main command, the whole job on the embedded default."""

from __future__ import annotations

from pathlib import Path

import click

from tailorgen.cli import main
from tailorgen.cli.generate import DEFAULT_STEPS


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
@click.option("--demo-users", type=int, default=6, show_default=True, help="Users to personalize for (0: none).")
@click.option("--images", "images_per_user", type=int, default=4, show_default=True, help="Images per user.")
@click.option("--steps", type=int, default=DEFAULT_STEPS, show_default=True, help="Denoising steps.")
@click.option("--generator", type=click.Path(file_okay=False), default=None,
              help="Generator pipeline folder (default: the shipped one).")  # fmt: skip
@click.option("--unimp", "unimp_dir", type=click.Path(file_okay=False), default=None,
              help="Unified model folder (default: the shipped one, made for the default demo shop).")  # fmt: skip
def demo(out, seed, n_items, n_users, demo_users, images_per_user, steps, generator, unimp_dir) -> None:
    """Run I-AM-G end to end on the embedded default and write a page to look at.

    Builds the demo shop (OUT/shop), describes it (OUT/samples.png, OUT/history_lengths.png,
    OUT/summary.json), then for DEMO_USERS users mines their interests, rewrites a target item's
    text, retrieves neighbours and generates personalized images: OUT/generated/ holds the PNGs
    and a JSON record per user, OUT/index.html shows every step. OUT/manifest.json records the
    seed, config, versions and hashes. An existing OUT/shop built with the same settings is reused.
    For the same users the page shows what the unified model (UniMP) answers: next items, a search,
    the target item's predicted rating and an explanation.
    """
    from tailorgen.data.stats import format_stats
    from tailorgen.demo import run_demo

    summary = run_demo(
        Path(out),
        seed=seed,
        n_items=n_items,
        n_users=n_users,
        demo_users=demo_users,
        images_per_user=images_per_user,
        generator=generator,
        steps=steps,
        unimp=unimp_dir,
    )
    click.echo(format_stats(summary["stats"]))
    click.echo(f"\nwrote {out}/: shop/, samples.png, history_lengths.png, summary.json, manifest.json")
    if "generated" in summary:
        click.echo(f"personalized images for {summary['generated']['users']} users: open {out}/index.html")

"""`tailorgen world ...`: build and look at the simulated shop."""

from __future__ import annotations

import json

import click

from tailorgen.cli import main


@main.group()
def world() -> None:
    """The simulated shop: a seedable catalog and user population with hidden ground truth."""


@world.command("build")
@click.option("--items", "n_items", type=int, default=2000, show_default=True, help="Number of catalog items.")
@click.option("--users", "n_users", type=int, default=300, show_default=True, help="Number of users.")
@click.option("--seed", type=int, default=0, show_default=True, help="Everything in the shop follows from this seed.")
@click.option("--image-size", type=int, default=32, show_default=True, help="Item image side in pixels.")
@click.option("--mean-history", type=float, default=20.0, show_default=True, help="Mean interactions per user.")
@click.option("--no-fashion-mnist", is_flag=True, help="Use procedural silhouettes even if Fashion-MNIST is installed.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Dataset directory to create.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists (only once the new shop is complete).")
@click.option("--grid", type=click.Path(dir_okay=False), default=None, help="Also write a PNG grid of sample items.")
def build(n_items, n_users, seed, image_size, mean_history, no_fashion_mnist, out, overwrite, grid) -> None:
    """Build a shop in the same on-disk format as an imported dataset.

    The dataset (items, interactions with ratings and reviews, search queries, images)
    is what any model sees; the hidden ground truth (item attributes, user taste and its
    drift) goes to OUT/truth/, which only the oracle and the judge's evaluation read.

    \b
    Example:
      tailorgen world build --items 2000 --users 300 --seed 0 --out runs/shop --grid runs/shop.png
    """
    from tailorgen.world import WorldConfig, build_world
    from tailorgen.world.preview import sample_grid

    cfg = WorldConfig(
        n_items=n_items,
        n_users=n_users,
        seed=seed,
        image_size=image_size,
        mean_history=mean_history,
        use_fashion_mnist=not no_fashion_mnist,
    )
    summary = build_world(cfg, out, overwrite=overwrite)
    if grid:
        sample_grid(out, grid)
        summary["grid"] = grid
    click.echo(json.dumps(summary, indent=2))


@world.command("utility")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--user", "user_id", required=True, help="User id, e.g. u007.")
@click.option("--item", "item_id", default=None, help="Score a catalog item's true attributes...")
@click.option(
    "--attr",
    "attrs",
    multiple=True,
    metavar="NAME=VALUE",
    help="...or an attribute set, e.g. --attr colour=red --attr pattern=stripes.",
)
@click.option("--t", "t", type=int, default=None, help="Time on the shop clock (seconds); default: end of horizon.")
def utility(dataset_dir, user_id, item_id, attrs, t) -> None:
    """Ask the oracle how much USER values an item or an attribute set at time T."""
    from tailorgen.world import Oracle

    oracle = Oracle.load(dataset_dir)
    if item_id:
        attributes = oracle.item_attributes(item_id)
    elif attrs:
        try:
            attributes = dict(a.split("=", 1) for a in attrs)
        except ValueError:
            raise click.BadParameter("write each --attr as NAME=VALUE", param_hint="--attr") from None
    else:
        raise click.UsageError("give --item ID or at least one --attr NAME=VALUE")
    t = oracle.horizon if t is None else t
    click.echo(
        json.dumps(
            {
                "user": user_id,
                "t": t,
                "attributes": attributes,
                "utility": round(oracle.utility(user_id, attributes, t), 4),
            },
            indent=2,
        )
    )


@world.command("filter-silhouettes")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the mask (default: the one shipped inside tailorgen).",
)
@click.option("--threshold", type=float, default=0.9, show_default=True, help="Out-of-fold label probability to keep.")
@click.option("--seed", type=int, default=0, show_default=True)
def filter_silhouettes(out, threshold, seed) -> None:
    """Find the Fashion-MNIST silhouettes that plainly show their category, and save them as a bit mask.

    A CNN trained on the other half of the data scores each image; only images whose label it
    gives at least THRESHOLD probability are used by the shop. The shipped mask was made with
    the defaults: `tailorgen world filter-silhouettes`.
    """
    import numpy as np

    from tailorgen.common import atomic_write_bytes
    from tailorgen.world.silhouettes import fit_unambiguous_mask, load_fashion_mnist, unambiguous_mask_path

    images, labels = load_fashion_mnist()
    keep, report = fit_unambiguous_mask(images, labels, threshold=threshold, seed=seed)
    import io

    buf = io.BytesIO()
    np.save(buf, np.packbits(keep))
    atomic_write_bytes(out or unambiguous_mask_path(), buf.getvalue())
    click.echo(json.dumps(report, indent=2))

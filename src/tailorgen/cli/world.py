"""`tailorgen world ...`: build and look at the simulated shop."""

from __future__ import annotations

import json

import click

from tailorgen.cli import main


@main.group()
def world() -> None:
    """The simulated shop: a seedable catalog and user population with hidden ground truth."""


@world.command("build")
@click.option(
    "--items",
    "n_items",
    type=click.IntRange(20, 1_000_000),
    default=2000,
    show_default=True,
    help="Number of catalog items (20 to 1,000,000).",
)
@click.option(
    "--users",
    "n_users",
    type=click.IntRange(1, 1_000_000),
    default=300,
    show_default=True,
    help="Number of users (1 to 1,000,000).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Everything in the shop follows from this seed (>= 0).",
)
@click.option(
    "--image-size",
    type=click.IntRange(8, 256),
    default=32,
    show_default=True,
    help="Item image side in pixels (8 to 256).",
)
@click.option(
    "--mean-history",
    type=click.FloatRange(6, 200),
    default=20.0,
    show_default=True,
    help="Mean interactions per user (6 to 200: every user has at least 5 and at most 200, "
    "and at most half the catalog).",
)
@click.option("--no-fashion-mnist", is_flag=True, help="Use procedural silhouettes even if Fashion-MNIST is installed.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Dataset directory to create.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace --out if it is a tailorgen dataset (only once the new shop is complete); any other folder is kept.",
)
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
@click.option(
    "--t",
    "t",
    type=click.IntRange(min=0),
    default=None,
    help="Time on the shop clock (seconds); default: end of horizon.",
)
def utility(dataset_dir, user_id, item_id, attrs, t) -> None:
    """Ask the oracle how much USER values an item or an attribute set at time T."""
    from tailorgen.data import UnknownIdError
    from tailorgen.world import Oracle

    oracle = Oracle.load(dataset_dir)
    if user_id not in oracle.user_index:
        raise UnknownIdError("user", user_id, f"{dataset_dir}/truth", known=list(oracle.user_index))
    if item_id:
        if item_id not in set(oracle.item_truth.column("item_id").to_pylist()):
            raise UnknownIdError("item", item_id, f"{dataset_dir}/truth")
        attributes = oracle.item_attributes(item_id)
    elif attrs:
        attributes = _attributes(oracle, attrs)
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


def _attributes(oracle, attrs: tuple[str, ...]) -> dict:
    """--attr NAME=VALUE pairs, each checked against the shop's attributes and their values."""
    attributes = {}
    for pair in attrs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"write each --attr as NAME=VALUE, got {pair!r}", param_hint="--attr")
        if name == "price":
            try:
                attributes[name] = float(value)
            except ValueError:
                raise click.BadParameter(f"price must be a number, got {value!r}", param_hint="--attr") from None
            continue
        known = oracle.value_index.get(name)
        if known is None:
            names = ", ".join([*oracle.value_index, "price"])
            raise click.BadParameter(f"unknown attribute {name!r}; attributes: {names}", param_hint="--attr")
        if value not in known:
            raise click.BadParameter(f"unknown {name} {value!r}; known: {', '.join(known)}", param_hint="--attr")
        attributes[name] = value
    return attributes


@world.command("filter-silhouettes")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the mask (default: the one shipped inside tailorgen).",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=0.9,
    show_default=True,
    help="Out-of-fold label probability to keep (0 to 1).",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
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

"""`tailorgen data stats|split|fetch-images`: thin wrappers over tailorgen.data.stats/splits/download."""

from __future__ import annotations

import json
import math

import click

from tailorgen.cli.data import data

_DATASET = click.argument("dataset_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))


@data.command("stats")
@_DATASET
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON (for scripts) instead of text.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PNG",
    help="Also write a matplotlib histogram of interactions per user to this PNG file.",
)
@click.option(
    "--bins",
    type=click.IntRange(1, 1000),
    default=12,
    show_default=True,
    help="Bins of the text histogram (1 to 1000).",
)
def stats(dataset_dir, as_json, plot, bins) -> None:
    """Describe the dataset in DIR: counts, sparsity, history lengths, ratings.

    \b
    Prints users, items, interactions, queries and items with an image; sparsity
    (1 - interactions / (users * items)); the mean, median and maximum number of
    interactions per user with a histogram; and the rating distribution when the
    interactions carry ratings.

    \b
    Example:
      tailorgen data stats runs/shop --plot runs/shop-history.png
    """
    from tailorgen.data.stats import dataset_stats, format_stats, plot_history_lengths

    result = dataset_stats(dataset_dir, bins=bins)
    if plot:
        result["plot"] = str(plot_history_lengths(dataset_dir, plot))
    if as_json:
        click.echo(json.dumps(result, indent=2, allow_nan=False))  # strict JSON: NaN/Infinity would be an error
    else:
        click.echo(format_stats(result))
        if plot:
            click.echo(f"\nhistogram written to {result['plot']}")


@data.command("validate")
@_DATASET
@click.option("--no-images", is_flag=True, help="Skip decoding every image (faster on large catalogs).")
def validate(dataset_dir, no_images) -> None:
    """Check DIR against its manifest and tailorgen's rules; exit 2 and list the problems if any.

    Checks the content hashes and counts of manifest.json, the schemas, ids (valid, unique, every
    interaction's item in the item table), numbers (finite ratings, finite prices >= 0) and images
    (paths relative and inside DIR, files present and decodable).
    """
    from tailorgen.cli import CommandError
    from tailorgen.data import validate_dataset

    problems = validate_dataset(dataset_dir, check_images=not no_images)
    for problem in problems:
        click.echo(problem)
    if problems:
        raise CommandError(f"{dataset_dir}: {len(problems)} problem(s), listed above")
    click.echo(f"{dataset_dir}: no problems found")


def _fractions(ctx, param, value: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in value.split(","))
    except ValueError:
        raise click.BadParameter("write three numbers separated by commas, e.g. 0.8,0.1,0.1") from None
    if len(parts) != 3 or not all(math.isfinite(p) and p >= 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
        raise click.BadParameter(f"need three non-negative fractions summing to 1 (finite numbers), got {value}")
    return parts


@data.command("split")
@_DATASET
@click.option(
    "--method",
    type=click.Choice(["kcore", "loo", "user", "window"]),
    required=True,
    help="kcore: only filter sparse users/items (writes interactions.parquet). "
    "loo: per user, last interaction -> test, second-last -> valid, rest -> train. "
    "user: whole users -> train/valid/test at random (seeded). "
    "window: every N consecutive history items -> the next item (windows.parquet).",
)
@click.option("--name", default=None, help="Directory name under DIR/splits/ [default: the method].")
@click.option(
    "--k",
    "k",
    type=click.IntRange(min=1),
    default=None,
    help="k-core: keep only users and items with at least K interactions, repeated until stable. "
    "Required for --method kcore; for the other methods it filters before splitting.",
)
@click.option(
    "--user-k", type=click.IntRange(min=1), default=None, help="k-core threshold for users only (overrides --k)."
)
@click.option(
    "--item-k", type=click.IntRange(min=1), default=None, help="k-core threshold for items only (overrides --k)."
)
@click.option(
    "--short-history",
    type=click.Choice(["train", "drop"]),
    default="train",
    show_default=True,
    help="loo: where users with fewer than 3 interactions go. Either way they are counted and listed in split.json.",
)
@click.option(
    "--fractions",
    default="0.8,0.1,0.1",
    show_default=True,
    callback=_fractions,
    help="user: train,valid,test shares of the users.",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="user: seed of the random user assignment."
)
@click.option(
    "--history",
    "history_len",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="window: history items per window (N).",
)
@click.option(
    "--stride",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="window: distance between consecutive targets of a user, counted back from their latest item.",
)
@click.option(
    "--min-history",
    type=click.IntRange(min=1),
    default=None,
    help="window: also make windows with fewer history items near a user's start, down to this many "
    "[default: N, full windows only].",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing split of the same name (only once the new one is complete; only a folder with a "
    "split.json).",
)
def split(
    dataset_dir,
    method,
    name,
    k,
    user_k,
    item_k,
    short_history,
    fractions,
    seed,
    history_len,
    stride,
    min_history,
    overwrite,
) -> None:
    """Filter and split the interactions of DIR into DIR/splits/NAME/.

    Ties in timestamp keep the order of interactions.parquet, so a split is exactly
    reproducible. Each split folder holds Parquet files and split.json (method, parameters,
    seed, counts, content hashes of input and outputs); load it with
    tailorgen.data.splits.load_split(DIR, NAME).

    \b
    Examples:
      tailorgen data split runs/shop --method loo --k 5
      tailorgen data split runs/shop --method user --fractions 0.8,0.1,0.1 --seed 1
      tailorgen data split runs/shop --method window --history 20 --stride 5
    """
    from tailorgen.data.splits import split_dataset

    if method == "kcore" and k is None and user_k is None and item_k is None:
        raise click.UsageError("--method kcore needs --k (or --user-k / --item-k)")
    meta = split_dataset(
        dataset_dir,
        method,
        name,
        overwrite=overwrite,
        k=k,
        user_k=user_k,
        item_k=item_k,
        short_history=short_history,
        fractions=fractions,
        seed=seed,
        history_len=history_len,
        stride=stride,
        min_history=min_history,
    )
    click.echo(
        json.dumps(
            {key: meta[key] for key in ("name", "method", "params", "seed", "kcore", "counts", "notes")}, indent=2
        )
    )


@data.command("fetch-images")
@_DATASET
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Shared cache of verified images, keyed by sha256 of the URL "
    "[default: $TAILORGEN_CACHE/images, else ~/.cache/tailorgen/images].",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Most downloads in flight at once (1 to 64).",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 10),
    default=3,
    show_default=True,
    help="Extra attempts after a connection error, timeout, HTTP 5xx or 429 (never after 404), "
    "with exponential backoff (0 to 10).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0, 600, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds allowed to connect and for each read (at most 600).",
)
@click.option(
    "--deadline",
    type=click.FloatRange(0, 3600, min_open=True),
    default=60.0,
    show_default=True,
    help="Most seconds one image may take, every attempt and wait included (at most 3600); a server that "
    "sends a byte at a time is cut off here, and the URL is reported as deadline_exceeded.",
)
@click.option(
    "--min-size",
    type=click.IntRange(1, 4096),
    default=8,
    show_default=True,
    help="Smallest accepted width and height in pixels (1 to 4096); smaller images count as broken.",
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def fetch_images_cmd(dataset_dir, cache_dir, concurrency, retries, timeout, deadline, min_size, no_progress) -> None:
    """Download the images of items in DIR that have an image_url but no image.

    Every image must decode completely with PIL (HTML error pages and truncated files are
    rejected and not cached). Images go to DIR/images/fetched/, items.parquet and
    manifest.json are updated atomically, and every URL that failed is listed with its
    reason (not_found, http_error, broken_image, retries_exhausted, deadline_exceeded, ...) in
    DIR/download_report.json. Running it again only tries what is still missing.

    \b
    Example:
      tailorgen data fetch-images runs/amazon-beauty --concurrency 16
    """
    from tailorgen.data.download import fetch_images

    report = fetch_images(
        dataset_dir,
        cache_dir=cache_dir,
        concurrency=concurrency,
        retries=retries,
        timeout=timeout,
        deadline=deadline,
        min_size=min_size,
        progress=not no_progress,
    )
    click.echo(report.summary())
    if report.failed:
        click.echo(f"see {dataset_dir}/download_report.json for each failed URL and its reason")

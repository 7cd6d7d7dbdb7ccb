"""`tailorgen data import FORMAT SOURCE... --out DIR`: a thin layer over tailorgen.data.adapters."""

from __future__ import annotations

import os

import click

from tailorgen.cli import USER_ERRORS, CommandError, one_line
from tailorgen.cli.data import data
from tailorgen.data.adapters import ADAPTERS, import_dataset, load_mapping, read_import_report


@data.command("import")
@click.argument("format", metavar="FORMAT", type=click.Choice(sorted(ADAPTERS)))
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Dataset directory to create.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace --out if it is a tailorgen dataset (only once the new one is complete); any other folder, and "
    "a folder holding a SOURCE, is never replaced.",
)
@click.option("--strict", is_flag=True, help="Stop at the first bad row (file, line, field) instead of skipping it.")
@click.option(
    "--images",
    "--posters",
    "images",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Local image folder: files named by item id (1.jpg, B00ABC.png) are copied in; "
    "for generic with an image column, the folder its paths are relative to.",
)
@click.option(
    "--mapping",
    "mapping_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="generic: JSON or YAML mapping file: {items: {FIELD: COLUMN}, interactions: {...}, "
    "users: {...}, options: {...}}.",
)
@click.option(
    "--map",
    "map_pairs",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="generic: one mapping entry, overriding the file's; repeatable. "
    "e.g. items.title=name, interactions.timestamp=ts, options.tags_sep=';', options.timestamp_unit=ms.",
)
def import_(format, sources, out, overwrite, strict, images, mapping_file, map_pairs) -> None:
    """Import a public dataset in FORMAT from SOURCE... into tailorgen's schema at --out.

    Bad rows (broken JSON, missing required fields, duplicate ids, unknown items, unreadable
    images, listed users without interactions) are skipped, counted and listed with file, line
    and field in OUT/import_report.json; --strict stops at the first one instead. Fields in the
    report are tailorgen's names (user_id, item_id, timestamp, title, image). Unused source
    fields of items are kept as JSON in the items' `extra` column. Image URLs go to `image_url`;
    `tailorgen data fetch-images` downloads them. A failed import writes nothing and leaves an
    existing --out as it was. Ids may hold any text: image files are named by a safe encoding of
    the id (or its hash), never by the id itself. Ratings must be finite and on the format's scale,
    prices finite and >= 0, and dates plausible (1980 to 2100); other values are counted skips.

    \b
    SOURCE per format (.gz allowed for JSON lines and CSV):
      amazon2014      REVIEWS META   (META lines may be JSON or Python-literal dicts)
      amazon2018      REVIEWS META
      amazon2023      REVIEWS META   (ms timestamps become seconds; items keyed by parent_asin)
      movielens-100k  DIR with u.data, u.item [, u.user, u.genre]
      movielens-csv   DIR with ratings.csv, movies.csv [, tags.csv, links.csv]
      generic         ITEMS INTERACTIONS [USERS]   (.csv, .tsv or .parquet)

    \b
    Examples:
      tailorgen data import amazon2014 reviews_Beauty_5.json.gz meta_Beauty.json.gz --out runs/beauty14
      tailorgen data import amazon2018 Fashion_5.json.gz meta_AMAZON_FASHION.json.gz --out runs/fashion18
      tailorgen data import amazon2023 All_Beauty.jsonl.gz meta_All_Beauty.jsonl.gz --out runs/beauty23
      tailorgen data import movielens-100k ml-100k/ --posters posters/ --out runs/ml100k
      tailorgen data import movielens-csv ml-latest-small/ --out runs/mlsmall
      tailorgen data import generic products.csv orders.parquet customers.csv --out runs/shop \\
          --map items.item_id=sku --map items.title=name --map items.image=photo --images photos/ \\
          --map interactions.user_id=customer --map interactions.timestamp=ts --map options.timestamp_unit=ms

    \b
    generic mapping: each tailorgen field reads the source column named in the mapping, else the
    column of the same name (an id field also defaults to the column the other table maps it to).
      items:        item_id, title (required), description, category, tags, image, image_url, brand, price
      interactions: user_id, item_id, timestamp (required), rating, review
      users:        user_id
      options:      tags_sep ("|"), timestamp_unit (s|ms|auto), delimiter (tab for .tsv, else ","),
                    encoding (utf-8), rating_scale (-10..10), check_dates (true; false for a relative clock)
    Timestamps may be numbers, ISO-8601 text or Parquet timestamps; tags a list, a JSON list or text.
    """
    opts: dict = {"overwrite": overwrite, "strict": strict}
    if images is not None:
        opts["images"] = images
    existed = bool(out.strip()) and os.path.lexists(out)
    try:
        if mapping_file is not None or map_pairs:
            opts["mapping"] = load_mapping(mapping_file, map_pairs)
        out_dir = import_dataset(format, list(sources), out, **opts)
    except USER_ERRORS as e:
        kept = f", {out} is unchanged" if existed else ""
        raise CommandError(f"{one_line(e)}; nothing was written{kept}") from e

    from tailorgen.data import Dataset

    dataset = Dataset(out_dir)
    counts = dataset.manifest["counts"]
    with_url = len(dataset.items) - dataset.items.column("image_url").null_count
    click.echo(
        f"Imported {format} into {out_dir}: {counts['items']} items ({counts['items_with_image']} with a local "
        f"image, {with_url} with an image URL), {counts['interactions']} interactions, {counts['users']} users."
    )
    click.echo(f"Import report: {read_import_report(out_dir).summary()}")

"""`tailorgen search`: an item's nearest neighbours by text or by image."""

from __future__ import annotations

import json
import os

import click

from tailorgen.cli import CommandError, main
from tailorgen.cli.options import device_option
from tailorgen.retrieval import KINDS


def _clip(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


@main.command("search")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--item", "item_id", required=True, help="Id of the item whose neighbours to find.")
@click.option(
    "--by",
    type=click.Choice(["text", "image"]),
    default="text",
    show_default=True,
    help="text: text-to-text retrieval; image: image-to-image retrieval.",
)
@click.option("--k", type=click.IntRange(min=1), default=10, show_default=True, help="Neighbours to return.")
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="flat",
    show_default=True,
    help="Index type: flat is exact; ivf and hnsw are approximate and pay off on large catalogs.",
)
@click.option(
    "--model", default=None, help="Encoder spec as for `tailorgen encode` (default: the embedded encoder for --by)."
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where embeddings are cached (default: DATASET_DIR/embeddings).",
)
@click.option(
    "--index",
    "index_dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="A saved index of these embeddings (`tailorgen index` or `tailorgen scale index`, sharded or not) "
    "instead of --kind.",
)
@device_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def search(dataset_dir, item_id, by, k, kind, model, cache_dir, index_dir, device, as_json) -> None:
    """The K items of DATASET_DIR most similar to --item, by text or by image, with scores and titles.

    The item itself is left out. Embeddings are computed once and cached (see `tailorgen encode`);
    the index is built in memory for this query, or read from --index.
    """
    from tailorgen.data import Dataset
    from tailorgen.encoders import encode_catalog
    from tailorgen.encoders.factory import make_encoder
    from tailorgen.retrieval import EmbeddingTable, ImageRetriever, TextRetriever, load_index

    ds = Dataset(dataset_dir)
    if item_id not in ds.item_row:
        raise click.BadParameter(f"item {item_id!r} is not in {ds.root / 'items.parquet'}", param_hint="--item")
    encoder = make_encoder(by, model, device=device)  # a missing model folder: its message says how to make one
    ids, vectors = encode_catalog(ds, encoder, cache_dir=cache_dir, progress=not as_json)
    if item_id not in set(ids):
        raise CommandError(f"item {item_id!r} has no image, so it cannot be searched --by image; try --by text")
    retriever_cls = TextRetriever if by == "text" else ImageRetriever
    if index_dir:
        index = load_index(index_dir)  # one index, or a sharded one (`tailorgen scale index --shards`)
        if index.ids != ids:
            raise CommandError(f"{index_dir} indexes other items than these {by} embeddings; rebuild it for them")
        retriever, kind = retriever_cls(index, EmbeddingTable(ids, vectors)), index.kind
    else:
        retriever = retriever_cls.from_embeddings(ids, vectors, kind=kind)
    neighbours = retriever.retrieve([item_id], k)[0]
    echo_neighbours(ds, item_id, by, kind, k, encoder.fingerprint, len(ids), neighbours, as_json)


def echo_neighbours(ds, item_id, by, kind, k, encoder, pool, neighbours, as_json) -> None:
    """``search``'s answer (and ``scale search``'s): a table, or JSON."""
    titles = dict(zip(ds.items.column("item_id").to_pylist(), ds.items.column("title").to_pylist()))
    rows = [
        {"rank": r, "item_id": i, "score": round(s, 4), "title": titles.get(i)}
        for r, (i, s) in enumerate(neighbours, 1)
    ]
    if as_json:
        result = {
            "query": {"item_id": item_id, "title": titles.get(item_id)},
            "by": by,
            "index": kind,
            "k": k,
            "encoder": encoder,
            "pool": pool,
            "neighbours": rows,
        }
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    click.echo(
        f'{by} neighbours of {item_id} "{_clip(titles.get(item_id), 60)}" '
        f"({kind} index over {pool} items, encoder {encoder})"
    )
    id_width = max([len("item_id"), *(len(r["item_id"]) for r in rows)])
    click.echo(f"{'rank':>4}  {'item_id':<{id_width}}  {'score':>6}  title")
    for r in rows:
        click.echo(f"{r['rank']:>4}  {r['item_id']:<{id_width}}  {r['score']:>6.3f}  {_clip(r['title'], 70)}")
    if len(rows) < k:
        click.echo(f"(only {len(rows)} other items have {by} embeddings)")


def parse_index_params(kind: str, pairs: tuple[str, ...]) -> dict[str, int]:
    """``--param nlist=1024`` pairs as integers (every index parameter is one), checked against ``kind``
    before anything is embedded."""
    from tailorgen.retrieval import VectorIndex

    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not value.strip().isdigit():
            raise click.BadParameter(f"{pair!r} is not NAME=INTEGER (e.g. nlist=1024)", param_hint="--param")
        params[name.strip()] = int(value)
    try:
        VectorIndex(kind, **params)
    except (TypeError, ValueError) as e:
        raise click.BadParameter(str(e), param_hint="--param") from e
    return params


def index_options(kinds: tuple[str, ...]):
    """The options ``tailorgen index`` and ``tailorgen scale index`` share."""
    kind_help = "flat: exact; ivf: inverted lists (approximate, fast at scale)"
    kind_help += "; hnsw: a graph (approximate)." if "hnsw" in kinds else "."
    options = [
        click.option("--by", type=click.Choice(["text", "image"]), default="text", show_default=True,
                     help="Which embeddings to index."),
        click.option("--kind", type=click.Choice(kinds), default="flat", show_default=True, help=kind_help),
        click.option("--param", "params", multiple=True, metavar="NAME=INTEGER",
                     help="An index parameter, repeatable: ivf nlist, nprobe, train_size, seed; "
                     "hnsw m, ef_construction, ef_search."),
        click.option("--model", default=None,
                     help="Encoder spec as for `tailorgen encode` (default: the embedded one for --by)."),
        click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                     help="Where embeddings are cached (default: DATASET_DIR/embeddings)."),
        click.option("--out", type=click.Path(file_okay=False), required=True,
                     help="Folder to write the index to (index.faiss, ids.parquet, meta.json)."),
        click.option("--overwrite", is_flag=True, help="Replace --out if it exists."),
    ]  # fmt: skip

    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


@main.command("index")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False))
@index_options(KINDS)
@device_option()
def index(dataset_dir, by, kind, params, model, cache_dir, out, overwrite, device) -> None:
    """Build a FAISS index of DATASET_DIR's text or image embeddings and save it to --out.

    `tailorgen search --index OUT` reads it; `tailorgen scale index` builds the same index on a
    Dask cluster. Embeddings are computed once and cached (see `tailorgen encode`).

    \b
    Example:
      tailorgen index runs/shop --by image --kind ivf --param nlist=256 --param nprobe=16 --out runs/shop-ivf
    """
    from tailorgen.data import Dataset
    from tailorgen.encoders import encode_catalog
    from tailorgen.encoders.factory import make_encoder
    from tailorgen.retrieval import VectorIndex

    built = VectorIndex(kind, **parse_index_params(kind, params))
    if os.path.lexists(out) and not overwrite:
        raise CommandError(f"{out} already exists; pass --overwrite to replace it")
    ids, vectors = encode_catalog(Dataset(dataset_dir), make_encoder(by, model, device=device), cache_dir=cache_dir)
    built.add(ids, vectors).save(out, overwrite=overwrite)
    click.echo(f"wrote {built!r} to {out}")

"""`tailorgen scale import|encode|index|search|generate|bench`: the distributed twins of the commands so named."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tailorgen.cli import main
from tailorgen.cli.bench import iamg_bench_options
from tailorgen.cli.generate import echo_records, generation_options, read_pairs
from tailorgen.cli.options import device_option
from tailorgen.cli.search import index_options, parse_index_params


@main.group()
def scale() -> None:
    """Run encoding, indexing, batch generation and the benchmark on a Dask cluster.

    Each command is the twin of the single-machine command of the same name and writes the same
    outputs. Without --scheduler, a LocalCluster of --workers processes starts on 127.0.0.1 (its
    dashboard's address is printed); with --scheduler tcp://HOST:PORT the job runs on that
    cluster, whose workers must see the dataset and output folders at the same paths. A killed
    worker's tasks are rerun; every partition is written whole or not at all, and a rerun of the
    same command skips the partitions already done.

    \b
    Examples:
      tailorgen scale encode runs/shop --workers 2
      tailorgen scale index runs/shop --by image --kind ivf --out runs/shop-ivf
      tailorgen scale index runs/shop --shards 2 --out runs/shop-sharded
      tailorgen scale search runs/shop --index runs/shop-sharded --item ITEM
      tailorgen scale generate runs/shop --requests pairs.csv --n 2 --out runs/gen
      tailorgen scale bench iamg --seed 0 --out runs/bench-scale
    """


def cluster_options(fn):
    """--workers and --scheduler: where the job runs."""
    fn = click.option(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="A running Dask scheduler (tcp://HOST:PORT) to send the job to, instead of a local cluster.",
    )(fn)
    return click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=2,
        show_default=True,
        help="Worker processes of the local cluster, one thread each (ignored with --scheduler).",
    )(fn)


def partition_option(default: int, what: str):
    return click.option(
        "--partition-size", type=click.IntRange(min=1), default=default, show_default=True, help=f"{what} per task."
    )


@scale.command("import")
@click.argument("format", metavar="FORMAT", type=click.Choice(["amazon2014", "amazon2018", "amazon2023"]))
@click.option(
    "--reviews",
    multiple=True,
    required=True,
    metavar="FILE|PATTERN",
    help="A reviews shard, or a quoted glob pattern of them (its files in sorted order); repeatable.",
)
@click.option(
    "--meta",
    multiple=True,
    required=True,
    metavar="FILE|PATTERN",
    help="A metadata shard, or a quoted glob pattern of them; repeatable.",
)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Dataset directory to create.")
@click.option(
    "--overwrite", is_flag=True, help="Replace --out if it is a tailorgen dataset (once the new one is whole)."
)
@click.option("--strict", is_flag=True, help="Stop at the first bad row (file, line, field) instead of skipping it.")
@cluster_options
def scale_import(format, reviews, meta, out, overwrite, strict, workers, scheduler):
    """`tailorgen data import FORMAT REVIEWS META` for a dump in many files: a task per file.

    Each shard is read and cleaned by a worker; an item id that an earlier meta shard (in the
    order given) already had is a counted skip, as a repeat within one file is. The dataset and
    its import_report.json are those of the single-machine import of the shards concatenated.
    Image URLs go to image_url (`tailorgen data fetch-images` downloads them).

    \b
    Example:
      tailorgen scale import amazon2023 --reviews 'reviews/*.jsonl.gz' --meta 'meta/*.jsonl.gz' --out runs/amz
    """
    from tailorgen.data import Dataset
    from tailorgen.data.adapters import read_import_report
    from tailorgen.scale import dask_client, import_on_dask

    with dask_client(scheduler, workers) as client:
        import_on_dask(client, format, reviews, meta, out, overwrite=overwrite, strict=strict)
    ds = Dataset(out)
    click.echo(f"imported {ds.n_items} items and {ds.interactions.num_rows} interactions into {out}")
    click.echo(read_import_report(out).summary())


@scale.command("encode")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--modality", type=click.Choice(["text", "image", "both"]), default="both", show_default=True)
@click.option("--text-model", default="minilm", show_default=True, help="As for `tailorgen encode`.")
@click.option("--image-model", default=None, help="As for `tailorgen encode` (default: the shipped image encoder).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Where embeddings are cached (default: DATASET_DIR/embeddings).")  # fmt: skip
@partition_option(20_000, "Items")
@cluster_options
@device_option()
def scale_encode(dataset_dir, modality, text_model, image_model, cache_dir, partition_size, workers, scheduler, device):
    """Embed every item of DATASET_DIR on the cluster, into the cache `tailorgen encode` reads.

    Each task embeds one partition of items.parquet's rows and writes
    embeddings/MODALITY-KEY.parts/part-NNNNN.npz; the parts are then joined into
    embeddings/MODALITY-KEY.npz, the file `tailorgen encode` would have written.
    """
    from tailorgen.scale import dask_client, encode_on_dask

    result = {}
    with dask_client(scheduler, workers) as client:
        for m in ("text", "image") if modality == "both" else (modality,):
            model = text_model if m == "text" else image_model
            parts = encode_on_dask(client, dataset_dir, m, model, cache_dir, partition_size, device=device)
            result[m] = {
                "items": parts.total,
                "partitions": len(parts.parts),
                "skipped": parts.skipped,
                "encoder": parts.fingerprint,
                "cache": str(parts.cache_file),
            }
    click.echo(json.dumps(result, indent=2))


@scale.command("index")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False))
@index_options(("flat", "ivf"))
@partition_option(20_000, "Items")
@click.option("--shards", type=click.IntRange(min=1), default=1, show_default=True,
              help="Save the index in this many shards (consecutive runs of partitions), each merged by a worker, "
              "for `tailorgen scale search` to hold one per worker. 1: one index, as `tailorgen index`.")  # fmt: skip
@cluster_options
def scale_index(dataset_dir, by, kind, params, model, cache_dir, out, overwrite, partition_size, shards, workers,
                scheduler):  # fmt: skip
    """Build `tailorgen index`'s index of DATASET_DIR on the cluster: trained on a sample, filled by partition.

    Embeds what is not embedded yet (as `tailorgen scale encode`), trains the empty index on the
    rows one machine would use, fills a copy per partition on the workers and merges them in
    order: the same index `tailorgen index` writes. With --shards S, no process merges it all:
    S shards that search together as that index does (`tailorgen search --index` reads them on
    one machine, `tailorgen scale search` on the cluster). HNSW graphs do not merge: build them
    with `tailorgen index`.
    """
    from tailorgen.scale import dask_client, index_on_dask

    params = parse_index_params(kind, params)  # before a cluster starts or anything is embedded
    with dask_client(scheduler, workers) as client:
        index = index_on_dask(
            client, dataset_dir, out, by, model, kind, params, cache_dir, partition_size, overwrite, shards=shards
        )
    if isinstance(index, dict):  # shards, never loaded here
        index = f"{index['count']} {by} vectors in {len(index['shards'])} {index['kind']} shards"
    click.echo(f"wrote {index!r} to {out}")


@scale.command("search")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--index", "index_dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="A sharded index of DATASET_DIR (`tailorgen scale index --shards`).")  # fmt: skip
@click.option("--item", "item_id", required=True, help="Id of the item whose neighbours to find.")
@click.option("--k", type=click.IntRange(min=1), default=10, show_default=True, help="Neighbours to return.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@cluster_options
def scale_search(dataset_dir, index_dir, item_id, k, as_json, workers, scheduler):
    """`tailorgen search --index` with each shard of the index held by a worker of the cluster.

    Every worker loads its shards once; the item's own vector comes from the shard that holds it,
    the query goes to all of them and their top K are merged: the answer `tailorgen search
    --index` gives on one machine, which must hold every shard and every embedding. The index
    says which embeddings (text or image) and which encoder it holds.
    """
    from tailorgen.cli import CommandError
    from tailorgen.cli.search import echo_neighbours
    from tailorgen.data import Dataset
    from tailorgen.retrieval.sharded import read_shards_file
    from tailorgen.scale import dask_client
    from tailorgen.scale.search import ShardsOnCluster

    ds = Dataset(dataset_dir)
    if item_id not in ds.item_row:
        raise click.BadParameter(f"item {item_id!r} is not in {ds.root / 'items.parquet'}", param_hint="--item")
    try:
        meta = read_shards_file(Path(index_dir))  # before a cluster starts
    except (FileNotFoundError, ValueError) as e:
        raise click.BadParameter(str(e), param_hint="--index") from e
    with dask_client(scheduler, workers, announce=not as_json) as client:
        index = ShardsOnCluster(client, index_dir)
        vector = index.vector(item_id)
        if vector is None:
            raise CommandError(f"item {item_id!r} has no vector in {index_dir} (no {meta.get('by', '')} embedding)")
        ids, scores = index.search(vector[None], k, exclude=[{item_id}])
    neighbours = [(i, float(s)) for i, s in zip(ids[0], scores[0])]
    by, encoder = meta.get("by", "?"), meta.get("encoder")
    echo_neighbours(ds, item_id, by, index.kind, k, encoder, index.count, neighbours, as_json)


@scale.command("generate")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--requests", "requests_csv", type=click.Path(exists=True, dir_okay=False), required=True,
              help="A CSV with columns user_id,item_id: the requests.")  # fmt: skip
@generation_options
@cluster_options
def scale_generate(
    dataset_dir,
    requests_csv,
    n,
    seed,
    method,
    rewriter,
    generator_path,
    steps,
    sampler,
    compile_unet,
    guidance,
    out,
    overwrite,
    resume,
    workers,
    scheduler,
):
    """`tailorgen generate --requests` on the cluster, into the same run folder layout.

    The requests are cut into partitions of whole image batches, so every image is the one the
    single-machine command makes; either command's --resume finishes the other's run.
    """
    from tailorgen.scale import dask_client, generate_on_dask

    if overwrite and resume:
        raise click.UsageError("give --overwrite (start over) or --resume (finish the run), not both")
    pairs = read_pairs(requests_csv)
    options = {"n": n, "seed": seed, "method": method, "rewriter": rewriter, "generator": generator_path}
    options |= {"steps": steps, "sampler": sampler, "compile_unet": compile_unet, "guidance": guidance}
    options |= {"overwrite": overwrite, "resume": resume}
    with dask_client(scheduler, workers) as client:
        records = generate_on_dask(client, dataset_dir, pairs, out, **options)
    echo_records(records, out)


@scale.group("bench")
def scale_bench() -> None:
    """Benchmarks with their per-user work spread over the cluster."""


@scale_bench.command("iamg")
@iamg_bench_options
@partition_option(64, "Users (a multiple of 32, the benchmark's image batch)")
@cluster_options
def scale_bench_iamg(
    seed,
    users,
    steps,
    sampler,
    guidance,
    work_dir,
    out,
    generator_path,
    judge_path,
    dataset,
    as_json,
    partition_size,
    workers,
    scheduler,
):
    """`tailorgen bench iamg` with the users scored in partitions on the cluster: the same record.

    Map: each task makes every method's images for its users and measures them. Reduce: image
    quality, latency (on this machine) and the record, as the single-machine benchmark does.
    """
    from tailorgen.evaluation.bench_iamg import IAMGBenchConfig, format_table
    from tailorgen.scale import bench_on_dask, dask_client

    cfg = IAMGBenchConfig(seed=seed, users=users, steps=steps, sampler=sampler, guidance=guidance)
    with dask_client(scheduler, workers) as client:
        result = bench_on_dask(client, cfg, work_dir, out, generator_path, judge_path, dataset, partition_size)
    click.echo(json.dumps(result, indent=2) if as_json else format_table(result))

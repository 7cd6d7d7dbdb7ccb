"""Scale: the single-machine jobs of tailorgen on a Dask cluster, for catalogs that outgrow one machine.

Each job is the distributed twin of a command of the same name and writes the same outputs:

- ``import_on_dask`` (``tailorgen scale import``): an Amazon dump in many files, a task per file
  (items, then interactions against the items' ids), written as ``tailorgen data import`` writes;
- ``encode_on_dask`` (``tailorgen scale encode``): the catalog in row partitions of ``items.parquet``,
  each embedded by a worker and written atomically beside the single-machine cache, then joined
  into that cache file, so ``tailorgen encode`` and ``search`` find it;
- ``index_on_dask`` (``tailorgen scale index``): a FAISS index trained on a sample gathered from
  the partitions, filled part by part in parallel, merged in order (``tailorgen index``'s output),
  or merged into shards by the workers (``--shards``) so that no process holds every vector;
- ``ShardsOnCluster`` (``tailorgen scale search``): a sharded index held one shard per worker,
  each query sent to all and the top-k merged (``tailorgen search --index``'s answer);
- ``generate_on_dask`` (``tailorgen scale generate``): a batch of (user, item) requests cut into
  partitions of whole UNet batches, written into ``tailorgen generate``'s run folder;
- ``bench_on_dask`` (``tailorgen scale bench iamg``): the I-AM-G benchmark's users scored in
  partitions (map) and the record built from all of them (reduce).

No second code path: a worker runs the very library functions the single-machine command runs
on its partition (``adapters.amazon.read_items`` and ``read_interactions``, ``encoders.encode_rows``,
``VectorIndex.add``/``merge``, ``generation.output.generate_requests``,
``evaluation.bench_iamg.score_users``). Dask brings retries, rescheduling when a worker dies and
the dashboard; every partition is written through a temporary file or folder and skipped when a
rerun finds it done, so a killed worker loses nothing and nothing is written twice.
"""

import importlib

# The jobs are imported when first named: a worker that unpickles one job's function imports that
# job's module alone: the import job reads JSON and needs neither torch nor the encoders, whose
# import took a worker 10 s, where one process imports 20,000 reviews in under a second.
_EXPORTS = {
    "bench_on_dask": "tailorgen.scale.bench",
    "dask_client": "tailorgen.scale.cluster",
    "encode_on_dask": "tailorgen.scale.encode",
    "generate_on_dask": "tailorgen.scale.generate",
    "import_on_dask": "tailorgen.scale.data_import",
    "index_on_dask": "tailorgen.scale.index",
    "Partition": "tailorgen.scale.jobs",
    "ShardsOnCluster": "tailorgen.scale.search",
    "partitions": "tailorgen.scale.jobs",
    "run_partitions": "tailorgen.scale.jobs",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tailorgen.scale' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

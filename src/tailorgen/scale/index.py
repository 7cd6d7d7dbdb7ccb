"""`tailorgen scale index`: a FAISS index trained on a sample of the partitions, filled part by part, merged.

1. The parts of embeddings (``encode_on_dask``; embedded first where missing).
2. The rows an index of all ``n`` vectors would train on (``VectorIndex.training_rows``): each
   worker sends only those of its part; this process trains the empty index on them.
3. Each worker adds its part's vectors to a copy of that trained index and saves it, atomically.
4. This process merges the parts in order (FAISS ``merge_from``) and saves the index; or, with
   ``shards`` > 1, each shard (a run of consecutive parts) is merged by a worker and saved, and
   this process only moves the shard folders into place (``retrieval.ShardedIndex``): no machine
   ever holds every vector.

The result is the index ``tailorgen index`` builds with one ``add`` of the joined embeddings:
the same training rows, the same centroids, the same lists in the same order; sharded, the same
search results (``retrieval.sharded`` says why). HNSW graphs do not merge, so they are built on
one machine (``tailorgen index --kind hnsw``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from tailorgen.common import atomic_dir, read_json, write_json
from tailorgen.encoders.catalog import read_embeddings
from tailorgen.retrieval import VectorIndex
from tailorgen.retrieval.sharded import read_shards_file, shard_name, write_shards_file
from tailorgen.scale.encode import PARTITION_ROWS, EncodedParts, encode_on_dask
from tailorgen.scale.jobs import Partition, run_partitions

MERGEABLE = ("flat", "ivf")


def index_on_dask(
    client,
    dataset_dir: str | os.PathLike,
    out: str | os.PathLike,
    by: str = "text",
    model: str | None = None,
    kind: str = "flat",
    params: dict[str, Any] | None = None,
    cache_dir: str | os.PathLike | None = None,
    partition_rows: int = PARTITION_ROWS,
    overwrite: bool = False,
    progress: bool = True,
    shards: int = 1,
) -> VectorIndex | dict:
    """Build and save (to ``out``) the ``kind`` index of the dataset's ``by`` embeddings on the cluster.

    ``shards`` 1: one index, merged here and returned. More: that many shards, merged on the workers
    and saved (``retrieval.ShardedIndex.load`` reads them); returned is what ``shards.json`` says, as
    this process never loads them."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    if kind not in MERGEABLE:
        raise ValueError(
            f"kind must be one of {', '.join(MERGEABLE)} on a cluster (parts are merged), got {kind!r}; "
            "build an hnsw index on one machine with `tailorgen index --kind hnsw`"
        )
    out = Path(out).resolve()  # workers may start in another folder
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it")
    encoded = encode_on_dask(client, dataset_dir, by, model, cache_dir, partition_rows, progress=progress)
    if shards > len(encoded.parts):
        raise ValueError(f"shards ({shards}) cannot exceed the partitions ({len(encoded.parts)}); use smaller ones")
    work = work_folder(out, {"kind": kind, "params": params or {}, "by": by, "encoder": encoded.fingerprint,
                             "counts": encoded.counts})  # fmt: skip
    template = trained_index(client, encoded, kind, params or {}, work, progress)
    todo = [p for p in encoded.parts if not (work / p.name / "meta.json").exists()]
    run_partitions(
        client, fill_part, todo, str(template), str(encoded.parts_dir), str(work), desc="index", progress=progress
    )
    about = {"by": by, "encoder": encoded.fingerprint}
    if shards == 1:
        index = merged(template, [work / p.name for p in encoded.parts])
        index.save(out, overwrite=overwrite)
    else:
        index = save_shards(client, encoded, template, work, out, shards, overwrite, about, progress)
    shutil.rmtree(work, ignore_errors=True)
    return index


def work_folder(out: Path, job: dict) -> Path:
    """Where the trained empty index and the filled parts wait for the merge; what a rerun of the same job
    finds done there is reused, anything left by another job (other kind, parameters, data) is cleared."""
    work = out.with_name(f".{out.name}.parts")
    marker = work / "job.json"
    if work.exists() and (not marker.is_file() or read_json(marker) != json.loads(json.dumps(job))):
        shutil.rmtree(work)
    if not marker.is_file():
        work.mkdir(parents=True, exist_ok=True)
        write_json(marker, job)
    return work


def merged(template: Path | str, parts: list[Path]) -> VectorIndex:
    """The trained empty index with the saved ``parts`` merged into it in order."""
    index = VectorIndex.load(template)
    for part in parts:
        index.merge(VectorIndex.load(part))
    return index


def save_shards(client, encoded: EncodedParts, template: Path, work: Path, out: Path, shards: int,
                overwrite: bool, about: dict, progress: bool) -> dict:  # fmt: skip
    """Each shard, a run of consecutive parts, merged and saved by a worker; then moved into ``out``."""
    runs = np.array_split(np.arange(len(encoded.parts)), shards)
    groups = [Partition(i, int(r[0]), int(r[-1]) + 1) for i, r in enumerate(runs)]  # a shard's range of parts
    todo = [g for g in groups if not (work / shard_work_name(g) / "meta.json").exists()]
    names = [p.name for p in encoded.parts]
    run_partitions(client, merge_shard, todo, names, str(template), str(work), desc="shards", progress=progress)
    counts = [read_json(work / shard_work_name(g) / "meta.json")["count"] for g in groups]
    trained = VectorIndex.load(template)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for g in groups:  # a rename: the shards were written beside ``out``, on its file system
            os.replace(work / shard_work_name(g), tmp / shard_name(g.index))
        write_shards_file(tmp, counts, trained.kind, trained.get_params(), trained.dim, **about)
    return read_shards_file(out)


def shard_work_name(shard: Partition) -> str:
    """A shard's folder while it waits in the work folder: named by its range of parts, so that a rerun
    with another number of shards never takes it for one of its own."""
    return f"{shard_name(shard.index)}-parts-{shard.start:05d}-{shard.stop:05d}"


def trained_index(client, encoded: EncodedParts, kind: str, params: dict, work: Path, progress: bool) -> Path:
    """The empty index for all the parts' vectors, trained (ivf) on the rows one ``add`` would use; saved once."""
    template = work / "trained"
    if (template / "meta.json").exists():
        return template
    index = VectorIndex(kind, **params)
    rows = index.training_rows(encoded.total)
    offsets = np.cumsum([0, *encoded.counts])

    def share(part: Partition) -> tuple:  # the training rows that fall in this part, counted from its start
        start, stop = offsets[part.index], offsets[part.index + 1]
        return (rows[(rows >= start) & (rows < stop)] - start,)

    picked = run_partitions(
        client, sample_rows, encoded.parts, str(encoded.parts_dir), own=share, desc="sample", progress=progress
    )
    sample = np.concatenate([picked[p.index] for p in encoded.parts])
    index.train(sample, encoded.total)
    index.save(template, overwrite=True)
    return template


def merge_shard(shard: Partition, part_names: list[str], template: str, work: str) -> int:
    """On a worker: parts ``shard.start:shard.stop``, filled apart, merged in order and saved as one shard."""
    index = merged(template, [Path(work) / name for name in part_names[shard.start : shard.stop]])
    index.save(Path(work) / shard_work_name(shard), overwrite=True)
    return len(index)


def sample_rows(part: Partition, rows: np.ndarray, parts_dir: str) -> np.ndarray:
    """On a worker: the vectors of ``part`` at ``rows`` (the training sample's rows in it); only those travel."""
    return read_embeddings(Path(parts_dir) / f"{part.name}.npz")[1][rows]


def fill_part(part: Partition, template: str, parts_dir: str, work: str) -> int:
    """On a worker: the trained index with this part's vectors added, saved as its own index; returns its size."""
    ids, vectors = read_embeddings(Path(parts_dir) / f"{part.name}.npz")
    index = VectorIndex.load(template)  # every part starts from the empty trained index
    index.add(ids, vectors)
    index.save(Path(work) / part.name, overwrite=True)
    return len(index)

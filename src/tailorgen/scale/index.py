"""`tailorgen scale index`: a FAISS index trained on a sample of the partitions, filled part by part, merged.

1. The parts of embeddings (``encode_on_dask``; embedded first where missing).
2. The rows an index of all ``n`` vectors would train on (``VectorIndex.training_rows``): each
   worker sends only those of its part; this process trains the empty index on them.
3. Each worker adds its part's vectors to a copy of that trained index and saves it, atomically.
4. This process merges the parts in order (FAISS ``merge_from``) and saves the index.

The result is the index ``tailorgen index`` builds with one ``add`` of the joined embeddings:
the same training rows, the same centroids, the same lists in the same order. HNSW graphs do not
merge, so they are built on one machine (``tailorgen index --kind hnsw``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from tailorgen.encoders.catalog import read_embeddings
from tailorgen.retrieval import VectorIndex
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
) -> VectorIndex:
    """Build and save (to ``out``) the ``kind`` index of the dataset's ``by`` embeddings on the cluster."""
    if kind not in MERGEABLE:
        raise ValueError(
            f"kind must be one of {', '.join(MERGEABLE)} on a cluster (parts are merged), got {kind!r}; "
            "build an hnsw index on one machine with `tailorgen index --kind hnsw`"
        )
    out = Path(out).resolve()  # workers may start in another folder
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it")
    encoded = encode_on_dask(client, dataset_dir, by, model, cache_dir, partition_rows, progress=progress)
    work = out.with_name(f".{out.name}.parts")  # the trained empty index and the filled parts, until the merge
    template = trained_index(client, encoded, kind, params or {}, work, progress)
    todo = [p for p in encoded.parts if not (work / p.name / "meta.json").exists()]
    run_partitions(
        client, fill_part, todo, str(template), str(encoded.parts_dir), str(work), desc="index", progress=progress
    )
    index = VectorIndex.load(template)
    for part in encoded.parts:
        index.merge(VectorIndex.load(work / part.name))
    index.save(out, overwrite=overwrite)
    shutil.rmtree(work, ignore_errors=True)
    return index


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

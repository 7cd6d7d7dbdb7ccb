"""`tailorgen scale encode`: the catalog embedded in partitions by the workers, into the single-machine cache.

Layout, beside the cache file ``encode_catalog`` reads (``embeddings/MODALITY-KEY.npz``, the key
from the dataset's content hashes and the encoder's fingerprint):

    embeddings/MODALITY-KEY.parts/part-00000.npz   ids and vectors of items rows 0..size-1
    embeddings/MODALITY-KEY.parts/part-00001.npz   ...
    embeddings/MODALITY-KEY.npz                    all parts in order (what `tailorgen encode` writes)

A part is written through a temporary file, so it is there whole or not at all, and a rerun
embeds only the parts missing. The parts stay: the index job reads them in parallel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tailorgen.data import Dataset
from tailorgen.encoders.catalog import (
    ROW_COLUMNS,
    catalog_cache_path,
    encode_rows,
    read_embeddings,
    write_embeddings,
)
from tailorgen.encoders.factory import make_encoder
from tailorgen.scale.jobs import Partition, kept, partitions, run_partitions

PARTITION_ROWS = 20_000  # items a task embeds: about 30 MB of 384-d vectors, a minute of MiniLM on one core


@dataclass
class EncodedParts:
    """Where a catalog's partitions of embeddings are, and how many vectors each holds."""

    cache_file: Path
    parts_dir: Path
    parts: list[Partition]
    counts: list[int]
    fingerprint: str
    skipped: int  # parts found done, not embedded again

    def part_file(self, part: Partition) -> Path:
        return self.parts_dir / f"{part.name}.npz"

    @property
    def total(self) -> int:
        return sum(self.counts)


def encode_on_dask(
    client,
    dataset_dir: str | os.PathLike,
    modality: str,
    model: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    partition_rows: int = PARTITION_ROWS,
    batch_size: int = 128,
    device: str = "cpu",
    progress: bool = True,
) -> EncodedParts:
    """Embed every item of the dataset by ``modality`` on the cluster; returns where the parts are.

    ``model`` is an encoder spec as for ``tailorgen encode``. Workers must see the dataset and the
    cache folder at the same paths as this process (a shared file system).
    """
    dataset = Dataset(dataset_dir)
    encoder = make_encoder(modality, model, device)  # here too: its fingerprint names the cache file
    cache_file = catalog_cache_path(dataset, encoder, cache_dir)
    parts_dir = cache_file.with_name(cache_file.stem + ".parts").resolve()  # workers may start elsewhere
    parts = partitions(dataset.n_items, partition_rows)
    todo = [p for p in parts if not (parts_dir / f"{p.name}.npz").exists()]
    args = (str(dataset.root.resolve()), modality, model, device, str(parts_dir), batch_size, encoder.fingerprint)
    run_partitions(client, encode_partition, todo, *args, desc=f"encode {modality}", progress=progress)
    counts = [_vector_count(parts_dir / f"{p.name}.npz") for p in parts]
    result = EncodedParts(cache_file, parts_dir, parts, counts, encoder.fingerprint, len(parts) - len(todo))
    if not cache_file.exists():
        join_parts(result)
    return result


def encode_partition(
    part: Partition,
    root: str,
    modality: str,
    model: str | None,
    device: str,
    parts_dir: str,
    batch_size: int,
    fingerprint: str,
) -> int:
    """On a worker: embed items rows ``part.start:part.stop`` and write the part file; returns its vector count."""
    dataset = kept(("dataset", root), lambda: Dataset(root))
    encoder = kept(("encoder", modality, model, device), lambda: make_encoder(modality, model, device))
    if encoder.fingerprint != fingerprint:
        raise RuntimeError(
            f"this worker's {modality} encoder ({encoder.fingerprint}) is not the client's ({fingerprint}); "
            "install the same tailorgen and model files on every worker"
        )
    rows = dataset.item_rows(part.start, part.stop, ROW_COLUMNS)
    ids, vectors = encode_rows(dataset, encoder, rows, batch_size)
    write_embeddings(Path(parts_dir) / f"{part.name}.npz", ids, vectors, fingerprint)
    return len(ids)


def _vector_count(path: Path) -> int:
    with np.load(path, allow_pickle=False) as z:  # reads the ids only, not the vectors
        return len(z["ids"])


def join_parts(encoded: EncodedParts) -> None:
    """All parts in order into the single-machine cache file (through a temporary file)."""
    ids, vectors = [], []
    for part in encoded.parts:
        part_ids, part_vectors = read_embeddings(encoded.part_file(part))
        ids += part_ids
        vectors.append(part_vectors)
    joined = np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32)
    write_embeddings(encoded.cache_file, ids, joined, encoded.fingerprint)

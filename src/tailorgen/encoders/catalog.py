"""Catalog embeddings, cached on disk keyed by encoder fingerprint and dataset content hash."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from tailorgen.common import atomic_write_bytes
from tailorgen.data import Dataset
from tailorgen.encoders.base import Encoder

# What embedding an item needs from its row: the text fields, and the image (a path or the bytes).
ROW_COLUMNS = ("item_id", "title", "description", "image", "image_bytes")


def item_text(row: dict) -> str:
    """The text an item is embedded by: title, then description."""
    desc = row.get("description") or ""
    return f"{row['title']}. {desc}".strip()


def _cache_key(dataset: Dataset, encoder: Encoder) -> str:
    payload = json.dumps({"files": dataset.manifest.get("files"), "encoder": encoder.fingerprint}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def catalog_cache_path(dataset: Dataset, encoder: Encoder, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where ``encode_catalog`` keeps this dataset's embeddings by this encoder (DATASET/embeddings/ by default)."""
    cache = Path(cache_dir) if cache_dir else dataset.root / "embeddings"
    return cache / f"{encoder.modality}-{_cache_key(dataset, encoder)}.npz"


def read_embeddings(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return z["ids"].tolist(), z["vectors"]


def write_embeddings(path: str | os.PathLike, ids: list[str], vectors: np.ndarray, fingerprint: str) -> None:
    """One .npz of ids, vectors and the encoder's fingerprint, written through a temporary file."""
    buf = io.BytesIO()
    np.savez(buf, ids=np.array(ids, dtype=str), vectors=vectors, fingerprint=np.array(fingerprint))
    atomic_write_bytes(path, buf.getvalue())


def encode_catalog(
    dataset: Dataset,
    encoder: Encoder,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    batch_size: int = 128,
) -> tuple[list[str], np.ndarray]:
    """Embed every item of ``dataset`` with ``encoder`` (by text or by image, per its modality).

    Results are cached under ``cache_dir`` (default DATASET/embeddings/) and reused while
    neither the dataset's content nor the encoder's weights change. Items without an image
    are left out of image embeddings; the returned ids say which items each row belongs to.
    ``tailorgen.scale`` fills the same cache file from partitions embedded by ``encode_rows``.
    """
    path = catalog_cache_path(dataset, encoder, cache_dir)
    if path.exists():
        return read_embeddings(path)
    ids, vectors = encode_rows(dataset, encoder, dataset.items.select(list(ROW_COLUMNS)), batch_size, progress)
    write_embeddings(path, ids, vectors, encoder.fingerprint)
    return ids, vectors


def encode_rows(
    dataset: Dataset, encoder: Encoder, rows: pa.Table, batch_size: int = 128, progress: bool = False
) -> tuple[list[str], np.ndarray]:
    """Embed the items in ``rows`` (a slice of ``items`` with ``ROW_COLUMNS``): the whole catalog, or one partition."""
    rows = rows.to_pylist()
    if encoder.modality == "text":
        ids = [r["item_id"] for r in rows]
        return ids, encoder.encode([item_text(r) for r in rows], batch_size=batch_size, progress=progress)
    rows = [r for r in rows if r["image"] is not None or r["image_bytes"] is not None]
    return [r["item_id"] for r in rows], _encode_images(dataset, encoder, rows, batch_size, progress)


def _encode_images(dataset: Dataset, encoder: Encoder, rows: list[dict], batch_size: int, progress: bool) -> np.ndarray:
    # Decode images one chunk at a time so 1M-item catalogs never sit in memory as PIL images.
    from tqdm.auto import tqdm

    chunks = []
    for s in tqdm(range(0, len(rows), batch_size), desc="encode image", unit="batch", disable=not progress):
        images = [dataset.image_from_row(r) for r in rows[s : s + batch_size]]
        chunks.append(encoder.encode(images, batch_size=batch_size))
    return np.concatenate(chunks) if chunks else np.zeros((0, encoder.dim), np.float32)

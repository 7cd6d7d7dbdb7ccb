"""Catalog embeddings, cached on disk keyed by encoder fingerprint and dataset content hash."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from tailorgen.common import atomic_write_bytes
from tailorgen.data import Dataset
from tailorgen.encoders.base import Encoder


def item_text(row: dict) -> str:
    """The text an item is embedded by: title, then description."""
    desc = row.get("description") or ""
    return f"{row['title']}. {desc}".strip()


def _cache_key(dataset: Dataset, encoder: Encoder) -> str:
    payload = json.dumps({"files": dataset.manifest.get("files"), "encoder": encoder.fingerprint}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


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
    """
    cache = Path(cache_dir) if cache_dir else dataset.root / "embeddings"
    path = cache / f"{encoder.modality}-{_cache_key(dataset, encoder)}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return z["ids"].tolist(), z["vectors"]
    rows = dataset.items.select(["item_id", "title", "description", "image", "image_bytes"]).to_pylist()
    if encoder.modality == "text":
        ids = [r["item_id"] for r in rows]
        vectors = encoder.encode([item_text(r) for r in rows], batch_size=batch_size, progress=progress)
    else:
        ids = [r["item_id"] for r in rows if r["image"] is not None or r["image_bytes"] is not None]
        vectors = _encode_images(dataset, encoder, ids, batch_size, progress)
    import io

    buf = io.BytesIO()
    np.savez(buf, ids=np.array(ids), vectors=vectors, fingerprint=np.array(encoder.fingerprint))
    atomic_write_bytes(path, buf.getvalue())
    return ids, vectors


def _encode_images(dataset: Dataset, encoder: Encoder, ids: list[str], batch_size: int, progress: bool) -> np.ndarray:
    # Load images one chunk at a time so 1M-item catalogs never sit in memory as PIL images.
    from tqdm.auto import tqdm

    chunks = []
    for s in tqdm(range(0, len(ids), batch_size), desc="encode image", unit="batch", disable=not progress):
        images = [dataset.load_image(i) for i in ids[s : s + batch_size]]
        chunks.append(encoder.encode(images, batch_size=batch_size))
    return np.concatenate(chunks) if chunks else np.zeros((0, encoder.dim), np.float32)

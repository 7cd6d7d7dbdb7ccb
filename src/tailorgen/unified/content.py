"""What the unified model knows of each item before training: its text, its image and text embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tailorgen.data import Dataset
from tailorgen.encoders import default_encoder, encode_catalog, l2_normalize
from tailorgen.unified.serialize import catalog_text


@dataclass
class ItemContent:
    """Per item (in ``item_ids`` order): the serialized text, a content vector (text and image
    embeddings side by side, for semantic ids and item-token initialization) and the image embedding
    (zeros where an item has none; ``has_images`` is False for a dataset without images)."""

    item_ids: list[str]
    texts: dict[str, str]
    vectors: np.ndarray
    image_vectors: np.ndarray
    has_images: bool

    @property
    def image_dim(self) -> int:
        return int(self.image_vectors.shape[1])


def _aligned(item_ids: list[str], ids: list[str], vectors: np.ndarray, dim: int) -> np.ndarray:
    out = np.zeros((len(item_ids), dim), np.float32)
    row = {i: k for k, i in enumerate(item_ids)}
    for i, v in zip(ids, vectors, strict=True):
        out[row[i]] = v
    return out


def item_content(
    dataset: Dataset, with_images: bool = True, progress: bool = True, max_field_words: int = 20
) -> ItemContent:
    """The dataset's items through the embedded encoders (cached under DATASET/embeddings/)."""
    rows = dataset.items.select(["item_id", "title", "category", "brand", "price"]).to_pylist()
    item_ids = [r["item_id"] for r in rows]
    texts = {r["item_id"]: catalog_text(r, max_field_words) for r in rows}
    text_ids, text_vecs = encode_catalog(dataset, default_encoder("text"), progress=progress)
    text_vecs = _aligned(item_ids, text_ids, text_vecs, text_vecs.shape[1])
    image_encoder = default_encoder("image")
    has_images = with_images and any(
        dataset.items.column("image").is_valid().to_pylist()
        + dataset.items.column("image_bytes").is_valid().to_pylist()
    )
    if has_images:
        image_ids, image_vecs = encode_catalog(dataset, image_encoder, progress=progress)
        image_vecs = _aligned(item_ids, image_ids, image_vecs, image_encoder.dim)
        vectors = np.concatenate([text_vecs, image_vecs], axis=1) / np.sqrt(2)
    else:
        image_vecs = np.zeros((len(item_ids), image_encoder.dim), np.float32)
        vectors = l2_normalize(text_vecs)
    return ItemContent(item_ids, texts, vectors.astype(np.float32), image_vecs, has_images)

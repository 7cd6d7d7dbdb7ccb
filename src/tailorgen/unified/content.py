"""What the unified model knows of each item before training: its text, its image and text embeddings."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tailorgen.common import atomic_write_bytes
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

    def text_only(self) -> ItemContent:
        """The same items as a dataset without images would give them (for a model that reads no image)."""
        text = self.vectors[:, : self.vectors.shape[1] - self.image_dim] if self.has_images else self.vectors
        vectors = l2_normalize(text).astype(np.float32)
        return ItemContent(self.item_ids, self.texts, vectors, np.zeros_like(self.image_vectors), False)

    def save(self, path: str | Path) -> None:
        """One .npz (texts as JSON), for a machine that has the dataset's tables but not its encoders."""
        buf = io.BytesIO()
        np.savez(buf, item_ids=np.array(self.item_ids), texts=np.array(json.dumps(self.texts)), vectors=self.vectors,
                 image_vectors=self.image_vectors, has_images=np.array(self.has_images))  # fmt: skip
        atomic_write_bytes(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> ItemContent:
        with np.load(path, allow_pickle=False) as z:
            texts = json.loads(str(z["texts"]))
            return cls(z["item_ids"].tolist(), texts, z["vectors"], z["image_vectors"], bool(z["has_images"]))


def _aligned(item_ids: list[str], ids: list[str], vectors: np.ndarray, dim: int) -> np.ndarray:
    out = np.zeros((len(item_ids), dim), np.float32)
    row = {i: k for k, i in enumerate(item_ids)}
    for i, v in zip(ids, vectors, strict=True):
        out[row[i]] = v
    return out


def has_image(dataset: Dataset) -> list[bool]:
    """Per item (in the table's order), whether it has an image (a file or inline bytes)."""
    files = dataset.items.column("image").is_valid().to_pylist()
    inline = dataset.items.column("image_bytes").is_valid().to_pylist()
    return [a or b for a, b in zip(files, inline, strict=True)]


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
    has_images = any(has_image(dataset))
    if not has_images:
        image_vecs = np.zeros((len(item_ids), image_encoder.dim), np.float32)
        return ItemContent(item_ids, texts, l2_normalize(text_vecs).astype(np.float32), image_vecs, False)
    image_ids, image_vecs = encode_catalog(dataset, image_encoder, progress=progress)
    image_vecs = _aligned(item_ids, image_ids, image_vecs, image_encoder.dim)
    vectors = np.concatenate([text_vecs, image_vecs], axis=1) / np.sqrt(2)
    content = ItemContent(item_ids, texts, vectors.astype(np.float32), image_vecs, True)
    return content if with_images else content.text_only()

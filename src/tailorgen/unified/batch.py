"""Encoded sequences as one padded batch: token ids, attention mask, image features, loss weights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tailorgen.unified.tokenizer import Encoded


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, L), padded on the right
    attention_mask: torch.Tensor  # (B, L)
    image_features: torch.Tensor  # (slots, D): the <image> slots in row-major order
    weights: torch.Tensor  # (B, L): loss weight of predicting each token (0: not an answer)
    lengths: torch.Tensor  # (B,)

    def to(self, device) -> Batch:
        return Batch(
            *(
                t.to(device)
                for t in (self.input_ids, self.attention_mask, self.image_features, self.weights, self.lengths)
            )
        )


class ImageFeatures:
    """Each item's image embedding (zeros for an item without an image), by item id."""

    def __init__(self, item_ids: Sequence[str], vectors: np.ndarray, dim: int | None = None):
        self.row = {item: k for k, item in enumerate(item_ids)}
        self.vectors = torch.from_numpy(np.asarray(vectors, np.float32))
        self.dim = self.vectors.shape[1] if len(self.vectors) else int(dim or 0)
        self.zero = torch.zeros(self.dim)

    def __call__(self, items: Sequence[str]) -> torch.Tensor:
        if not items:
            return torch.zeros(0, self.dim)
        return torch.stack([self.vectors[self.row[i]] if i in self.row else self.zero for i in items])


def collate(
    encoded: Sequence[Encoded],
    pad_id: int,
    images: ImageFeatures,
    task_weights: Sequence[float] | None = None,
) -> Batch:
    """Pad on the right. History answers weigh 1, the task's answer ``task_weights[b]``."""
    length = max(len(e.input_ids) for e in encoded)
    ids = np.full((len(encoded), length), pad_id, np.int64)
    mask = np.zeros((len(encoded), length), np.int64)
    weights = np.zeros((len(encoded), length), np.float32)
    for b, e in enumerate(encoded):
        n = len(e.input_ids)
        ids[b, :n], mask[b, :n] = e.input_ids, 1
        weights[b, :n] = e.answer.astype(np.float32)
        if task_weights is not None:
            weights[b, :n][e.task_answer] = task_weights[b]
    slots = [item for e in encoded for item in e.images]
    return Batch(
        torch.from_numpy(ids),
        torch.from_numpy(mask),
        images(slots),
        torch.from_numpy(weights),
        torch.tensor([len(e.input_ids) for e in encoded]),
    )

"""The encoder interface every backend implements (embedded, sentence-transformers, CLIP/SigLIP).

An encoder maps texts or images to L2-normalized float32 vectors in one shared space, in
batches, on a chosen device. ``fingerprint`` names the exact weights, so cached catalog
embeddings are reused only for the model that made them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm


def resolve_device(device: str | None) -> torch.device:
    """'auto' (or None) picks CUDA when present, else CPU; anything else is passed to torch."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Encoder(ABC):
    """Encode a sequence of inputs of one modality into an (N, dim) float32 array, rows of unit norm."""

    modality: str  # "text" or "image"
    dim: int

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """A string that changes whenever the weights (or preprocessing) change."""

    @abstractmethod
    def _encode_batch(self, batch: Sequence) -> np.ndarray:
        """Raw (unnormalized) vectors for one batch."""

    def encode(self, inputs: Sequence, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if isinstance(inputs, str | bytes):
            raise TypeError("encode() takes a sequence of inputs; wrap a single input in a list")
        inputs = list(inputs)
        if not inputs:
            return np.zeros((0, self.dim), np.float32)
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        out = []
        starts = range(0, len(inputs), batch_size)
        for s in tqdm(starts, desc=f"encode {self.modality}", unit="batch", disable=not progress):
            with torch.inference_mode():
                out.append(np.asarray(self._encode_batch(inputs[s : s + batch_size]), np.float32))
        return l2_normalize(np.concatenate(out))


class TextEncoder(Encoder):
    modality = "text"


class ImageEncoder(Encoder):
    modality = "image"

"""Encoders: texts and images into one shared, L2-normalized embedding space.

Backends: the embedded defaults (MiniLM text, tailorgen's own image CNN trained into
MiniLM's space), any sentence-transformers model, and CLIP/SigLIP through transformers.
"""

from __future__ import annotations

from tailorgen.encoders.base import Encoder, ImageEncoder, TextEncoder, l2_normalize
from tailorgen.encoders.catalog import encode_catalog, item_text
from tailorgen.encoders.image import ShopImageEncoder, ShopImageEncoderModel
from tailorgen.encoders.text import SentenceTransformerEncoder

__all__ = [
    "Encoder",
    "ImageEncoder",
    "SentenceTransformerEncoder",
    "ShopImageEncoder",
    "ShopImageEncoderModel",
    "TextEncoder",
    "default_encoder",
    "encode_catalog",
    "item_text",
    "l2_normalize",
]

_DEFAULTS: dict[str, Encoder] = {}


def default_encoder(modality: str, device: str | None = "cpu") -> Encoder:
    """The embedded default for ``"text"`` (MiniLM) or ``"image"`` (the shipped shop CNN); loaded once."""
    if modality not in ("text", "image"):
        raise ValueError(f"modality must be 'text' or 'image', not {modality!r}")
    if modality not in _DEFAULTS:
        _DEFAULTS[modality] = (
            SentenceTransformerEncoder(device=device) if modality == "text" else ShopImageEncoder(device=device)
        )
    return _DEFAULTS[modality]

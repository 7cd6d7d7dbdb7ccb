"""Build an encoder from a short model spec, as the CLI and configs name them."""

from __future__ import annotations

from tailorgen.encoders.base import Encoder


def make_encoder(modality: str, spec: str | None, device: str = "cpu") -> Encoder:
    """``spec``: None or 'minilm' (embedded defaults), 'clip:PATH' (CLIP/SigLIP via transformers),
    or a path: a sentence-transformers model (text) or a tailorgen image encoder folder (image)."""
    from tailorgen.encoders import default_encoder
    from tailorgen.encoders.hf import HFImageEncoder, HFTextEncoder
    from tailorgen.encoders.image import ShopImageEncoder
    from tailorgen.encoders.text import SentenceTransformerEncoder

    if spec and spec.startswith("clip:"):
        cls = HFTextEncoder if modality == "text" else HFImageEncoder
        return cls(spec.removeprefix("clip:"), device=device)
    if modality == "text":
        return default_encoder("text", device) if spec in (None, "minilm") else SentenceTransformerEncoder(spec, device)
    if modality == "image":
        return default_encoder("image", device) if spec is None else ShopImageEncoder(spec, device=device)
    raise ValueError(f"modality must be 'text' or 'image', not {modality!r}")

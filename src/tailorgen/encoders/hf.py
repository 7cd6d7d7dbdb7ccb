"""CLIP / SigLIP through transformers, for users who have the weights (local folder or hub).

Both modalities come from one model (``get_text_features`` / ``get_image_features``), so
texts and images share its space.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from tailorgen.encoders.base import ImageEncoder, TextEncoder, resolve_device
from tailorgen.encoders.text import _weights_digest


class _HFDualEncoder:
    def __init__(self, model_path: str, device: str | None = "cpu"):
        from transformers import AutoModel, AutoProcessor

        self.model_path = str(model_path)
        self.device = resolve_device(device)
        self.model = AutoModel.from_pretrained(self.model_path).to(self.device).eval()
        self.processor = AutoProcessor.from_pretrained(self.model_path)
        cfg = self.model.config
        self.dim = int(getattr(cfg, "projection_dim", None) or cfg.text_config.hidden_size)
        local = Path(self.model_path).is_dir()
        self._fingerprint = f"hf:{self.model_path}:{_weights_digest(Path(self.model_path)) if local else 'hub'}"

    @staticmethod
    def _features(out) -> torch.Tensor:
        # transformers 5 may return a model output object instead of a bare tensor.
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    @property
    def fingerprint(self) -> str:
        return self._fingerprint


class HFTextEncoder(_HFDualEncoder, TextEncoder):
    """Text tower of a CLIP/SigLIP model."""

    def _encode_batch(self, batch: Sequence[str]) -> np.ndarray:
        # SigLIP is trained with max_length padding; CLIP accepts it too.
        inputs = self.processor(text=list(batch), padding="max_length", truncation=True, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        return self._features(self.model.get_text_features(**inputs)).float().cpu().numpy()


class HFImageEncoder(_HFDualEncoder, ImageEncoder):
    """Image tower of a CLIP/SigLIP model."""

    def _encode_batch(self, batch) -> np.ndarray:
        inputs = self.processor(images=[im.convert("RGB") for im in batch], return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device)
        return self._features(self.model.get_image_features(pixel_values=pixels)).float().cpu().numpy()

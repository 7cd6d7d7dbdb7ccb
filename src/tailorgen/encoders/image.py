"""The embedded image encoder: a small CNN that tailorgen trains into MiniLM's text space.

Saved with ``save_pretrained`` (config.json + model.safetensors) through huggingface_hub's
PyTorchModelHubMixin, so it loads like any Hugging Face model from a folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from PIL import Image
from torch import nn

from tailorgen.common import hash_file
from tailorgen.common.checkpoints import load_local_checkpoint
from tailorgen.encoders.base import ImageEncoder, resolve_device

DEFAULT_IMAGE_ENCODER = "image_encoder"  # folder under tailorgen/assets


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ShopImageEncoderModel(nn.Module, PyTorchModelHubMixin):
    """Conv blocks with 2x downsampling, global average pooling, a linear projection to ``out_dim``."""

    def __init__(self, image_size: int = 32, channels: tuple[int, ...] = (32, 64, 128), out_dim: int = 384):
        super().__init__()
        self.image_size = image_size
        layers, c = [], 3
        for i, ch in enumerate(channels):
            layers.append(_block(c, ch))
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
            c = ch
        self.features = nn.Sequential(*layers)
        self.proj = nn.Sequential(nn.Linear(c * 2, c * 2), nn.ReLU(inplace=True), nn.Linear(c * 2, out_dim))
        # Learnable temperature of the contrastive loss (CLIP's logit scale), stored with the weights.
        self.logit_scale = nn.Parameter(torch.tensor(np.log(1 / 0.07), dtype=torch.float32))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels: (B, 3, H, W) in [-1, 1]. Returns unnormalized (B, out_dim)."""
        h = self.features(pixels)
        # Mean and max pooling: colour lives in averages, small pattern details in maxima.
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return self.proj(pooled)


def rgb_array(image: Image.Image, size: int | None) -> np.ndarray:
    """A PIL image -> (size, size, 3) uint8 RGB, resized with bicubic filtering (``None``: as it is).

    The one preprocessing every model of tailorgen reads images through.
    """
    image = image.convert("RGB")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def images_to_tensor(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """PIL images -> (B, 3, size, size) float tensor in [-1, 1]."""
    x = torch.from_numpy(np.stack([rgb_array(im, size) for im in images])).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def default_image_encoder_path() -> Path:
    return Path(str(resources.files("tailorgen") / "assets" / DEFAULT_IMAGE_ENCODER))


class ShopImageEncoder(ImageEncoder):
    """The embedded image encoder. ``path=None`` loads the checkpoint that ships with tailorgen."""

    def __init__(
        self, path: str | Path | None = None, device: str | None = "cpu", model: ShopImageEncoderModel | None = None
    ):
        self.device = resolve_device(device)
        if model is None:
            path = Path(path) if path else default_image_encoder_path()
            if not (path / "model.safetensors").exists():
                raise FileNotFoundError(
                    f"no image encoder at {path}; train one with `tailorgen train encoder --out {path}`"
                )
            model = load_local_checkpoint(ShopImageEncoderModel, path)
            self._fingerprint = f"shop-cnn:{hash_file(path / 'model.safetensors')[7:23]}"
        else:
            self._fingerprint = f"shop-cnn:in-memory:{id(model)}"
        self.model = model.to(self.device).eval()
        self.dim = int(model.proj[-1].out_features)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def _encode_batch(self, batch: Sequence[Image.Image]) -> np.ndarray:
        x = images_to_tensor(batch, self.model.image_size).to(self.device)
        return self.model(x).float().cpu().numpy()

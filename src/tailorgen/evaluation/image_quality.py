"""Distribution-level image quality: FID and KID through torchmetrics, with our own feature network.

FID (Fréchet distance between Gaussians fitted to the features of real and generated images)
and KID (squared maximum mean discrepancy with a cubic polynomial kernel) are computed by
``torchmetrics.image.fid.FrechetInceptionDistance`` and ``torchmetrics.image.kid.KernelInceptionDistance``.
Their default feature network is Inception v3, whose weights cannot be downloaded offline, so
the ``feature=`` argument gets one of our image encoders instead, wrapped by
:class:`EncoderFeatureExtractor` (uint8 images in, features out; what torchmetrics requires of a
custom feature module).

Numbers are therefore "FID in tailorgen-encoder space": comparable between runs that use the same
encoder checkpoint and image counts, not with published Inception FIDs. Both metrics are biased
for small sets (FID strongly so), so compare only sets of equal size.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from tailorgen.encoders.image import ShopImageEncoder, ShopImageEncoderModel, rgb_array

__all__ = ["EncoderFeatureExtractor", "as_feature_module", "fid", "images_to_uint8", "kid"]

ImageSet = Sequence[Image.Image | np.ndarray] | np.ndarray | torch.Tensor


class EncoderFeatureExtractor(nn.Module):
    """Adapter that makes an image encoder usable as torchmetrics' FID/KID ``feature=`` module.

    ``forward`` takes a uint8 batch ``(N, 3, H, W)`` in [0, 255] (what torchmetrics passes to a
    custom feature module when ``normalize=False``), resizes it to ``image_size`` if needed
    (bicubic, antialiased), maps it to ``(x / 255 - mean) / std`` (the defaults give the [-1, 1]
    range tailorgen's ``ShopImageEncoderModel`` expects) and returns the encoder's ``(N, D)``
    float32 output: the projected, unnormalized embedding.

    ``num_features`` (D) is set so torchmetrics does not probe the network with a random image.
    The wrapped encoder is put in eval mode and kept there (``train()`` is a no-op, as in
    torchmetrics' own Inception wrapper), because batch-norm statistics must not follow the batch.
    """

    def __init__(
        self,
        encoder: nn.Module,
        image_size: int | None = None,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
    ):
        super().__init__()
        size = image_size if image_size is not None else getattr(encoder, "image_size", None)
        if not isinstance(size, int) or size < 1:
            raise ValueError(
                f"image_size must be a positive int; {type(encoder).__name__} has no `image_size` attribute, pass one"
            )
        self.encoder = encoder
        self.image_size = size
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.eval()
        device = next((p.device for p in encoder.parameters()), torch.device("cpu"))
        self.to(device)
        with torch.no_grad():
            probe = self(torch.zeros(2, 3, size, size, dtype=torch.uint8, device=device))
        if probe.ndim != 2:
            raise ValueError(f"the encoder must return (N, D) features; it returned shape {tuple(probe.shape)}")
        self.num_features = int(probe.shape[1])

    def train(self, mode: bool = True) -> EncoderFeatureExtractor:
        """Stay in eval mode whatever is asked (an evaluation network)."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected a (N, 3, H, W) image batch, got shape {tuple(images.shape)}")
        if images.dtype != torch.uint8:
            raise ValueError(f"expected uint8 images in [0, 255], got {images.dtype}")
        x = images.to(self.mean.device, torch.float32)
        if x.shape[-2:] != (self.image_size, self.image_size):
            size = (self.image_size, self.image_size)
            x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 255)
        x = (x / 255.0 - self.mean) / self.std
        with torch.no_grad():
            return self.encoder(x).float()


def as_feature_module(feature: nn.Module | ShopImageEncoder) -> nn.Module:
    """The feature module for FID/KID: tailorgen image encoders get wrapped, anything else is used as given.

    ``ShopImageEncoderModel`` and ``ShopImageEncoder`` are wrapped in :class:`EncoderFeatureExtractor`;
    any other ``nn.Module`` must already map uint8 ``(N, 3, H, W)`` batches to ``(N, D)`` features.
    """
    if isinstance(feature, ShopImageEncoder):
        feature = feature.model
    if isinstance(feature, ShopImageEncoderModel):
        return EncoderFeatureExtractor(feature)
    if isinstance(feature, nn.Module):
        return feature
    raise TypeError(f"feature_module must be an nn.Module or a ShopImageEncoder, got {type(feature).__name__}")


def images_to_uint8(images: ImageSet, size: int | None = None, name: str = "images") -> torch.Tensor:
    """PIL images, HWC uint8 arrays, an (N, H, W, 3) uint8 array or an (N, 3, H, W) uint8 tensor
    -> one uint8 tensor (N, 3, size, size).

    PIL inputs (and arrays, via PIL) are converted to RGB and resized with bicubic filtering, the
    same preprocessing as ``tailorgen.encoders.image.images_to_tensor``. ``size=None`` keeps the
    size, which must then be the same for all images.
    """
    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[1] != 3 or images.dtype != torch.uint8:
            raise ValueError(f"{name}: a tensor must be uint8 (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        images = [Image.fromarray(im.permute(1, 2, 0).cpu().numpy()) for im in images]
    elif isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise ValueError(f"{name}: an array must be (N, H, W, 3) uint8, got shape {images.shape}")
        images = list(images)
    if len(images) == 0:
        raise ValueError(f"{name} is empty")
    arrays = []
    for i, im in enumerate(images):
        if isinstance(im, np.ndarray):
            if im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
                raise ValueError(f"{name}[{i}]: arrays must be uint8 (H, W, 3), got {im.dtype} {im.shape}")
            im = Image.fromarray(im)
        elif not isinstance(im, Image.Image):
            raise ValueError(f"{name}[{i}]: expected a PIL image or a uint8 array, got {type(im).__name__}")
        arrays.append(rgb_array(im, size))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"{name}: images differ in size {sorted(shapes)}; pass size= to resize them")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _prepare(real_images: ImageSet, fake_images: ImageSet, feature_module: Any, min_images: int):
    module = as_feature_module(feature_module)
    size = getattr(module, "image_size", None)
    real = images_to_uint8(real_images, size, "real_images")
    fake = images_to_uint8(fake_images, size, "fake_images")
    for name, x in (("real_images", real), ("fake_images", fake)):
        if x.shape[0] < min_images:
            raise ValueError(f"{name}: need at least {min_images} images, got {x.shape[0]}")
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    return module, real, fake, device


def _feed(metric, real: torch.Tensor, fake: torch.Tensor, batch_size: int) -> None:
    for imgs, is_real in ((real, True), (fake, False)):
        for s in range(0, imgs.shape[0], batch_size):
            metric.update(imgs[s : s + batch_size], real=is_real)


def fid(real_images: ImageSet, fake_images: ImageSet, feature_module: Any, batch_size: int = 64) -> float:
    """Fréchet distance between the feature distributions of two image sets; >= 0, lower is better.

    ``||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))`` over Gaussians fitted to the features
    (torchmetrics' ``FrechetInceptionDistance`` with ``feature=feature_module``). 0 for identical
    sets; in squared feature units, so only comparable under the same feature module. Use at
    least a few times more images than feature dimensions for a stable covariance.

    ``feature_module``: a ``ShopImageEncoderModel`` / ``ShopImageEncoder`` (wrapped automatically)
    or an :class:`EncoderFeatureExtractor` or any uint8-to-features ``nn.Module``.
    """
    module, real, fake, device = _prepare(real_images, fake_images, feature_module, min_images=2)
    metric = FrechetInceptionDistance(feature=module, normalize=False).to(device)
    _feed(metric, real.to(device), fake.to(device), batch_size)
    return float(metric.compute())


def kid(
    real_images: ImageSet,
    fake_images: ImageSet,
    feature_module: Any,
    subset_size: int | None = None,
    subsets: int = 100,
    seed: int = 0,
    batch_size: int = 64,
) -> tuple[float, float]:
    """Kernel distance between two image sets: ``(mean, std)`` of the unbiased squared MMD over subsets.

    torchmetrics' ``KernelInceptionDistance`` with kernel ``(x.y / D + 1)^3`` on the features of
    ``subsets`` random subsets of ``subset_size`` images from each set (default: all images of
    the smaller set, at most 1000). Unbiased, so it is about 0 (and can be slightly negative)
    for sets from the same distribution; lower is better. The subsets are drawn from a torch
    generator seeded with ``seed`` without touching the global random state.
    """
    module, real, fake, device = _prepare(real_images, fake_images, feature_module, min_images=2)
    size = subset_size if subset_size is not None else min(real.shape[0], fake.shape[0], 1000)
    if size < 2 or size > min(real.shape[0], fake.shape[0]):
        raise ValueError(
            f"subset_size must be between 2 and the smaller set's size ({min(real.shape[0], fake.shape[0])}), "
            f"got {size}"
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")
        metric = KernelInceptionDistance(feature=module, subsets=subsets, subset_size=size).to(device)
    _feed(metric, real.to(device), fake.to(device), batch_size)
    # KID draws its subsets with torch.randperm from the global generator: seed a forked copy.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)

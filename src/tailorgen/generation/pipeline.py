"""The personalized image pipeline: I-AM-G's generation step, written the way the paper describes it.

Given the rewritten item text (as token states of the frozen text encoder), the target item's
image embedding and the retrieved text and image neighbours, it denoises an image with
classifier-free guidance over the [text | image | interest] condition tokens. A UNet with more
input than output channels also reads the target item's own image, concatenated to its input
(image-to-image, as InstructPix2Pix does), so the garment keeps its shape.

Two backends, one class:
- embedded: a small pixel-space UNet trained by tailorgen (no VAE);
- Stable Diffusion 1.5 + IP-Adapter: SD's UNet and VAE (latent space), CLIP text states passed
  through unchanged (``PersonalizationConditioner(project_text=False)``), the item's CLIP image
  embedding through an IP-Adapter loaded with diffusers' ``load_ip_adapter``, and the fusion
  module's interest tokens appended to the text tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiffusionPipeline, UNet2DConditionModel
from diffusers.loaders import IPAdapterMixin
from PIL import Image

from tailorgen.generation.conditioning import SEGMENTS, PersonalizationConditioner
from tailorgen.generation.unet import REFERENCE_CHANNELS, reads_accent


@dataclass
class Conditions:
    """Everything the generator is conditioned on, batched (B = number of images to make)."""

    text_tokens: torch.Tensor  # (B, L, E)
    text_mask: torch.Tensor  # (B, L)
    image_embedding: torch.Tensor  # (B, E)
    text_neighbours: torch.Tensor  # (B, K, E)
    image_neighbours: torch.Tensor  # (B, K, E)
    ip_image_embeds: torch.Tensor | None = None  # (B, D_clip): only for a pipeline with an IP-Adapter
    # The user's most recent history images, for a conditioner with a history encoder.
    history_pixels: torch.Tensor | None = None  # (B, H, 3, S, S) in [-1, 1], most recent first
    history_mask: torch.Tensor | None = None  # (B, H) True for real images
    # The user's reference item's pixels, for a UNet that reads them with the interest segment
    # (``conditioner.config.reference_image``); zeros where a user has none.
    reference_pixels: torch.Tensor | None = None  # (B, 3, S, S) in [-1, 1]
    # The accent the user's history shows most, for a conditioner that reads it (``history_accent``).
    history_accent: torch.Tensor | None = None  # (B, 5)

    def repeat(self, n: int) -> Conditions:
        return Conditions(*(None if t is None else t.repeat_interleave(n, dim=0) for t in self.__dict__.values()))

    def conditioner_inputs(self, device) -> dict[str, torch.Tensor]:
        keys = ("text_tokens", "text_mask", "image_embedding", "text_neighbours", "image_neighbours")
        out = {k: getattr(self, k).to(device) for k in keys}
        if self.history_pixels is not None:
            out |= {"history_pixels": self.history_pixels.to(device), "history_mask": self.history_mask.to(device)}
        if self.history_accent is not None:
            out["history_accent"] = self.history_accent.to(device)
        return out


class PersonalizedImagePipeline(DiffusionPipeline, IPAdapterMixin):
    _optional_components = ["vae"]

    def __init__(
        self,
        unet: UNet2DConditionModel,
        scheduler: DDIMScheduler,
        conditioner: PersonalizationConditioner,
        vae: AutoencoderKL | None = None,
    ):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, conditioner=conditioner, vae=vae)

    @classmethod
    def from_stable_diffusion(
        cls,
        path: str,
        embed_dim: int,
        conditioner: PersonalizationConditioner | None = None,
        max_neighbours: int = 8,
    ) -> PersonalizedImagePipeline:
        """SD 1.5's UNet, VAE and scheduler from a diffusers folder (``unet/``, ``vae/``, ``scheduler/``).

        ``embed_dim`` is the width of the retrieval embeddings the fusion module reads. A new
        conditioner passes CLIP text states through unchanged; its image and interest projections
        and the fusion module still need training against the frozen SD UNet. Load an IP-Adapter
        afterwards with ``load_ip_adapter``.
        """
        unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet")
        vae = AutoencoderKL.from_pretrained(path, subfolder="vae")
        scheduler = DDIMScheduler.from_pretrained(path, subfolder="scheduler")
        if conditioner is None:
            width = unet.config.cross_attention_dim
            conditioner = PersonalizationConditioner(
                embed_dim=embed_dim,
                text_dim=width,
                project_text=False,
                cross_attention_dim=width,
                max_neighbours=max_neighbours,
            )
        return cls(unet=unet, scheduler=scheduler, conditioner=conditioner, vae=vae)

    @property
    def reads_reference_image(self) -> bool:
        """Whether the UNet also reads the user's reference image (``Conditions.reference_pixels``)."""
        return bool(self.conditioner.config.get("reference_image", False))

    @property
    def reads_history_accent(self) -> bool:
        """Whether the conditioner (a token) or the UNet (its class embedding) reads ``Conditions.history_accent``."""
        return bool(self.conditioner.config.get("history_accent", False)) or reads_accent(self.unet)

    @property
    def reference_channels(self) -> int:
        return REFERENCE_CHANNELS if self.reads_reference_image else 0

    @property
    def reads_source_image(self) -> bool:
        """Whether ``__call__`` needs the item's own image (a UNet with extra input channels)."""
        return self.unet.config.in_channels > self.unet.config.out_channels + self.reference_channels

    @property
    def image_size(self) -> int:
        """Width and height of the images made (and of a source image), in pixels."""
        scale = 2 ** (len(self.vae.config.block_out_channels) - 1) if self.vae is not None else 1
        return self.unet.config.sample_size * scale

    @property
    def noise_shape(self) -> tuple[int, int, int]:
        """Shape of one image's starting noise (``latents`` holds B of them)."""
        return (self.unet.config.out_channels, self.unet.config.sample_size, self.unet.config.sample_size)

    @torch.no_grad()
    def __call__(
        self,
        conditions: Conditions,
        image: torch.Tensor | None = None,
        use: tuple[str, ...] = SEGMENTS,
        guidance_scale: float = 2.0,
        interest_guidance_scale: float | None = None,
        num_inference_steps: int = 50,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
    ) -> list[Image.Image] | np.ndarray:
        """``use`` names the condition segments to keep (the rest are dropped, as in the ablations).

        ``image`` (B, 3, H, W) in [-1, 1]: the item to personalize, for a UNet that reads it
        (``in_channels > out_channels``); both guidance branches see it, so guidance amplifies
        only what the conditions add. ``latents`` (B, C, size, size) fixes the starting noise per
        image; with the deterministic DDIM sampler that fixes the image, so methods can be compared
        on the same noise.

        ``interest_guidance_scale`` (with "interest" in ``use``) guides the interest tokens on their
        own, as InstructPix2Pix guides its two conditions: a third branch drops only the interest
        tokens, and ``eps = eps(none) + guidance_scale * (eps(no interest) - eps(none)) +
        interest_guidance_scale * (eps(all) - eps(no interest))``. Left at ``None`` it equals
        ``guidance_scale``, which is plain classifier-free guidance (two branches).
        """
        unknown = set(use) - set(SEGMENTS)
        if unknown:
            raise ValueError(f"unknown condition segments {sorted(unknown)}; choose from {SEGMENTS}")
        device = self.unet.device
        b = conditions.image_embedding.shape[0]
        c = conditions.conditioner_inputs(device)
        if not self.conditioner.config.get("history_accent", False):
            c.pop("history_accent", None)  # the UNet alone may read it (below)

        # 1. Encode the conditions, and the unconditional (all dropped) ones for guidance.
        keep = torch.tensor([s in use for s in SEGMENTS], device=device)
        drop_cond = (~keep).expand(b, -1)
        drop_uncond = torch.ones(b, len(SEGMENTS), dtype=torch.bool, device=device)
        cond, cond_mask = self.conditioner(**c, drop=drop_cond)
        uncond, uncond_mask = self.conditioner(**c, drop=drop_uncond)
        branches = [(uncond, uncond_mask), (cond, cond_mask)]
        separate = "interest" in use and interest_guidance_scale not in (None, guidance_scale)
        if separate:
            drop_interest = drop_cond.clone()
            drop_interest[:, SEGMENTS.index("interest")] = True
            branches.insert(1, self.conditioner(**c, drop=drop_interest))
        n_branches = len(branches)
        tokens = torch.cat([t for t, _ in branches])
        mask = torch.cat([m for _, m in branches])

        # With an IP-Adapter the item's CLIP image embedding also enters through its own attention;
        # it follows the "image" segment, and the unconditional branch gets zeros (as diffusers does).
        added_cond_kwargs = None
        if getattr(self.unet, "encoder_hid_proj", None) is not None:
            if conditions.ip_image_embeds is None:
                raise ValueError("an IP-Adapter is loaded: give Conditions.ip_image_embeds (the item's CLIP embedding)")
            ip = conditions.ip_image_embeds.to(device)[:, None, :]
            ip_cond = ip if "image" in use else torch.zeros_like(ip)
            added_cond_kwargs = {"image_embeds": [torch.cat([torch.zeros_like(ip), *[ip_cond] * (n_branches - 1)])]}

        # The history accent, for a UNet that reads it through its class embedding, goes with the
        # interest segment: zeros in every branch that drops it, as in training.
        class_labels = None
        if reads_accent(self.unet):
            if conditions.history_accent is None:
                raise ValueError("this UNet reads the user's history accent: give Conditions.history_accent")
            a = conditions.history_accent.to(device=device, dtype=self.unet.dtype)
            dropped = torch.zeros_like(a)
            class_labels = torch.cat([dropped] * (n_branches - 1) + [a if "interest" in use else dropped])

        # 2. The source image, in the space the UNet denoises (through the VAE's encoder in latent space),
        # and the user's reference image, which goes with the interest segment: zeros in every
        # branch that drops it, so guidance amplifies it as it does the interest tokens.
        reference = None
        if self.reads_reference_image:
            if self.vae is not None:
                raise ValueError("a reference image is read in pixel space only; this pipeline denoises latents")
            if conditions.reference_pixels is None:
                raise ValueError("this generator reads the user's reference image: give Conditions.reference_pixels")
            r = conditions.reference_pixels.to(device=device, dtype=self.unet.dtype)
            dropped = torch.zeros_like(r)
            # Branch order: unconditional, [no interest,] conditional.
            reference = [dropped] * (n_branches - 1) + [r if "interest" in use else dropped]
        elif conditions.reference_pixels is not None:
            raise ValueError("this generator reads no reference image; leave Conditions.reference_pixels out")
        source = None
        extra = self.unet.config.in_channels - self.unet.config.out_channels - self.reference_channels
        if extra:
            if image is None:
                raise ValueError(f"this UNet reads the item's image ({extra} extra input channels): pass image=")
            source = image.to(device=device, dtype=self.unet.dtype)
            if self.vae is not None:
                source = self.vae.encode(source).latent_dist.mode()
            if tuple(source.shape[1:]) != (extra, self.unet.config.sample_size, self.unet.config.sample_size):
                raise ValueError(
                    f"image gives {tuple(source.shape[1:])} per sample; the UNet expects "
                    f"{(extra, self.unet.config.sample_size, self.unet.config.sample_size)}"
                )
            source = torch.cat([source] * n_branches)
        elif image is not None:
            raise ValueError("this UNet does not read a source image; leave image=None")
        if reference is not None:
            reference = torch.cat(reference)
            source = reference if source is None else torch.cat([source, reference], dim=1)

        # 3. Start from Gaussian noise, in pixel space or (with a VAE) in latent space.
        shape = (b, *self.noise_shape)
        if latents is None:
            latents = torch.randn(shape, generator=generator, device="cpu")
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        x = latents.to(device)
        self.scheduler.set_timesteps(num_inference_steps)
        x = x * self.scheduler.init_noise_sigma

        # 4. Denoise with classifier-free guidance.
        for t in self.progress_bar(self.scheduler.timesteps):
            model_in = self.scheduler.scale_model_input(torch.cat([x] * n_branches), t)
            if source is not None:
                model_in = torch.cat([model_in, source], dim=1)
            eps = self.unet(
                model_in,
                t,
                encoder_hidden_states=tokens,
                encoder_attention_mask=mask,
                added_cond_kwargs=added_cond_kwargs,
                class_labels=class_labels,
            ).sample
            if separate:
                eps_uncond, eps_no_interest, eps_cond = eps.chunk(3)
                eps = (
                    eps_uncond
                    + guidance_scale * (eps_no_interest - eps_uncond)
                    + interest_guidance_scale * (eps_cond - eps_no_interest)
                )
            else:
                eps_uncond, eps_cond = eps.chunk(2)
                eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
            x = self.scheduler.step(eps, t, x, generator=generator).prev_sample

        # 5. Back to images (through the VAE's decoder in latent space).
        if self.vae is not None:
            x = self.vae.decode(x / self.vae.config.scaling_factor).sample
        images = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return [Image.fromarray(im) for im in images] if output_type == "pil" else images

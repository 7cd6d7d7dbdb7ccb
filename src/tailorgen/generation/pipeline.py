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

import inspect
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    UNet2DConditionModel,
    UniPCMultistepScheduler,
)
from diffusers.loaders import IPAdapterMixin
from PIL import Image

from tailorgen.generation.conditioning import SEGMENTS, PersonalizationConditioner
from tailorgen.generation.spec import ConditionSpec
from tailorgen.generation.unet import reads_accent

# The samplers a trained pipeline can denoise with: diffusers' schedulers, each built from the
# trained scheduler's config (its noise schedule, prediction type and timestep spacing), so any
# of them runs the same weights. DDIM is the one the generators were trained and benchmarked
# with; the multistep solvers reach a similar image in fewer steps (docs/benchmarks.md,
# "Generation speed").
SAMPLERS = {"ddim": DDIMScheduler, "dpm++": DPMSolverMultistepScheduler, "unipc": UniPCMultistepScheduler}
# What generation uses unless told otherwise (`tailorgen generate`, the service, the demo, the
# benchmarks). UniPC at 6 steps: 3.4x faster than DDIM at 25 (the generators' training-time
# sampler) and, on the shop benchmark, no worse; better on personalization gain, since DDIM's
# clipping of its x0 estimate pulls its images off the ODE solution (docs/benchmarks.md,
# "Generation speed"). `--sampler ddim --steps 25` gives the images of runs before 2026-11-30.
DEFAULT_SAMPLER = "unipc"
DEFAULT_STEPS = 6


def make_sampler(name: str, config) -> DDIMScheduler | DPMSolverMultistepScheduler | UniPCMultistepScheduler:
    """The scheduler ``name`` (a key of SAMPLERS) on the noise schedule of a scheduler ``config``."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose from {sorted(SAMPLERS)}")
    return SAMPLERS[name].from_config(config)


@dataclass
class Conditions:
    """Everything the generator is conditioned on, batched (B = number of images to make)."""

    text_tokens: torch.Tensor  # (B, L, E)
    text_mask: torch.Tensor  # (B, L)
    image_embedding: torch.Tensor  # (B, E)
    text_neighbours: torch.Tensor  # (B, K, E)
    image_neighbours: torch.Tensor  # (B, K, E)
    ip_image_embeds: torch.Tensor | None = None  # (B, D_clip): only for a pipeline with an IP-Adapter
    # The user's most recent history images (ConditionSpec.history_images), most recent first.
    history_pixels: torch.Tensor | None = None  # (B, H, 3, S, S) in [-1, 1]
    history_mask: torch.Tensor | None = None  # (B, H) True for real images
    # The accent the user's history shows most (ConditionSpec.reads_history_accent).
    history_accent: torch.Tensor | None = None  # (B, 5)

    def repeat(self, n: int) -> Conditions:
        return Conditions(*(None if t is None else t.repeat_interleave(n, dim=0) for t in self.__dict__.values()))

    def conditioner_inputs(self, device, spec: ConditionSpec | None = None) -> dict[str, torch.Tensor]:
        """The conditioner's keyword arguments on ``device``: what ``spec`` reads (None: every input present)."""
        keys = ["text_tokens", "text_mask", "image_embedding", "text_neighbours", "image_neighbours"]
        if spec is None:
            keys += [k for k in ("history_pixels", "history_mask", "history_accent") if getattr(self, k) is not None]
        else:
            keys += ["history_pixels", "history_mask"] if spec.history_images else []
            keys += ["history_accent"] if spec.accent_token else []
        missing = [k for k in keys if getattr(self, k) is None]
        if missing:
            raise ValueError(f"this generator reads {missing}: the Conditions lack them ({spec})")
        return {k: getattr(self, k).to(device) for k in keys}


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
        self._trained_scheduler = dict(scheduler.config)  # the noise schedule every sampler is built on

    def use_sampler(self, name: str) -> None:
        """Denoise with the sampler ``name`` (a key of SAMPLERS) from now on, on the trained noise schedule."""
        self.scheduler = make_sampler(name, self._trained_scheduler)

    def compile_unet(self) -> None:
        """Compile the UNet (``torch.compile``, inductor) with its weights frozen into the graph.

        Freezing lets inductor fold the weights and prepack them for oneDNN's convolutions, which is
        most of the gain on a CPU (docs/benchmarks.md, "Generation speed"). The first call of each
        batch size compiles (25-50 s on 2 cores); the weights must not change afterwards.
        """
        self.unet.compile(dynamic=False, options={"freezing": True})  # a graph per batch size: fastest kernels

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
    def condition_spec(self) -> ConditionSpec:
        """What this generator reads besides text, item image and neighbours (see ``generation.spec``)."""
        return ConditionSpec.of(self.unet, self.conditioner)

    @property
    def reads_source_image(self) -> bool:
        """Whether ``__call__`` needs the item's own image (a UNet with extra input channels)."""
        return self.unet.config.in_channels > self.unet.config.out_channels

    @property
    def image_size(self) -> int:
        """Width and height of the images made (and of a source image), in pixels."""
        scale = 2 ** (len(self.vae.config.block_out_channels) - 1) if self.vae is not None else 1
        return self.unet.config.sample_size * scale

    @property
    def noise_shape(self) -> tuple[int, int, int]:
        """Shape of one image's starting noise (``latents`` holds B of them)."""
        return (self.unet.config.out_channels, self.unet.config.sample_size, self.unet.config.sample_size)

    @torch.inference_mode()
    def __call__(
        self,
        conditions: Conditions,
        image: torch.Tensor | None = None,
        use: tuple[str, ...] = SEGMENTS,
        guidance_scale: float = 2.0,
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
        """
        # 0. Check the inputs against what this generator reads.
        self.check_inputs(conditions, image, use, guidance_scale, num_inference_steps, output_type)
        b = conditions.image_embedding.shape[0]

        # 1. Encode the conditions, and the unconditional (all dropped) ones, for guidance.
        tokens, mask = self.encode_conditions(conditions, use)
        unet_kwargs = self.unet_condition_kwargs(conditions, use)

        # 2. The source image, in the space the UNet denoises (through the VAE's encoder in latent space).
        source = self.prepare_source(image)

        # 3. Start from Gaussian noise, in pixel space or (with a VAE) in latent space.
        x = self.prepare_latents(b, latents, generator)
        self.scheduler.set_timesteps(num_inference_steps)
        step_kwargs = self.prepare_extra_step_kwargs(generator)

        # 4. Denoise with classifier-free guidance: eps = eps(none) + scale * (eps(cond) - eps(none)).
        for t in self.progress_bar(self.scheduler.timesteps):
            model_in = self.scheduler.scale_model_input(torch.cat([x] * 2), t)
            if source is not None:
                model_in = torch.cat([model_in, source], dim=1)
            eps = self.unet(model_in, t, encoder_hidden_states=tokens, encoder_attention_mask=mask, **unet_kwargs)
            eps_uncond, eps_cond = eps.sample.chunk(2)
            eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
            x = self.scheduler.step(eps, t, x, **step_kwargs).prev_sample

        # 5. Back to images (through the VAE's decoder in latent space).
        return self.decode(x, output_type)

    def check_inputs(self, conditions, image, use, guidance_scale, num_inference_steps, output_type) -> None:
        unknown = set(use) - set(SEGMENTS)
        if unknown:
            raise ValueError(f"unknown condition segments {sorted(unknown)}; choose from {SEGMENTS}")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be an integer >= 1, got {num_inference_steps!r}")
        if not np.isfinite(guidance_scale):
            raise ValueError(f"guidance_scale must be a finite number, got {guidance_scale!r}")
        if output_type not in ("pil", "np"):
            raise ValueError(f"output_type must be 'pil' or 'np', got {output_type!r}")
        if self.reads_source_image and image is None:
            extra = self.unet.config.in_channels - self.unet.config.out_channels
            raise ValueError(f"this UNet reads the item's image ({extra} extra input channels): pass image=")
        if not self.reads_source_image and image is not None:
            raise ValueError("this UNet does not read a source image; leave image=None")
        if self.condition_spec.accent_film and conditions.history_accent is None:
            raise ValueError("this UNet reads the user's history accent: give Conditions.history_accent")

    def encode_conditions(self, conditions: Conditions, use: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens, mask) of both guidance branches, unconditional first: ``use``'s segments kept, then none."""
        device = self.unet.device
        c = conditions.conditioner_inputs(device, self.condition_spec)
        b = conditions.image_embedding.shape[0]
        keep = torch.tensor([s in use for s in SEGMENTS], device=device)
        cond, cond_mask = self.conditioner(**c, drop=(~keep).expand(b, -1))
        uncond, uncond_mask = self.conditioner(**c, drop=torch.ones(b, len(SEGMENTS), dtype=torch.bool, device=device))
        return torch.cat([uncond, cond]), torch.cat([uncond_mask, cond_mask])

    def unet_condition_kwargs(self, conditions: Conditions, use: tuple[str, ...]) -> dict:
        """What the UNet reads beside the tokens, for both branches: the IP-Adapter's image, the accent."""
        device = self.unet.device
        out = {}
        # With an IP-Adapter the item's CLIP image embedding also enters through its own attention;
        # it follows the "image" segment, and the unconditional branch gets zeros (as diffusers does).
        if getattr(self.unet, "encoder_hid_proj", None) is not None:
            if conditions.ip_image_embeds is None:
                raise ValueError("an IP-Adapter is loaded: give Conditions.ip_image_embeds (the item's CLIP embedding)")
            ip = conditions.ip_image_embeds.to(device)[:, None, :]
            ip_cond = ip if "image" in use else torch.zeros_like(ip)
            out["added_cond_kwargs"] = {"image_embeds": [torch.cat([torch.zeros_like(ip), ip_cond])]}
        # The history accent, for a UNet that reads it through its class embedding, goes with the
        # interest segment: zeros in every branch that drops it, as in training.
        if reads_accent(self.unet):
            a = conditions.history_accent.to(device=device, dtype=self.unet.dtype)
            out["class_labels"] = torch.cat([torch.zeros_like(a), a if "interest" in use else torch.zeros_like(a)])
        return out

    def prepare_source(self, image: torch.Tensor | None) -> torch.Tensor | None:
        """The item's own image for both branches, encoded to latents with a VAE; None for a UNet without it."""
        if image is None:
            return None
        source = image.to(device=self.unet.device, dtype=self.unet.dtype)
        if self.vae is not None:
            source = self.vae.encode(source).latent_dist.mode()
        extra = self.unet.config.in_channels - self.unet.config.out_channels
        expected = (extra, self.unet.config.sample_size, self.unet.config.sample_size)
        if tuple(source.shape[1:]) != expected:
            raise ValueError(f"image gives {tuple(source.shape[1:])} per sample; the UNet expects {expected}")
        return torch.cat([source] * 2)

    def prepare_extra_step_kwargs(self, generator: torch.Generator | None) -> dict:
        """What this scheduler's ``step`` takes besides the sample: DDIM's a generator, a multistep solver's none."""
        return {"generator": generator} if "generator" in inspect.signature(self.scheduler.step).parameters else {}

    def prepare_latents(self, b: int, latents: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
        shape = (b, *self.noise_shape)
        if latents is None:
            latents = torch.randn(shape, generator=generator, device="cpu")
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        return latents.to(self.unet.device) * self.scheduler.init_noise_sigma

    def decode(self, x: torch.Tensor, output_type: str) -> list[Image.Image] | np.ndarray:
        if self.vae is not None:
            x = self.vae.decode(x / self.vae.config.scaling_factor).sample
        images = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return [Image.fromarray(im) for im in images] if output_type == "pil" else images

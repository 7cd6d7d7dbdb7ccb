"""The personalized image pipeline: I-AM-G's generation step, written the way the paper describes it.

Given the rewritten item text (as token states of the frozen text encoder), the target item's
image embedding and the retrieved text and image neighbours, it denoises an image with
classifier-free guidance over the [text | image | interest] condition tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDIMScheduler, DiffusionPipeline, UNet2DConditionModel
from PIL import Image

from tailorgen.generation.conditioning import SEGMENTS, PersonalizationConditioner


@dataclass
class Conditions:
    """Everything the generator is conditioned on, batched (B = number of images to make)."""

    text_tokens: torch.Tensor  # (B, L, E)
    text_mask: torch.Tensor  # (B, L)
    image_embedding: torch.Tensor  # (B, E)
    text_neighbours: torch.Tensor  # (B, K, E)
    image_neighbours: torch.Tensor  # (B, K, E)

    def repeat(self, n: int) -> Conditions:
        return Conditions(*(t.repeat_interleave(n, dim=0) for t in self.__dict__.values()))


class PersonalizedImagePipeline(DiffusionPipeline):
    def __init__(self, unet: UNet2DConditionModel, scheduler: DDIMScheduler, conditioner: PersonalizationConditioner):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, conditioner=conditioner)

    @torch.no_grad()
    def __call__(
        self,
        conditions: Conditions,
        use: tuple[str, ...] = SEGMENTS,
        guidance_scale: float = 2.0,
        num_inference_steps: int = 50,
        generator: torch.Generator | None = None,
        output_type: str = "pil",
    ) -> list[Image.Image] | np.ndarray:
        """``use`` names the condition segments to keep (the rest are dropped, as in the ablations)."""
        unknown = set(use) - set(SEGMENTS)
        if unknown:
            raise ValueError(f"unknown condition segments {sorted(unknown)}; choose from {SEGMENTS}")
        device = self.unet.device
        b = conditions.image_embedding.shape[0]
        c = {k: v.to(device) for k, v in conditions.__dict__.items()}

        # 1. Encode the conditions, and the unconditional (all dropped) ones for guidance.
        keep = torch.tensor([s in use for s in SEGMENTS], device=device)
        drop_cond = (~keep).expand(b, -1)
        drop_uncond = torch.ones(b, len(SEGMENTS), dtype=torch.bool, device=device)
        cond, cond_mask = self.conditioner(**c, drop=drop_cond)
        uncond, uncond_mask = self.conditioner(**c, drop=drop_uncond)
        tokens = torch.cat([uncond, cond])
        mask = torch.cat([uncond_mask, cond_mask])

        # 2. Start from Gaussian noise in pixel space.
        size = self.unet.config.sample_size
        x = torch.randn((b, 3, size, size), generator=generator, device="cpu").to(device)
        self.scheduler.set_timesteps(num_inference_steps)
        x = x * self.scheduler.init_noise_sigma

        # 3. Denoise with classifier-free guidance.
        for t in self.progress_bar(self.scheduler.timesteps):
            model_in = self.scheduler.scale_model_input(torch.cat([x, x]), t)
            eps = self.unet(model_in, t, encoder_hidden_states=tokens, encoder_attention_mask=mask).sample
            eps_uncond, eps_cond = eps.chunk(2)
            eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
            x = self.scheduler.step(eps, t, x, generator=generator).prev_sample

        # 4. Back to images.
        images = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return [Image.fromarray(im) for im in images] if output_type == "pil" else images

"""The denoiser: a small diffusers UNet2DConditionModel in pixel space, cross-attending to the conditions."""

from __future__ import annotations

from diffusers import UNet2DConditionModel


def build_unet(
    image_size: int = 32,
    block_out_channels: tuple[int, ...] = (64, 128, 192),
    cross_attention_dim: int = 256,
    layers_per_block: int = 1,
    attention_head_dim: int = 32,
) -> UNet2DConditionModel:
    """Pixel-space UNet: at 32x32 a VAE would save little and cost a model to train, so none is used.

    The outermost level has no attention (cheap at full resolution); the inner levels cross-attend
    to the [text | image | interest] tokens.
    """
    n = len(block_out_channels)
    return UNet2DConditionModel(
        sample_size=image_size,
        in_channels=3,
        out_channels=3,
        layers_per_block=layers_per_block,
        block_out_channels=tuple(block_out_channels),
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        mid_block_type="UNetMidBlock2DCrossAttn",
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=attention_head_dim,
        norm_num_groups=32,
    )

"""The Stable Diffusion 1.5 + IP-Adapter backend of PersonalizedImagePipeline, on tiny random models.

As diffusers tests itself: SD-shaped components built from small configs, saved with
save_pretrained, loaded back through the real loading code; an IP-Adapter checkpoint in the
published key layout (``image_proj.*``, ``ip_adapter.N.to_k_ip/to_v_ip``) loaded with diffusers'
``load_ip_adapter``.
"""

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from safetensors.torch import save_file

from tailorgen.generation import Conditions, PersonalizationConditioner, PersonalizedImagePipeline

TEXT_DIM = 32  # the CLIP text width; SD 1.5 has 768
CLIP_IMAGE_DIM = 24  # the CLIP image-embedding width the IP-Adapter was trained on; 1024 for ViT-H
EMBED_DIM = 16  # the retrieval embeddings the fusion module reads


def tiny_sd_pipeline() -> PersonalizedImagePipeline:
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(32, 64),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=16,
    )
    conditioner = PersonalizationConditioner(
        embed_dim=EMBED_DIM,
        text_dim=TEXT_DIM,
        project_text=False,
        cross_attention_dim=TEXT_DIM,
        max_neighbours=4,
        fusion_heads=2,
    )
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", clip_sample=False)
    return PersonalizedImagePipeline(unet=unet, scheduler=scheduler, conditioner=conditioner, vae=vae)


def ip_adapter_state_dict(unet: UNet2DConditionModel, clip_dim: int, tokens: int = 4) -> dict[str, torch.Tensor]:
    """Random IP-Adapter weights in the published layout: numbered by attention processor, cross ones odd."""
    g = torch.Generator().manual_seed(1)
    cross = unet.config.cross_attention_dim
    sd = {
        "image_proj.proj.weight": torch.randn(cross * tokens, clip_dim, generator=g) * 0.02,
        "image_proj.proj.bias": torch.zeros(cross * tokens),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = unet.config.block_out_channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(unet.config.block_out_channels))[int(name[len("up_blocks.")])]
        else:
            hidden = unet.config.block_out_channels[int(name[len("down_blocks.")])]
        sd[f"ip_adapter.{key_id}.to_k_ip.weight"] = torch.randn(hidden, cross, generator=g) * 0.2
        sd[f"ip_adapter.{key_id}.to_v_ip.weight"] = torch.randn(hidden, cross, generator=g) * 0.2
        key_id += 2
    return sd


def conditions(b: int = 2, with_ip: bool = True) -> Conditions:
    g = torch.Generator().manual_seed(2)
    return Conditions(
        text_tokens=torch.randn(b, 6, TEXT_DIM, generator=g),
        text_mask=torch.ones(b, 6, dtype=torch.bool),
        image_embedding=torch.randn(b, EMBED_DIM, generator=g),
        text_neighbours=torch.randn(b, 4, EMBED_DIM, generator=g),
        image_neighbours=torch.randn(b, 4, EMBED_DIM, generator=g),
        ip_image_embeds=torch.randn(b, CLIP_IMAGE_DIM, generator=g) if with_ip else None,
    )


@pytest.fixture(scope="module")
def saved_sd(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd")
    pipe = tiny_sd_pipeline()
    pipe.save_pretrained(str(root / "pipeline"))
    (root / "ip").mkdir()
    save_file(ip_adapter_state_dict(pipe.unet, CLIP_IMAGE_DIM), str(root / "ip" / "ip-adapter.safetensors"))
    return root


def load(saved_sd) -> PersonalizedImagePipeline:
    pipe = PersonalizedImagePipeline.from_pretrained(str(saved_sd / "pipeline"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_latent_pipeline_round_trips_and_decodes_through_the_vae(saved_sd):
    pipe = load(saved_sd)
    assert isinstance(pipe.vae, AutoencoderKL) and pipe.unet.config.in_channels == 4
    images = pipe(conditions(with_ip=False), num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    # 8x8 latents, one VAE downsampling level: 16x16 images.
    assert [im.size for im in images] == [(16, 16), (16, 16)]
    again = pipe(conditions(with_ip=False), num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(np.asarray(images[0]), np.asarray(again[0]))


def test_from_stable_diffusion_reads_the_sd_folder_layout(tmp_path):
    parts = tiny_sd_pipeline()
    for name in ("unet", "vae", "scheduler"):
        getattr(parts, name).save_pretrained(str(tmp_path / name))
    pipe = PersonalizedImagePipeline.from_stable_diffusion(str(tmp_path), embed_dim=EMBED_DIM, max_neighbours=4)
    assert pipe.conditioner.config.text_dim == TEXT_DIM and not pipe.conditioner.config.project_text
    pipe.set_progress_bar_config(disable=True)
    out = pipe(conditions(with_ip=False), num_inference_steps=1, output_type="np")
    assert out.shape == (2, 16, 16, 3)


def test_clip_text_states_pass_through_unchanged():
    cond = tiny_sd_pipeline().conditioner
    c = conditions(with_ip=False)
    tokens, _ = cond(**c.conditioner_inputs("cpu"))
    seg = cond.segment.weight[0]
    assert torch.allclose(tokens[:, :6], c.text_tokens + seg)
    with pytest.raises(ValueError, match="project_text=False"):
        PersonalizationConditioner(embed_dim=16, text_dim=32, project_text=False, cross_attention_dim=64)


def test_ip_adapter_loads_through_diffusers_and_steers_the_image(saved_sd):
    pipe = load(saved_sd)
    pipe.load_ip_adapter(
        str(saved_sd / "ip"), subfolder="", weight_name="ip-adapter.safetensors", image_encoder_folder=None
    )
    assert pipe.unet.encoder_hid_proj is not None
    noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5))

    def run(scale, c=None, use=("text", "image", "interest")):
        pipe.set_ip_adapter_scale(scale)
        return pipe(c or conditions(), use=use, num_inference_steps=2, latents=noise.clone(), output_type="np")

    with_image, without = run(1.0), run(0.0)
    assert with_image.shape == (2, 16, 16, 3)
    assert not np.array_equal(with_image, without)  # the IP-Adapter's image tokens reach the UNet
    # Dropping the "image" segment also silences the IP-Adapter branch.
    assert np.array_equal(run(1.0, use=("text", "interest")), run(0.0, use=("text", "interest")))
    with pytest.raises(ValueError, match="ip_image_embeds"):
        run(1.0, c=conditions(with_ip=False))

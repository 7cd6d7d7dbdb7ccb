import shutil

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from tailorgen.generation import Conditions, PersonalizationConditioner, PersonalizedImagePipeline, build_unet


def _tiny_pipeline(source_channels=0):
    torch.manual_seed(0)
    unet = build_unet(
        image_size=16,
        block_out_channels=(32, 32),
        cross_attention_dim=32,
        attention_head_dim=8,
        source_channels=source_channels,
    )
    conditioner = PersonalizationConditioner(
        embed_dim=24,
        cross_attention_dim=32,
        n_image_tokens=2,
        max_neighbours=4,
        fusion_heads=2,
    )
    return PersonalizedImagePipeline(
        unet=unet, scheduler=DDIMScheduler(num_train_timesteps=100), conditioner=conditioner
    )


def _conditions(b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, 5, dtype=torch.bool)
    mask[:, 3:] = False
    return Conditions(
        torch.randn(b, 5, 24, generator=g),
        mask,
        torch.randn(b, 24, generator=g),
        torch.randn(b, 3, 24, generator=g),
        torch.randn(b, 3, 24, generator=g),
    )


def test_generates_images_of_the_configured_size_reproducibly():
    pipe = _tiny_pipeline()
    images = pipe(_conditions(), num_inference_steps=3, generator=torch.Generator().manual_seed(1))
    assert len(images) == 2 and images[0].size == (16, 16)
    again = pipe(_conditions(), num_inference_steps=3, generator=torch.Generator().manual_seed(1))
    assert np.array_equal(np.asarray(images[0]), np.asarray(again[0]))


def test_dropping_segments_changes_the_output():
    pipe = _tiny_pipeline()
    full = pipe(_conditions(), num_inference_steps=2, generator=torch.Generator().manual_seed(1), output_type="np")
    no_interest = pipe(
        _conditions(),
        use=("text", "image"),
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(1),
        output_type="np",
    )
    assert not np.array_equal(full, no_interest)
    with pytest.raises(ValueError, match="unknown condition segments"):
        pipe(_conditions(), use=("text", "users"))


def test_conditioner_null_tokens_replace_dropped_segments():
    cond = _tiny_pipeline().conditioner
    c = _conditions(b=2)
    drop = torch.tensor([[False, False, False], [True, False, True]])
    tokens, mask = cond(**c.conditioner_inputs("cpu"), drop=drop)
    assert tokens.shape == (2, 5 + 2 + 3, 32) and mask.shape == (2, 10)
    assert mask[0].tolist() == [True] * 3 + [False] * 2 + [True] * 5
    assert mask[1].tolist() == [True] + [False] * 4 + [True, True] + [True, False, False]


def test_save_and_load_round_trip(tmp_path):
    pipe = _tiny_pipeline()
    pipe.save_pretrained(str(tmp_path))
    loaded = PersonalizedImagePipeline.from_pretrained(str(tmp_path))
    a = pipe(_conditions(), num_inference_steps=2, generator=torch.Generator().manual_seed(3), output_type="np")
    b = loaded(_conditions(), num_inference_steps=2, generator=torch.Generator().manual_seed(3), output_type="np")
    assert np.array_equal(a, b)


def test_given_latents_fix_the_images_and_are_checked():
    pipe = _tiny_pipeline()
    noise = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    a = pipe(_conditions(), num_inference_steps=2, latents=noise, output_type="np")
    b = pipe(_conditions(), num_inference_steps=2, latents=noise.clone(), output_type="np")
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="latents must have shape"):
        pipe(_conditions(), num_inference_steps=2, latents=noise[:1])


def test_a_unet_with_source_channels_reads_the_items_image():
    pipe = _tiny_pipeline(source_channels=3)
    assert pipe.reads_source_image and pipe.noise_shape == (3, 16, 16) and pipe.image_size == 16
    g = torch.Generator().manual_seed(5)
    source = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    noise = torch.randn(2, 3, 16, 16, generator=g)
    a = pipe(_conditions(), image=source, num_inference_steps=2, latents=noise, output_type="np")
    b = pipe(_conditions(), image=-source, num_inference_steps=2, latents=noise, output_type="np")
    assert a.shape == (2, 16, 16, 3) and not np.array_equal(a, b)
    with pytest.raises(ValueError, match="pass image="):
        pipe(_conditions(), num_inference_steps=2)
    with pytest.raises(ValueError, match="the UNet expects"):
        pipe(_conditions(), image=source[:, :, :8, :8], num_inference_steps=2)
    with pytest.raises(ValueError, match="does not read a source image"):
        _tiny_pipeline()(_conditions(), image=source, num_inference_steps=2)


def _history(b=2, h=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, h, 3, 16, 16, generator=g) * 2 - 1, torch.ones(b, h, dtype=torch.bool)


def test_a_history_conditioner_reads_the_users_recent_images_through_the_interest_tokens():
    torch.manual_seed(0)
    cond = PersonalizationConditioner(
        embed_dim=24, cross_attention_dim=32, max_neighbours=4, fusion_heads=2, history_images=3
    ).eval()
    c = _conditions().conditioner_inputs("cpu")
    pixels, present = _history()
    tokens, _ = cond(**c, history_pixels=pixels, history_mask=present)
    other, _ = cond(**c, history_pixels=-pixels, history_mask=present)
    assert not torch.allclose(tokens[:, -3:], other[:, -3:], atol=1e-4)  # the interest tokens see the history
    torch.testing.assert_close(tokens[:, :-3], other[:, :-3])  # text and image tokens do not
    # A padded slot (a short history) changes nothing; dropping the interest segment drops the history too.
    short = present.clone()
    short[:, 2] = False
    garbage = pixels.clone()
    garbage[:, 2] = 1.0
    torch.testing.assert_close(
        cond(**c, history_pixels=pixels, history_mask=short)[0],
        cond(**c, history_pixels=garbage, history_mask=short)[0],
    )
    drop = torch.tensor([[False, False, True]] * 2)
    torch.testing.assert_close(
        cond(**c, drop=drop, history_pixels=pixels, history_mask=present)[0],
        cond(**c, drop=drop, history_pixels=-pixels, history_mask=present)[0],
    )
    with pytest.raises(ValueError, match="give history_pixels"):
        cond(**c)
    with pytest.raises(ValueError, match="no history encoder"):
        _tiny_pipeline().conditioner(**c, history_pixels=pixels, history_mask=present)


def test_the_accent_token_ends_the_interest_segment_and_goes_with_it():
    torch.manual_seed(0)
    kwargs = dict(embed_dim=24, cross_attention_dim=32, max_neighbours=4, fusion_heads=2)
    plain = PersonalizationConditioner(**kwargs).eval()
    cond = PersonalizationConditioner(**kwargs, accent_token=True).eval()
    missing, unexpected = cond.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("accent_proj.") for k in missing)
    c = _conditions()
    c.history_accent = torch.tensor([[0.8, -0.8, -0.8, 1.0, 0.6], [0.0, 0.0, 0.0, 0.0, 0.7]])
    tokens, mask = cond(**c.conditioner_inputs("cpu"))
    base, _ = plain(**_conditions().conditioner_inputs("cpu"))
    assert tokens.shape[1] == base.shape[1] + 1 and mask[:, -1].all()
    torch.testing.assert_close(tokens[:, :-1], base)  # everything before it is unchanged
    other = c.history_accent.flip(0)
    c2 = _conditions()
    c2.history_accent = other
    changed = cond(**c2.conditioner_inputs("cpu"))[0]
    assert not torch.allclose(changed[:, -1], tokens[:, -1])
    torch.testing.assert_close(changed[:, :-1], tokens[:, :-1])
    # Dropped with the interest segment (the rewrite-only ablation sees no accent).
    drop = torch.tensor([[False, False, True]] * 2)
    dropped, dropped_mask = cond(**c.conditioner_inputs("cpu"), drop=drop)
    assert not dropped_mask[:, -1].any()
    torch.testing.assert_close(dropped, cond(**c2.conditioner_inputs("cpu"), drop=drop)[0])
    # A Conditions without it is refused, and so is an accent given to a conditioner without the token.
    with pytest.raises(ValueError, match="give history_accent"):
        cond(**_conditions().conditioner_inputs("cpu"))
    with pytest.raises(ValueError, match="leave history_accent out"):
        plain(**c.conditioner_inputs("cpu"))
    # It repeats with the rest for n images per request.
    assert c.repeat(3).history_accent.shape == (6, 5)


def test_a_unet_with_an_accent_embedding_reads_the_history_accent_with_the_interest_segment():
    from tailorgen.generation.unet import add_accent_embedding, reads_accent

    # 64 channels in 32 GroupNorm groups: with one channel per group (the fixture's 32) the norm
    # after the time embedding removes any per-channel shift, the accent's included.
    pipe = _tiny_pipeline()
    torch.manual_seed(0)
    pipe.unet = build_unet(16, (32, 64), 32, attention_head_dim=8, source_channels=0)
    noise = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))

    def run(p, accent, **kw):
        c = _conditions()
        c.history_accent = accent
        return p(c, num_inference_steps=2, latents=noise, output_type="np", **kw)

    red, blue = torch.tensor([[0.8, -0.8, -0.8, 1.0, 0.6]] * 2), torch.tensor([[-0.7, -0.3, 0.9, 1.0, 0.6]] * 2)
    grown = PersonalizedImagePipeline(
        unet=add_accent_embedding(pipe.unet, 5), scheduler=pipe.scheduler, conditioner=pipe.conditioner
    )
    assert reads_accent(grown.unet) and grown.condition_spec.accent_film
    assert not pipe.condition_spec.reads_history_accent
    # Added at zero: it draws exactly what the UNet it grew from drew, whatever the accent.
    np.testing.assert_allclose(run(grown, red), run(pipe, None), atol=1e-6)
    with torch.no_grad():
        torch.nn.init.normal_(grown.unet.class_embedding.linear_2.weight, std=5.0)
    # Once trained, the accent changes the full output, and nothing where the interest segment is dropped.
    assert not np.array_equal(run(grown, red), run(grown, blue))
    np.testing.assert_array_equal(run(grown, red, use=("text", "image")), run(grown, blue, use=("text", "image")))
    with pytest.raises(ValueError, match="history_accent"):
        run(grown, None)


def test_every_sampler_runs_on_the_trained_noise_schedule():
    from tailorgen.generation.pipeline import SAMPLERS

    pipe = _tiny_pipeline()
    pipe.scheduler = DDIMScheduler(num_train_timesteps=100, prediction_type="v_prediction", clip_sample=False)
    pipe._trained_scheduler = dict(pipe.scheduler.config)
    latents = torch.randn(2, *pipe.noise_shape, generator=torch.Generator().manual_seed(3))
    ddim = pipe(_conditions(), num_inference_steps=40, latents=latents, output_type="np").astype(float)
    for name, cls in SAMPLERS.items():
        pipe.use_sampler(name)
        assert isinstance(pipe.scheduler, cls)
        assert pipe.scheduler.config.prediction_type == "v_prediction"
        assert pipe.scheduler.config.num_train_timesteps == 100
        many = pipe(_conditions(), num_inference_steps=40, latents=latents, output_type="np").astype(float)
        few = pipe(_conditions(), num_inference_steps=2, latents=latents, output_type="np").astype(float)
        # The same probability-flow ODE: with many steps every solver lands near DDIM's image, closer
        # than two steps of the same solver do (a wrong schedule or prediction type would not).
        assert np.abs(many - ddim).mean() < np.abs(few - ddim).mean()
    pipe.use_sampler("ddim")
    again = pipe(_conditions(), num_inference_steps=40, latents=latents, output_type="np").astype(float)
    assert np.array_equal(again, ddim)
    with pytest.raises(ValueError, match="unknown sampler 'euler'; choose from"):
        pipe.use_sampler("euler")


def test_the_cli_offers_the_pipelines_samplers_and_defaults():
    from tailorgen.cli import generate as cli
    from tailorgen.generation import pipeline

    assert tuple(pipeline.SAMPLERS) == cli.SAMPLER_NAMES
    assert (pipeline.DEFAULT_SAMPLER, pipeline.DEFAULT_STEPS) == (cli.DEFAULT_SAMPLER, cli.DEFAULT_STEPS)


@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile's CPU kernels need a C++ compiler (g++)")
def test_a_compiled_unet_makes_the_same_images():
    pipe = _tiny_pipeline()
    latents = torch.randn(2, *pipe.noise_shape, generator=torch.Generator().manual_seed(4))
    eager = pipe(_conditions(), num_inference_steps=3, latents=latents, output_type="np").astype(int)
    pipe.compile_unet()
    compiled = pipe(_conditions(), num_inference_steps=3, latents=latents, output_type="np").astype(int)
    assert np.abs(compiled - eager).max() <= 1  # float rounding of fused kernels, at most one level of 255

"""Training the conditioner against a frozen Stable Diffusion 1.5 UNet (``--backend sd15``), on tiny random models.

As test_sd_ip_adapter.py does for inference: SD-shaped components from small configs (UNet, VAE,
scheduler, a CLIP text encoder and a character-level CLIP tokenizer written to disk), saved as an
SD folder and loaded through the real loading code; an IP-Adapter in the published key layout with
a tiny CLIP image encoder beside it. The shop is the session's ``small_shop``, which the trainer
finds in its work dir as the shop of its config.
"""

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file
from test_sd_ip_adapter import CLIP_IMAGE_DIM, TEXT_DIM, ip_adapter_state_dict, tiny_sd_pipeline

from tailorgen.cli import main
from tailorgen.generation import Conditions, PersonalizedImagePipeline
from tailorgen.generation.train import GeneratorTrainConfig, train_generator
from tailorgen.generation.train.dataset import prepare_training_set
from tailorgen.generation.train.sd15 import clip_text_states, fit_sd15, load_clip_text
from tailorgen.training import TrainingStopped

# The small_shop fixture's world (400 items, 60 users, seed 7), a few examples, two short phases.
TINY = {
    "backend": "sd15",
    "train_items": 400,
    "train_users": 60,
    "train_seed": 7,
    "examples": 24,
    "renders": 1,
    "history_images": 2,
    "accent_token": True,  # joins at the fine-tune, as in the embedded recipe
    "accent_film": False,
    "steps": 4,
    "finetune_steps": 2,
    "batch_size": 4,
    "lr": 1e-2,
    "warmup_steps": 1,
    "finetune_warmup_steps": 1,
    # Tiny matrices gain nothing from a second thread, and on a busy machine two threads waiting on
    # each other made a step 50 times slower.
    "threads": 1,
}


def _write_tokenizer(folder):
    """A character-level CLIP BPE tokenizer (byte-level vocab, no merges) saved where SD keeps its tokenizer."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer.from_pretrained(str(folder), model_max_length=77).save_pretrained(str(folder))
    return vocab


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    """A tiny SD 1.5 folder (unet, vae, scheduler, text_encoder, tokenizer) and an IP-Adapter beside it."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    root = tmp_path_factory.mktemp("sd15")
    sd = root / "sd"
    parts = tiny_sd_pipeline()
    for name in ("unet", "vae", "scheduler"):
        getattr(parts, name).save_pretrained(str(sd / name))
    vocab = _write_tokenizer(sd / "tokenizer")
    end = vocab["<|endoftext|>"]
    text = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=TEXT_DIM,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=end,
        pad_token_id=end,
    )
    CLIPTextModel(text).save_pretrained(str(sd / "text_encoder"))
    ip = root / "ip"
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=CLIP_IMAGE_DIM,
    )
    CLIPVisionModelWithProjection(vision).save_pretrained(str(ip / "image_encoder"))
    save_file(ip_adapter_state_dict(parts.unet, CLIP_IMAGE_DIM), str(ip / "ip-adapter.safetensors"))
    return sd, ip / "ip-adapter.safetensors"


@pytest.fixture(scope="module")
def work_dir(small_shop, tmp_path_factory):
    """A work dir whose generator shop is small_shop (same world config, so the trainer reuses it)."""
    work = tmp_path_factory.mktemp("work")
    (work / "generator-7-400-60").symlink_to(small_shop, target_is_directory=True)
    return work


def _cfg(sd, **more) -> GeneratorTrainConfig:
    return GeneratorTrainConfig(**TINY, pretrained=str(sd), **more)


def _conditions(out, pipe, b=2) -> Conditions:
    """Conditions with the saved CLIP text encoder's states, the rest random of the shapes the conditioner reads."""
    tokenizer, text_encoder = load_clip_text(out)
    tokens, mask = clip_text_states(["a red dress with white dots", "blue striped shirt"][:b], tokenizer, text_encoder)
    g = torch.Generator().manual_seed(3)
    dim = pipe.conditioner.config.embed_dim
    return Conditions(
        text_tokens=tokens,
        text_mask=mask,
        image_embedding=torch.randn(b, dim, generator=g),
        text_neighbours=torch.randn(b, 4, dim, generator=g),
        image_neighbours=torch.randn(b, 4, dim, generator=g),
        history_pixels=torch.rand(b, 2, 3, 32, 32, generator=g) * 2 - 1,
        history_mask=torch.ones(b, 2, dtype=torch.bool),
        history_accent=torch.rand(b, 5, generator=g),
    )


@pytest.fixture(scope="module")
def prepared(sd_folder, work_dir):
    """The training set of TINY, built once: (data, settings, rng, shop hashes), as train_generator builds it."""
    data, ctx, rng, hashes = prepare_training_set(_cfg(sd_folder[0]), work_dir, progress=False)
    return data, ctx.settings, rng, hashes


def _fit(cfg, prepared, out, seed=0, **options) -> dict:
    data, settings, rng, hashes = prepared
    torch.manual_seed(seed)  # the conditioner's initial weights, the noise and the timesteps
    return fit_sd15(cfg, data, settings, out, copy.deepcopy(rng), progress=False, data_hashes=hashes, **options)


@pytest.fixture(scope="module")
def trained_with_ip_adapter(sd_folder, prepared, tmp_path_factory):
    """The conditioner alone trained (no LoRA), with the IP-Adapter loaded in training."""
    sd, ip = sd_folder
    out = tmp_path_factory.mktemp("trained") / "gen"
    with pytest.warns(UserWarning, match="exceed CLIP's 77-token window"):  # one character a token here
        report = _fit(_cfg(sd), prepared, out, ip_adapter=ip)
    return out, report


def test_the_conditioner_trains_against_a_frozen_unet_and_vae(sd_folder, trained_with_ip_adapter):
    sd, ip = sd_folder
    out, report = trained_with_ip_adapter
    assert report["backend"] == "sd15" and report["trained"] == ["conditioner"] and report["lora"] is None
    assert report["prediction_type"] == "epsilon" and report["steps"] == 6
    assert np.isfinite(report["loss_curve"]).all() and report["loss_curve"][0] > 0
    assert report["condition_spec"] == {"history_images": 2, "accent_token": True, "accent_film": False}
    assert report["pretrained"]["ip_adapter"]["path"] == str(ip)
    frozen = report["parameters"]["frozen"]
    assert report["parameters"]["trainable"]["unet_lora"] == 0 and frozen["unet"] > 0 and frozen["text_encoder"] > 0
    pipe = PersonalizedImagePipeline.from_pretrained(str(out))
    assert report["parameters"]["trainable"]["conditioner"] == sum(p.numel() for p in pipe.conditioner.parameters())
    # The UNet and VAE are SD's, bit for bit; the IP-Adapter was unloaded before saving.
    for name in ("unet", "vae"):
        original = getattr(PersonalizedImagePipeline.from_stable_diffusion(str(sd), 16), name).state_dict()
        saved = getattr(pipe, name).state_dict()
        assert saved.keys() == original.keys() and all(torch.equal(saved[k], original[k]) for k in saved), name
    assert pipe.unet.encoder_hid_proj is None and not pipe.conditioner.config.project_text
    # The conditioner trained: a fresh one's LayerNorms are exactly (1, 0), and the accent token joined.
    norms = [m for m in pipe.conditioner.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(not torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)
    assert pipe.conditioner.accent_proj is not None
    # The frozen text encoder travels with the pipeline, unchanged.
    tokenizer, text_encoder = load_clip_text(out)
    _, original_text = load_clip_text(sd)
    a, b = text_encoder.state_dict(), original_text.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a) and tokenizer.model_max_length == 77


def test_the_saved_pipeline_generates_from_clip_states_with_the_ip_adapter_loaded_again(
    sd_folder, trained_with_ip_adapter
):
    _, ip = sd_folder
    out, _ = trained_with_ip_adapter
    pipe = PersonalizedImagePipeline.from_pretrained(str(out))
    pipe.set_progress_bar_config(disable=True)
    c = _conditions(out, pipe)
    images = pipe(c, num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 16, 16, 3) and images.std() > 0
    pipe.load_ip_adapter(str(ip.parent), subfolder="", weight_name=ip.name, image_encoder_folder=None)
    c.ip_image_embeds = torch.randn(2, CLIP_IMAGE_DIM, generator=torch.Generator().manual_seed(4))
    with_ip = pipe(c, num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0))
    assert with_ip.shape == images.shape and not np.array_equal(with_ip, images)


@pytest.mark.filterwarnings("ignore:.*exceed CLIP's 77-token window")
def test_the_cli_trains_lora_which_merges_into_the_saved_unet(sd_folder, work_dir, tmp_path):
    sd, _ = sd_folder
    out = tmp_path / "cli"
    sets = [f"--set={k}={v}" for k, v in TINY.items() if k not in ("backend", "accent_film", "accent_token")]
    args = ["train", "generator", "--backend", "sd15", "--pretrained", str(sd), "--no-accent-film", "--lora-rank", "2"]
    args += ["--out", str(out), "--work-dir", str(work_dir), *sets]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    printed = json.loads(res.stdout[res.stdout.index("{") :])
    assert np.isfinite(printed["final_loss"]) and printed["examples"] == 24
    report = json.loads((out / "training_report.json").read_text())
    assert report["lora"] == {"rank": 2, "alpha": 2, "targets": ["to_k", "to_q", "to_v", "to_out.0"]}
    assert report["parameters"]["trainable"]["unet_lora"] > 0 and report["trained"][1].startswith("unet LoRA")
    # The adapter alone, in diffusers' layout: trained (LoRA's up projection starts at zero).
    adapter = load_file(str(out / "lora" / "pytorch_lora_weights.safetensors"))
    ups = [v for k, v in adapter.items() if k.startswith("unet.") and "lora.up" in k]
    assert ups and all(v.abs().sum() > 0 for v in ups)
    # The saved UNet is SD's with the adapter merged: only the attention projections differ.
    base = PersonalizedImagePipeline.from_stable_diffusion(str(sd), 16).unet
    merged = PersonalizedImagePipeline.from_pretrained(str(out)).unet
    a, b = base.state_dict(), merged.state_dict()
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed and all(
        k.endswith(("to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight")) for k in changed
    )
    # The same adapter loaded onto SD's own UNet through diffusers draws what the merged UNet draws.
    base.load_lora_adapter(str(out / "lora"), prefix="unet", weight_name="pytorch_lora_weights.safetensors")
    x, t = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([500])
    states = torch.randn(1, 5, TEXT_DIM, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(base(x, t, states).sample, merged(x, t, states).sample, atol=1e-5)


@pytest.mark.filterwarnings("ignore:.*exceed CLIP's 77-token window")
def test_a_killed_lora_training_resumes_to_the_weights_of_an_uninterrupted_one(sd_folder, prepared, tmp_path):
    cfg = _cfg(sd_folder[0], lora_rank=2)
    _fit(cfg, prepared, tmp_path / "whole", checkpoint_every=2)
    with pytest.raises(TrainingStopped):  # in the first phase, after the checkpoint of step 2
        _fit(cfg, prepared, tmp_path / "killed", checkpoint_every=2, stop_after=3)
    assert _fit(cfg, prepared, tmp_path / "killed", checkpoint_every=2)["resumed_from"] == 3
    assert not (tmp_path / "killed" / "checkpoints").exists()  # the checkpoints went with the finished run
    lora = [load_file(str(tmp_path / d / "lora" / "pytorch_lora_weights.safetensors")) for d in ("whole", "killed")]
    assert all(torch.allclose(lora[0][k], lora[1][k], atol=1e-6) for k in lora[0])
    cond = [
        PersonalizedImagePipeline.from_pretrained(str(tmp_path / d)).conditioner.state_dict()
        for d in ("whole", "killed")
    ]
    assert all(torch.allclose(cond[0][k], cond[1][k], atol=1e-6) for k in cond[0])
    # The test can fail: other noise and timesteps give other LoRA weights.
    _fit(cfg, prepared, tmp_path / "other", seed=1)
    other = load_file(str(tmp_path / "other" / "lora" / "pytorch_lora_weights.safetensors"))
    assert not all(torch.allclose(other[k], lora[0][k]) for k in other)


def test_clear_errors_for_what_sd_cannot_train(sd_folder, work_dir, tmp_path):
    sd, _ = sd_folder
    with pytest.raises(ValueError, match="give pretrained"):
        GeneratorTrainConfig(backend="sd15")
    cfg = GeneratorTrainConfig(**(TINY | {"accent_film": True}), pretrained=str(sd))
    with pytest.raises(ValueError, match="accent_film: Stable Diffusion's UNet has no class embedding"):
        train_generator(cfg, tmp_path / "out", work_dir, progress=False)
    unet_only = tmp_path / "unet-only"  # a pipeline folder, not an SD one: no text encoder, no tokenizer
    for name in ("unet", "vae", "scheduler"):
        (unet_only / name).mkdir(parents=True)
        (unet_only / name / "config.json").symlink_to(sd / name / "config.json")
    with pytest.raises(ValueError, match="lacks text_encoder/, tokenizer/"):
        train_generator(_cfg(unet_only), tmp_path / "out", work_dir, progress=False)
    with pytest.raises(ValueError, match="which this command reads"):  # OUT over the SD weights
        train_generator(_cfg(sd), sd.parent, work_dir, progress=False)
    # Refused before any work too: continuing a saved generator, and an IP-Adapter that is not there.
    with pytest.raises(ValueError, match="init_from: the sd15 backend starts from SD's frozen weights"):
        train_generator(dataclasses.replace(_cfg(sd), init_from=str(sd)), tmp_path / "out", work_dir, progress=False)
    with pytest.raises(FileNotFoundError, match="ip_adapter: .* is not a file"):
        train_generator(
            dataclasses.replace(_cfg(sd), ip_adapter=str(tmp_path / "none.bin")),
            tmp_path / "out",
            work_dir,
            progress=False,
        )
    # The CLI's defaults read the accent through the UNet: SD needs --no-accent-film, and says so.
    res = CliRunner().invoke(main, ["train", "generator", "--backend", "sd15", "--pretrained", str(sd), "--out", "x"])
    assert res.exit_code == 2 and "accent_film" in res.output
    assert not (tmp_path / "out").exists()

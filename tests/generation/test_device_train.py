"""scripts/device_train.py: a packed training set rebuilds into the one it was packed from, and trains."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from tailorgen.world.render import BACKGROUND


@pytest.fixture(scope="module")
def device_train():
    path = Path(__file__).resolve().parents[2] / "scripts" / "device_train.py"
    spec = importlib.util.spec_from_file_location("device_train", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["device_train"] = module  # its renderers run in worker processes, which import it by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules["device_train"]


def _garment_colour(images: np.ndarray) -> np.ndarray:
    """(N, 3, S, S) uint8 -> (N, 3) mean colour of the pixels that are not background."""
    x = images.astype(np.float32)
    fg = np.abs(x - BACKGROUND).max(1, keepdims=True) > 40
    return (x * fg).sum((2, 3)) / np.maximum(fg.sum((2, 3)), 1)


def test_a_packed_training_set_rebuilds_and_trains(device_train, small_shop, tmp_path):
    from tailorgen.data import Dataset
    from tailorgen.generation import PersonalizedImagePipeline
    from tailorgen.generation.context import IAMGSettings, PersonalizationContext
    from tailorgen.generation.train import GeneratorTrainConfig, build_training_set, fit_generator

    cfg = GeneratorTrainConfig(
        examples=48,
        renders=1,
        history_images=4,
        steps=2,
        finetune_steps=1,
        batch_size=4,
        block_out_channels=(32, 64),
        cross_attention_dim=32,
        warmup_steps=1,
    )
    ctx = PersonalizationContext(Dataset(small_shop), spec=cfg.spec, progress=False)
    data = build_training_set(cfg, ctx, np.random.default_rng(0), progress=False)
    sizes = device_train.write_pack(tmp_path / "pack", data, cfg, ctx)
    assert set(sizes) == {"set.npz", "minilm.safetensors", "minilm_config.json", "meta.json"}

    rebuilt, meta = device_train.unpack(tmp_path / "pack", "cpu", renders=2)
    n = len(data["target"])
    assert len(rebuilt["target"]) == 2 * n and len(rebuilt["text_tokens"]) == n  # rows: render r of example i
    first = {k: v[:n] if k in ("source", "target") else v for k, v in rebuilt.items()}
    same = device_train.compare_sets(data, first)
    exact = ("image_embedding", "text_neighbours", "image_neighbours", "history_pixels", "text_mask", "looks")
    assert all(same[k] for k in (*exact, "history_mask", "history_accent", "keep_interest", "rewritten"))
    assert same["text_tokens_min_cosine"] > 0.999  # MiniLM cut to int8 layers, float16 states
    # The images are drawn again. The first 2,000 rows replay the CPU build's random draws (numpy's
    # seeds [s, 77] and [s, 77, 0] are one seed); the rest are other pixels of the same looks.
    assert np.array_equal(first["target"], data["target"]) and np.array_equal(first["source"], data["source"])
    again = {k: rebuilt[k][n:] for k in ("source", "target")}
    assert not np.array_equal(again["target"], data["target"])
    for key in ("source", "target"):
        gap = np.abs(_garment_colour(again[key]) - _garment_colour(data[key])).max(1)
        assert np.median(gap) < 25, key

    report = fit_generator(cfg, rebuilt, IAMGSettings(**meta["settings"]), tmp_path / "gen", np.random.default_rng(0))
    assert report["examples"] == n and report["renders"] == 2 and np.isfinite(report["loss_curve"]).all()
    pipe = PersonalizedImagePipeline.from_pretrained(str(tmp_path / "gen"))
    assert pipe.conditioner.config.history_images == 4


def test_a_shop_without_ground_truth_cannot_be_packed(device_train, tmp_path):
    with pytest.raises(ValueError, match="ground truth"):
        device_train.write_pack(tmp_path / "pack", {"counterfactual_targets": False}, None, None)

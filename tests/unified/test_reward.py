"""The preference reward of Generate, Not Recommend: it learns, reloads exactly, holds users out, reads
candidates through the VQ tokenizer, resumes, refuses bad configs, and trains from the command line."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tailorgen.data import Dataset
from tailorgen.encoders import default_encoder
from tailorgen.training import ConfigError, TrainingStopped, config_from
from tailorgen.unified.reward import (
    PreferenceReward,
    RewardTrainConfig,
    embed_pixels,
    evaluate_reward,
    is_held_out,
    prepare_reward_data,
    ranking_metrics,
    train_reward,
)
from tailorgen.unified.vq import VQImageTokenizer

TINY = RewardTrainConfig(
    hidden=32, dropout=0.1, max_history=8, negatives=16, steps=200, batch_size=32, warmup_steps=10, lr=3e-3, threads=1
)
EVERY = "held_out_users_every_interaction"  # ~160 unseen interactions on small_shop: the stable group


@pytest.fixture(scope="module")
def tiny_reward(small_shop, tmp_path_factory):
    out = tmp_path_factory.mktemp("reward") / "reward"
    return out, train_reward(TINY, small_shop, out, progress=False, checkpoint_every=0)


def test_training_lowers_the_loss_and_ranks_unseen_users_choices_above_chance(tiny_reward):
    _, report = tiny_reward
    assert report["loss_curve"][-1] < report["loss_curve"][0] - 0.3
    held_out = report["held_out"]
    assert set(held_out) == {"held_out_users", "training_users", EVERY}
    assert held_out[EVERY]["examples"] > 100 and held_out[EVERY]["users"] == report["held_out_users"]
    assert held_out[EVERY]["reward"]["auc"] > 0.55  # 0.61 to 0.66 over four seeds and three user splits
    assert set(held_out[EVERY]["popularity"]) == {"auc", "row_auc", "hr@10", "ndcg@10"}


def test_a_saved_reward_reloads_to_identical_scores(tiny_reward, small_shop, tmp_path):
    path, report = tiny_reward
    reward = PreferenceReward.from_pretrained(path)
    assert reward.config.image_encoder == default_encoder("image").fingerprint and reward.config.candidate_vq is None
    assert evaluate_reward(reward, prepare_reward_data(TINY, small_shop, progress=False)) == report["held_out"]
    reward.save_pretrained(tmp_path / "again")
    again = PreferenceReward.from_pretrained(tmp_path / "again")
    gen = torch.Generator().manual_seed(0)
    histories = [torch.randn(n, 384, generator=gen) for n in (0, 3, 12)]  # none, short, longer than max_history
    candidates = torch.randn(3, 5, 384, generator=gen)
    scores = reward.score(histories, candidates)
    assert scores.shape == (3, 5) and torch.isfinite(scores).all()
    assert torch.equal(again.score(histories, candidates), scores)
    assert torch.allclose(reward.score(histories, candidates[:, 0]), scores[:, 0], atol=1e-5)  # one per row
    # Only the last max_history items count, wherever the padding stands.
    assert torch.allclose(reward.score([histories[2][-8:]], candidates[2:]), scores[2:], atol=1e-6)


def test_a_missing_reward_names_the_command_that_makes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="tailorgen train reward"):
        PreferenceReward.from_pretrained(tmp_path)


def test_held_out_users_never_appear_in_training_examples(small_shop):
    data = prepare_reward_data(TINY, small_shop, progress=False)
    users = set(Dataset(small_shop).interactions.column("user_id").to_pylist())
    assert 0.05 < len(data.held_out) / len(users) < 0.4 and len(data.train) > 500
    assert not set(data.train.users) & data.held_out
    assert set(data.test["held_out_users"].users) == data.held_out
    assert not set(data.test["training_users"].users) & data.held_out
    # The split is a hash of the user id: the same whatever the training seed, another with another split seed.
    assert data.held_out == {u for u in users if is_held_out(u, 0.2, 0)}
    assert data.held_out != {u for u in users if is_held_out(u, 0.2, 1)}
    # The popularity baseline counts the training users' training part only: each user's examples and first item.
    assert data.popularity.sum() == len(data.train) + len(set(data.train.users))


def test_with_vq_every_candidate_is_the_embedding_of_its_reconstruction(small_shop, tiny_vq, tmp_path):
    cfg = dataclasses.replace(TINY, vq=str(tiny_vq), steps=3)
    data, plain = prepare_reward_data(cfg, small_shop, progress=False), prepare_reward_data(TINY, small_shop, False)
    assert torch.equal(data.history_vectors, plain.history_vectors)  # histories stay the real images
    vq, ds = VQImageTokenizer.from_pretrained(tiny_vq), Dataset(small_shop)
    rows = data.pool[:256]  # the first chunk the reward reconstructs, so the same batch and the same numbers
    pixels = vq.reconstruct([ds.load_image(data.item_ids[r]) for r in rows])
    assert np.array_equal(data.candidate_vectors[rows].numpy(), embed_pixels(default_encoder("image"), pixels))
    assert not torch.allclose(data.candidate_vectors[rows], plain.candidate_vectors[rows], atol=1e-3)
    # A batch's positive and negatives alike come from the reconstructions.
    cands = np.array([[rows[0], rows[1]]])
    _, _, batch = data.batch(data.train, np.array([0]), cands)
    assert torch.equal(batch[0], data.candidate_vectors[cands[0]])
    report = train_reward(cfg, small_shop, tmp_path / "r", progress=False, checkpoint_every=0)
    assert PreferenceReward.from_pretrained(tmp_path / "r").config.candidate_vq == vq.fingerprint
    assert report["data"]["vq"]["fingerprint"] == vq.fingerprint


def test_a_stopped_run_resumes_to_the_weights_of_an_uninterrupted_one(small_shop, tmp_path):
    cfg = dataclasses.replace(TINY, steps=12)
    train_reward(cfg, small_shop, tmp_path / "whole", progress=False, checkpoint_every=0)
    with pytest.raises(TrainingStopped):
        train_reward(cfg, small_shop, tmp_path / "parts", progress=False, checkpoint_every=0, stop_after=5)
    report = train_reward(cfg, small_shop, tmp_path / "parts", progress=False, checkpoint_every=0)
    assert report["resumed_from"] == 5
    whole, parts = (PreferenceReward.from_pretrained(tmp_path / p).state_dict() for p in ("whole", "parts"))
    assert all(torch.equal(whole[k], parts[k]) for k in whole)


@pytest.mark.parametrize(
    ("key", "value"),
    [("held_out_users", 1.0), ("negatives", 0), ("hidden", 30), ("dropout", 1.0), ("max_history", 0)],
)
def test_a_bad_config_value_raises_an_error_naming_the_parameter(key, value):
    with pytest.raises(ConfigError, match=f"^{key}: "):
        RewardTrainConfig(**{key: value})
    with pytest.raises(ConfigError, match=key):
        config_from(RewardTrainConfig, overrides=[f"{key}={value}"])


def test_ranking_metrics_count_ties_as_random_order():
    top = ranking_metrics(np.array([2.0, 3.0]), np.zeros((2, 99)))
    assert top == {"auc": 1.0, "row_auc": 1.0, "hr@10": 1.0, "ndcg@10": 1.0}
    tied = ranking_metrics(np.zeros(2), np.zeros((2, 99)))
    assert tied["auc"] == 0.5 and tied["row_auc"] == 0.5 and tied["hr@10"] == pytest.approx(10 / 100)
    last = ranking_metrics(np.array([-1.0]), np.zeros((1, 99)))
    assert last["hr@10"] == 0 and last["row_auc"] == 0


def test_the_command_trains_a_reward_and_refuses_a_bad_value(small_shop, tmp_path):
    from tailorgen.cli import main

    runner = CliRunner()
    args = ["train", "reward", str(small_shop), "--out", str(tmp_path / "r"), "--steps", "3", "--threads", "1"]
    result = runner.invoke(main, [*args, "--hidden", "16", "--checkpoint-every", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["held_out"]["held_out_users"]["examples"] > 0
    assert (tmp_path / "r" / "reward.safetensors").is_file() and (tmp_path / "r" / "reward_config.json").is_file()
    result = runner.invoke(main, [*args, "--held-out-users", "2"])
    assert result.exit_code == 2 and "held_out_users" in result.output

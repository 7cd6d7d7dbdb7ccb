"""Generate, Not Recommend: the GRPO objective, early stopping on the held-out signal, and SFT then RL end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tailorgen.data import Dataset
from tailorgen.unified.gnr import GNR, GNRTrainConfig, HeldOutSignal, grpo_loss, train_gnr
from tailorgen.unified.model import UnifiedModel
from tailorgen.unified.reward import RewardTrainConfig, train_reward
from tailorgen.unified.train import UniMPTrainConfig, train_unimp


def test_grpo_pushes_up_what_beats_its_group_and_is_zero_on_policy_without_kl():
    rewards = torch.tensor([1.0, 0.0, 5.0, 5.0])  # two groups of two; the second has no signal
    lp = torch.zeros(4, 3, requires_grad=True)
    loss, kl = grpo_loss(lp, lp.detach(), lp.detach(), rewards, group_size=2, clip=0.2, kl_coef=0.1)
    assert abs(loss.item()) < 1e-6 and kl.item() == 0.0
    loss.backward()
    assert (lp.grad[0] < 0).all() and (lp.grad[1] > 0).all()  # descent raises row 0's log-probs, lowers row 1's
    assert torch.allclose(lp.grad[2:], torch.zeros(2, 3))
    # Past the clip, a better-than-group sample gets no more push; a KL term pulls back toward the reference.
    far = torch.full((4, 3), 0.5, requires_grad=True)
    grpo_loss(far, torch.zeros(4, 3), torch.zeros(4, 3), rewards, 2, 0.2, 0.0)[0].backward()
    assert torch.allclose(far.grad[0], torch.zeros(3))
    pulled = torch.full((4, 3), 0.5, requires_grad=True)
    grpo_loss(pulled, pulled.detach(), torch.zeros(4, 3), torch.zeros(4), 2, 0.2, 1.0)[0].backward()
    assert (pulled.grad > 0).all()  # above the reference: descent lowers it


def test_the_held_out_signal_keeps_the_best_weights_and_stops_after_patience():
    net = torch.nn.Linear(2, 1)
    signal = HeldOutSignal(patience=2)
    assert not signal.update(10, 0.5, net)
    best = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net.weight.add_(1.0)
    assert not signal.update(20, 0.4, net)
    assert signal.update(30, 0.3, net)
    assert signal.best_step == 10 and all(torch.equal(best[k], signal.weights[k]) for k in best)
    again = HeldOutSignal(2)
    again.load_state_dict(signal.state_dict())
    assert again.best == 0.5 and again.stale == 2


@pytest.fixture(scope="module")
def gnr_run(small_shop, tiny_vq, tmp_path_factory):
    root = tmp_path_factory.mktemp("gnr")
    unimp = dict(steps=20, batch_size=8, hidden=32, layers=2, heads=2, bpe_vocab=300, warmup_steps=5, threads=1)
    train_unimp(
        UniMPTrainConfig(**unimp, tasks=("image_generation",), vq=str(tiny_vq)),
        small_shop,
        root / "unimp",
        progress=False,
    )
    reward = RewardTrainConfig(hidden=32, negatives=8, steps=20, batch_size=16, warmup_steps=2, threads=1)
    train_reward(reward, small_shop, root / "reward", progress=False, checkpoint_every=0)
    cfg = GNRTrainConfig(
        unimp=str(root / "unimp"),
        reward=str(root / "reward"),
        sft_steps=6,
        batch_size=4,
        rl_steps=4,
        users_per_step=2,
        group_size=2,
        eval_every=2,
        eval_users=4,
        eval_images=1,
        patience=5,
        threads=1,
    )
    calls = []

    def monitor(step, users, images):
        calls.append((step, list(users), len(images)))
        return {"monitored": float(step)}

    report = train_gnr(cfg, small_shop, root / "gnr", progress=False, checkpoint_every=0, monitor=monitor)
    return root, cfg, report, calls, monitor


def test_sft_then_rl_writes_both_models_and_logs_the_held_out_signal(gnr_run, small_shop):
    root, cfg, report, calls, _ = gnr_run
    assert (root / "gnr" / "sft" / "training_report.json").exists() and (root / "gnr" / "rl" / "lm").is_dir()
    assert [e["step"] for e in report["evaluations"]] == [2, 4] and report["best_step"] in (2, 4)
    assert all("held_out_reward" in e and e["monitored"] == e["step"] for e in report["evaluations"])
    assert [c[0] for c in calls] == [2, 4] and all(n == 4 for *_, n in calls)
    assert len(report["reward_curve"]) == 4 and len(report["kl_curve"]) == 4
    sft = UnifiedModel.from_pretrained(root / "gnr" / "sft").state_dict()
    rl = UnifiedModel.from_pretrained(root / "gnr" / "rl").state_dict()
    assert not all(torch.equal(sft[k], rl[k]) for k in sft)  # RL moved the policy


def test_the_held_out_users_are_the_ones_the_reward_never_saw(gnr_run, small_shop):
    from tailorgen.unified.gnr import prepare_gnr
    from tailorgen.unified.reward import is_held_out

    root, cfg, *_ = gnr_run
    data = prepare_gnr(cfg, small_shop, UnifiedModel.from_pretrained(cfg.unimp), progress=False)
    assert data.held_out_users and data.rl_users and not set(data.held_out_users) & set(data.rl_users)
    assert all(is_held_out(u, 0.2, 0) for u in data.held_out_users)
    assert {ex.task for ex in data.sft} == {"next_item"} and all(ex.user for ex in data.sft)


def test_generated_items_have_images_and_names_and_sft_is_not_redone(gnr_run, small_shop):
    root, cfg, _, _, monitor = gnr_run
    gnr = GNR(Dataset(small_shop), root / "gnr")
    user = sorted(gnr.histories)[0]
    [made] = gnr.generate([user], n=2, seed=1)
    assert len(made["images"]) == 2 and made["images"][0].size == (32, 32) and len(made["titles"]) == 2
    assert made["codes"].shape == (2, 64) and all("<" not in t for t in made["titles"])
    before = (root / "gnr" / "sft" / "training_report.json").stat().st_mtime
    train_gnr(cfg, small_shop, root / "gnr", progress=False, checkpoint_every=0)
    assert (root / "gnr" / "sft" / "training_report.json").stat().st_mtime == before
    # Best of 4: the 2 of the same 4 draws that the reward rates highest, best first.
    [four] = gnr.generate([user], n=4, seed=1)
    [best] = gnr.generate([user], n=2, seed=1, best_of=4)
    order = np.argsort(-gnr.reward_scores(user, gnr.decoder.pixels(four["codes"])), kind="stable")[:2]
    assert torch.equal(best["codes"], four["codes"][torch.from_numpy(order.copy())])
    with pytest.raises(ValueError, match="best_of"):
        gnr.generate([user], n=2, best_of=1)


def test_an_rl_setting_changed_keeps_the_sft_model(gnr_run, small_shop, tmp_path):
    import dataclasses
    import json
    import shutil

    from tailorgen.unified.gnr import sft_done

    root, cfg, _, _, _ = gnr_run
    sft = root / "gnr" / "sft"
    assert sft_done(sft, dataclasses.replace(cfg, group_size=3, rl_lr=1e-4, eval_images=2), small_shop)
    assert not sft_done(sft, dataclasses.replace(cfg, sft_steps=7), small_shop)
    assert not sft_done(sft, dataclasses.replace(cfg, guidance=2.0), small_shop)  # its samples use it
    shutil.copytree(sft, tmp_path / "g" / "sft")
    # A report written before an RL setting existed (its default was used) still matches.
    report_file = tmp_path / "g" / "sft" / "training_report.json"
    old = json.loads(report_file.read_text())
    del old["config"]["eval_images"]
    report_file.write_text(json.dumps(old))
    assert sft_done(tmp_path / "g" / "sft", dataclasses.replace(cfg, eval_images=3), small_shop)
    before = (tmp_path / "g" / "sft" / "training_report.json").stat().st_mtime
    calls = []
    changed = dataclasses.replace(cfg, group_size=3, rl_steps=2, eval_every=2, eval_images=2)
    report = train_gnr(changed, small_shop, tmp_path / "g", progress=False, checkpoint_every=0,
                       monitor=lambda step, users, images: calls.append(len(images)) or {})  # fmt: skip
    assert (tmp_path / "g" / "sft" / "training_report.json").stat().st_mtime == before
    assert report["config"]["group_size"] == 3 and calls == [report["held_out_images"]]
    assert report["held_out_images"] == 2 * report["held_out_users"] > 0


def test_cli_trains_and_generates(gnr_run, small_shop, tmp_path):
    import json

    from click.testing import CliRunner

    from tailorgen.cli import main

    root, cfg, *_ = gnr_run
    args = [
        "train",
        "gnr",
        str(small_shop),
        "--from",
        cfg.unimp,
        "--reward",
        cfg.reward,
        "--out",
        str(root / "gnr"),
        "--sft-steps",
        "6",
        "--batch-size",
        "4",
        "--rl-steps",
        "4",
        "--users-per-step",
        "2",
        "--group-size",
        "2",
        "--eval-every",
        "2",
        "--eval-users",
        "4",
        "--patience",
        "5",
        "--threads",
        "1",
        "--checkpoint-every",
        "0",
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    user = sorted(Dataset(small_shop).user_histories())[0]
    res = CliRunner().invoke(
        main,
        [
            "gnr",
            "generate",
            str(small_shop),
            "--user",
            user,
            "--model",
            str(root / "gnr"),
            "--n",
            "2",
            "--best-of",
            "3",
            "--out",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "gnr.json").read_text())
    assert len(record["titles"]) == 2 and all(__import__("os").path.exists(p) for p in record["images"])
    assert record["best_of"] == 3
    res = CliRunner().invoke(main, ["gnr", "generate", str(small_shop), "--user", user, "--model", str(root / "gnr"),
                                    "--n", "2", "--best-of", "1"])  # fmt: skip
    assert res.exit_code == 2 and "--best-of" in res.output and "at least -n (2)" in res.output
    res = CliRunner().invoke(
        main, ["train", "gnr", str(small_shop), "--reward", cfg.reward, "--out", str(tmp_path / "x")]
    )
    assert res.exit_code == 2 and "unimp" in res.output


def test_early_stopping_counts_and_logs_the_step_that_decided_it(gnr_run, small_shop, tmp_path):
    import dataclasses
    import shutil

    root, cfg, *_ = gnr_run
    shutil.copytree(root / "gnr" / "sft", tmp_path / "g" / "sft")
    impatient = dataclasses.replace(cfg, rl_steps=6, eval_every=1, patience=1)
    report = train_gnr(impatient, small_shop, tmp_path / "g", progress=False, checkpoint_every=0)
    assert report["stopped_at"] == report["evaluations"][-1]["step"] == len(report["reward_curve"])
    assert len(report["kl_curve"]) == report["stopped_at"]
    with pytest.raises(ValueError, match="rl_lr"):
        dataclasses.replace(cfg, rl_lr=0.0)

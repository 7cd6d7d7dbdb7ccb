"""TrainingRun on a small loop that draws from every source a real trainer does.

The loop shuffles epochs with a numpy Generator (EpochOrder), draws per-step noise from that
Generator and from torch's global generator, uses dropout, AdamW with a warm-up/cosine rate and
a diffusers EMA copy: the generator trainer's ingredients, at a size that trains in milliseconds.
"""

import json
import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers.training_utils import EMAModel
from torch import nn

from tailorgen.training import (
    EpochOrder,
    TrainingError,
    TrainingRun,
    TrainingStopped,
    set_lr,
    setup,
    warmup_cosine,
)


@dataclass
class LoopConfig:
    seed: int = 0
    steps: int = 12
    lr: float = 1e-2


class Killed(Exception):
    """Stands for the process being killed in the middle of a step."""


def train_loop(out, cfg=LoopConfig(), checkpoint_every=4, kill_at=None, stop_after=None, keep=False):
    setup(cfg.seed, torch.get_num_threads(), "cpu")
    rng = np.random.default_rng(cfg.seed)
    x = torch.randn(64, 8)
    y = x @ torch.randn(8, 1)
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.2), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    ema = EMAModel(model.parameters(), decay=0.9, use_ema_warmup=True, power=2 / 3)
    order = EpochOrder(len(x), 16, rng.permutation)
    run = TrainingRun(
        out,
        cfg,
        cfg.steps,
        seed=cfg.seed,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep,
        stop_after=stop_after,
        progress=False,
        log_every=5,
    )
    run.track(model=model, optimizer=opt, ema=ema, order=order, rng=rng)
    for step in run:
        if step == kill_at:
            raise Killed(step)
        idx = order.batch(step)
        target = y[idx] + 0.05 * torch.from_numpy(rng.normal(size=(16, 1))).float() + 0.05 * torch.randn(16, 1)
        set_lr(opt, warmup_cosine(step, cfg.lr, 3, run.steps))
        loss = F.mse_loss(model(x[idx]), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.step(model.parameters())
        run.log(loss, scale=float(target.std()))
    ema.copy_to(model.parameters())
    return model, run


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_a_killed_run_resumes_from_its_last_checkpoint_to_the_same_weights(tmp_path):
    full, full_run = train_loop(tmp_path / "full")
    with pytest.raises(Killed):
        train_loop(tmp_path / "killed", kill_at=7)  # after the checkpoint at step 4, before the one at 8
    assert [p.name for p in (tmp_path / "killed" / "checkpoints").iterdir()] == ["step-00000004.pt"]
    resumed, resumed_run = train_loop(tmp_path / "killed")
    assert resumed_run.resumed_from == 4 and full_run.resumed_from is None
    torch.testing.assert_close(weights(resumed), weights(full), rtol=0, atol=0)
    assert resumed_run.history == full_run.history and len(full_run.history["loss"]) == 12
    other, _ = train_loop(tmp_path / "other", cfg=LoopConfig(seed=1))
    assert not torch.equal(weights(other)["0.weight"], weights(full)["0.weight"])


def test_stop_after_ends_the_session_with_a_checkpoint_and_the_next_one_finishes(tmp_path):
    full, _ = train_loop(tmp_path / "full", checkpoint_every=0)
    with pytest.raises(TrainingStopped, match="after step 5 of 12"):
        train_loop(tmp_path / "boxed", checkpoint_every=0, stop_after=5)
    with pytest.raises(TrainingStopped, match="after step 10 of 12"):
        train_loop(tmp_path / "boxed", checkpoint_every=0, stop_after=5)
    resumed, run = train_loop(tmp_path / "boxed", checkpoint_every=0, stop_after=5)
    assert run.resumed_from == 10
    torch.testing.assert_close(weights(resumed), weights(full), rtol=0, atol=0)


def test_stop_ends_the_run_after_the_current_step_counted_and_logged(tmp_path):
    run = TrainingRun(tmp_path / "out", LoopConfig(), 12, seed=0, checkpoint_every=0, progress=False, log_every=5)
    for step in run:
        run.log(float(step), reward=10.0 * step)
        if step == 6:  # early stopping decided at the 7th step
            run.stop()
    assert run.step == 7
    assert run.curve(1) == [float(s) for s in range(7)] and run.curve(1, "reward")[-1] == 60.0
    with run.output() as tmp:
        report = run.write_report(tmp, what="stopped early", curve_every=1)
    assert report["steps"] == 12 and len(report["loss_curve"]) == 7


def test_a_checkpoint_holds_every_tracked_state_the_rng_and_the_history(tmp_path):
    with pytest.raises(Killed):
        train_loop(tmp_path, kill_at=9)
    ckpt = torch.load(tmp_path / "checkpoints" / "step-00000008.pt", weights_only=True)
    assert ckpt["step"] == 8 and len(ckpt["history"]["loss"]) == 8 and len(ckpt["history"]["scale"]) == 8
    assert set(ckpt["state"]) == {"model", "optimizer", "ema", "order", "rng"}
    assert set(ckpt["rng"]) >= {"torch", "python", "numpy"}
    assert ckpt["state"]["order"]["epoch"] == 1 and len(ckpt["state"]["order"]["order"]) == 64


def test_a_checkpoint_write_that_fails_leaves_no_partial_file_and_the_previous_checkpoint(tmp_path, monkeypatch):
    real_replace = os.replace

    def crash_on_second_checkpoint(src, dst):
        if str(dst).endswith("step-00000008.pt"):
            raise OSError("disk gone")  # the temp file is written, the rename never happens
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_second_checkpoint)
    with pytest.raises(OSError, match="disk gone"):
        train_loop(tmp_path / "out")
    monkeypatch.setattr(os, "replace", real_replace)
    assert os.listdir(tmp_path / "out" / "checkpoints") == ["step-00000004.pt"]
    resumed, run = train_loop(tmp_path / "out")
    full, _ = train_loop(tmp_path / "full")
    assert run.resumed_from == 4
    torch.testing.assert_close(weights(resumed), weights(full), rtol=0, atol=0)


def test_a_checkpoint_of_another_config_is_refused(tmp_path):
    with pytest.raises(Killed):
        train_loop(tmp_path, kill_at=5)
    with pytest.raises(TrainingError, match="another config.*delete"):
        train_loop(tmp_path, cfg=LoopConfig(lr=2e-2))


def test_the_final_folder_replaces_out_and_drops_the_checkpoints_unless_kept(tmp_path):
    for keep in (False, True):
        out = tmp_path / f"keep-{keep}"
        with pytest.raises(Killed):
            train_loop(out, kill_at=9)
        model, run = train_loop(out, keep=keep)
        with run.output() as tmp:
            torch.save(model.state_dict(), tmp / "model.pt")
            run.write_report(tmp, what="a test loop", curve_every=4, metrics={"mse": 0.1})
        assert (out / "model.pt").exists()
        assert (out / "checkpoints").exists() == keep
    report = json.loads((tmp_path / "keep-True" / "training_report.json").read_text())
    assert {"what", "created", "config", "seed", "versions", "data", "device", "train_seconds", "steps"} <= set(report)
    assert (
        report["resumed_from"] == 8
        and report["steps"] == 12
        and report["config"] == {"seed": 0, "steps": 12, "lr": 0.01}
    )
    assert len(report["loss_curve"]) == 3 and report["metrics"] == {"mse": 0.1} and "torch" in report["versions"]


def test_the_final_folder_is_not_written_when_its_block_fails(tmp_path):
    model, run = train_loop(tmp_path / "out")
    with pytest.raises(RuntimeError), run.output() as tmp:
        (tmp / "half").write_text("")
        raise RuntimeError("evaluation failed")
    assert not (tmp_path / "out" / "half").exists()


def test_only_checkpointable_objects_can_be_tracked(tmp_path):
    run = TrainingRun(tmp_path, LoopConfig(), 3, seed=0, progress=False)
    with pytest.raises(TrainingError, match="thing: a list cannot be checkpointed; allowed"):
        run.track(thing=[1, 2])
    with pytest.raises(TrainingError, match="checkpoint_every"):
        TrainingRun(tmp_path, LoopConfig(), 3, seed=0, checkpoint_every=-1)


def test_epoch_order_shuffles_each_epoch_and_drops_the_remainder():
    order = EpochOrder(10, 3, np.random.default_rng(0).permutation)
    first = torch.cat([order.batch(s) for s in range(3)])
    second = torch.cat([order.batch(s) for s in range(3, 6)])
    assert order.steps_per_epoch == 3 and len(set(first.tolist())) == 9 and not torch.equal(first, second)
    with pytest.raises(TrainingError, match="batch_size"):
        EpochOrder(4, 5, np.random.default_rng(0).permutation)


def test_a_run_never_writes_into_a_folder_that_is_not_a_training_output(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(TrainingError, match="out: .* holds neither a trained model"):
        train_loop(tmp_path)
    assert os.listdir(tmp_path) == ["notes.txt"]

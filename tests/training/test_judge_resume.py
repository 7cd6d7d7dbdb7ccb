"""The real judge trainer, killed mid-run and started again, ends with the weights of an uninterrupted run."""

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import tailorgen.evaluation.judge as judge_module
from tailorgen.cli import main
from tailorgen.evaluation.judge import JudgeTrainConfig, train_judge
from tailorgen.training import TrainingError

# 5 steps an epoch, 10 in all: seconds, with batch norm, dropout, a one-cycle schedule and augmentation.
TINY = JudgeTrainConfig(train_items=160, eval_items=40, epochs=2, width=4, batch_size=32)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("judge-work")  # the shops, built by the first run and reused


@pytest.fixture(scope="module")
def uninterrupted(work, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "judge"
    report = train_judge(TINY, out, work, progress=False, checkpoint_every=3)
    return load_file(out / "model.safetensors"), report


class Killed(Exception):
    pass


def kill_at_step(monkeypatch, step):
    """The trainer's augmentation runs once a step: make its call of step ``step`` never return."""
    calls, augment = [], judge_module.augment

    def augment_or_die(x, gen):
        calls.append(1)
        if len(calls) > step:
            raise Killed(step)
        return augment(x, gen)

    monkeypatch.setattr(judge_module, "augment", augment_or_die)


def test_a_killed_judge_training_resumes_to_the_uninterrupted_weights(work, uninterrupted, tmp_path, monkeypatch):
    weights, report = uninterrupted
    assert report["resumed_from"] is None and report["steps"] == 10
    kill_at_step(monkeypatch, 7)  # checkpoints at 3 and 6: the run loses step 6 and goes on from 6
    with pytest.raises(Killed):
        train_judge(TINY, tmp_path / "judge", work, progress=False, checkpoint_every=3)
    assert [p.name for p in (tmp_path / "judge" / "checkpoints").iterdir()] == ["step-00000006.pt"]
    monkeypatch.undo()
    resumed = train_judge(TINY, tmp_path / "judge", work, progress=False, checkpoint_every=3)
    assert resumed["resumed_from"] == 6 and not (tmp_path / "judge" / "checkpoints").exists()
    again = load_file(tmp_path / "judge" / "model.safetensors")
    assert set(again) == set(weights)
    for name in weights:
        torch.testing.assert_close(again[name], weights[name], rtol=1e-6, atol=1e-7)
    assert resumed["loss_curve"] == pytest.approx(report["loss_curve"], rel=1e-6)
    assert resumed["held_out"]["accuracy"] == report["held_out"]["accuracy"]


def test_another_seed_trains_other_weights(work, uninterrupted, tmp_path):
    train_judge(JudgeTrainConfig(**{**TINY.__dict__, "seed": 2}), tmp_path / "judge", work, progress=False)
    other = load_file(tmp_path / "judge" / "model.safetensors")
    assert not torch.allclose(other["trunk.0.weight"], uninterrupted[0]["trunk.0.weight"])


def test_a_checkpoint_is_not_resumed_by_another_config(work, tmp_path, monkeypatch):
    kill_at_step(monkeypatch, 4)
    with pytest.raises(Killed):
        train_judge(TINY, tmp_path / "judge", work, progress=False, checkpoint_every=3)
    monkeypatch.undo()
    with pytest.raises(TrainingError, match="another config"):
        train_judge(JudgeTrainConfig(**{**TINY.__dict__, "lr": 1e-3}), tmp_path / "judge", work, progress=False)


def test_the_report_records_config_seed_data_device_and_time(uninterrupted):
    report = uninterrupted[1]
    assert report["config"]["seed"] == report["seed"] == 1 and report["device"] == "cpu"
    assert set(report["data"]) == {"train", "eval"}
    hashes = report["data"]["train"]["hashes"]
    assert {"items.parquet", "interactions.parquet", "images/"} <= set(hashes) and all(
        h.startswith("sha256:") for h in hashes.values()
    )
    assert len(report["loss_curve"]) == 2 and report["train_seconds"] > 0 and "torch" in report["versions"]


def test_train_judge_command_builds_its_config_from_a_file_options_and_set(work, tmp_path):
    config = tmp_path / "judge.toml"
    config.write_text('train_items = 160\neval_items = 40\nepochs = 3\nwidth = 4\nbatch_size = 64\nlr = "0.01"\n')
    args = ["train", "judge", "--out", str(tmp_path / "j"), "--work-dir", str(work), "--config", str(config)]
    res = CliRunner().invoke(main, [*args, "--epochs", "2", "--set", "batch_size=32", "--set", "lr=3e-3"])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "j" / "training_report.json").read_text())
    assert saved["config"] == TINY.__dict__  # the file, then --epochs, then --set
    assert "held_out" in json.loads(res.stdout)


def test_train_judge_command_refuses_bad_keys_values_and_devices_before_training(tmp_path):
    out = tmp_path / "j"
    runner = CliRunner()
    res = runner.invoke(main, ["train", "judge", "--out", str(out), "--set", "epoch=2"])
    assert res.exit_code == 2 and "no key 'epoch' (did you mean 'epochs'?); allowed:" in res.output
    res = runner.invoke(main, ["train", "judge", "--out", str(out), "--set", "width=wide"])
    assert res.exit_code == 2 and "--set width=wide: width must be an integer, got 'wide'" in res.output
    res = runner.invoke(main, ["train", "judge", "--out", str(out), "--device", "tpu"])
    assert res.exit_code == 2 and "device: 'tpu'" in res.output and "allowed:" in res.output
    assert not out.exists()

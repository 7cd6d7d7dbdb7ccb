import json

import pytest
from click.testing import CliRunner

from tailorgen.cli import main
from tailorgen.data import Dataset
from tailorgen.evaluation.judge import Judge, judge_accuracy


def test_training_writes_a_loadable_checkpoint_and_a_report(tiny_judge):
    path, report = tiny_judge
    assert (path / "model.safetensors").exists() and (path / "config.json").exists()
    saved = json.loads((path / "training_report.json").read_text())
    assert saved["config"]["train_seed"] != saved["config"]["eval_seed"]
    acc = saved["held_out"]["accuracy"]
    assert set(acc) == {"category", "colour", "pattern", "secondary_colour"}
    assert all(0 <= v <= 1 for v in acc.values())
    # Three short epochs on 1500 items already beat chance on colour (1/12) by a wide margin.
    assert acc["colour"] > 0.3


def test_read_returns_known_values(tiny_judge, small_shop):
    judge = Judge(tiny_judge[0])
    ds = Dataset(small_shop)
    reads = judge.read([ds.load_image("i000"), ds.load_image("i001")])
    assert len(reads) == 2 and set(reads[0]) == {"category", "colour", "pattern", "secondary_colour"}


def test_judge_cli_prints_table_and_json(tiny_judge, small_shop):
    runner = CliRunner()
    res = runner.invoke(main, ["judge", str(small_shop), "--judge", str(tiny_judge[0]), "--json", "--limit", "50"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["items"] == 50 and set(data["accuracy"]) == {"category", "colour", "pattern", "secondary_colour"}
    res = runner.invoke(main, ["judge", str(small_shop), "--judge", str(tiny_judge[0]), "--limit", "20"])
    assert "colour" in res.output and "%" in res.output


def test_judge_needs_ground_truth(tiny_judge, tmp_path):
    from tailorgen.data import DatasetWriter

    with DatasetWriter(tmp_path / "plain", source={}) as w:
        w.set_tables(items=[{"item_id": "a", "title": "A"}], interactions=[])
    with pytest.raises(FileNotFoundError, match="no ground truth"):
        judge_accuracy(Judge(tiny_judge[0]), tmp_path / "plain")


def test_shipped_judge_reads_an_unseen_shop_accurately(small_shop):
    """The shipped checkpoint on a shop seed it never saw (7).

    The issue's target is 95% on category and colour. Colour meets it (100% here, 99.8% on the
    3,000-item held-out shop); category does not yet (92.5% here, 91.4% held out: shirts,
    pullovers and coats), see docs/benchmarks.md. These bars guard the shipped checkpoint
    against regressions; raise the category bar when a better judge ships.
    """
    result = judge_accuracy(Judge(), small_shop)
    assert result["accuracy"]["colour"] >= 0.95, result
    assert result["accuracy"]["category"] >= 0.90, result
    assert result["accuracy"]["pattern"] >= 0.95, result

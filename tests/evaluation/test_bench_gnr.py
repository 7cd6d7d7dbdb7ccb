"""`tailorgen bench gnr` end to end on a small shop, with tiny models: the record's layout, controls and curves."""

from __future__ import annotations

from click.testing import CliRunner

from tailorgen.cli import main
from tailorgen.evaluation.runner import read_record

UNIMP = ["steps=12", "batch_size=4", "hidden=32", "layers=1", "heads=2", "bpe_vocab=300", "threads=1"]
REWARD = ["hidden=32", "negatives=8", "steps=10", "batch_size=16", "warmup_steps=2", "threads=1"]
GNR = ["sft_steps=4", "batch_size=4", "rl_steps=2", "users_per_step=2", "group_size=2", "eval_every=1",
       "eval_users=4", "threads=1"]  # fmt: skip


def test_bench_gnr_writes_the_common_record_with_its_controls(small_shop, tiny_vq, tmp_path):
    out = tmp_path / "out"
    args = ["bench", "gnr", "--dataset", str(small_shop), "--work-dir", str(tmp_path / "work"), "--out", str(out)]
    args += ["--users", "6", "--n", "2", "--unimp-train", ",".join([*UNIMP, f"vq={tiny_vq}"])]
    args += ["--reward-train", ",".join(REWARD), "--gnr-train", ",".join(GNR)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    record = read_record(out)
    results = record["results"]["next_item"]
    assert set(results) == {
        "gnr",
        "gnr-sft",
        "gnr-reranked",
        "unimp-top1",
        "unimp-top4",
        "sasrec-top1",
        "best-catalog",
        "mismatched",
    }
    assert results["gnr"]["future_utility"]["n"] == 6 and 0 <= results["gnr"]["validity"]["mean"] <= 1
    # The best catalog item is the oracle's argmax over true attributes: what the judge reads of it scores high.
    assert results["best-catalog"]["future_utility"]["mean"] > results["unimp-top1"]["future_utility"]["mean"]
    paired = record["paired"]["next_item"]
    assert "gnr vs best-catalog" in paired["future_utility"] and "gnr future vs past" in paired["future_similarity"]
    assert "gnr-reranked vs unimp-top1" in paired["future_utility"]
    rl = record["extras"]["rl"]
    assert [e["step"] for e in rl["evaluations"]] == [1, 2]
    assert all({"held_out_reward", "judge_validity", "oracle_utility"} <= set(e) for e in rl["evaluations"])
    assert (out / "gnr_rl_curves.png").exists() and (out / "report.html").exists()

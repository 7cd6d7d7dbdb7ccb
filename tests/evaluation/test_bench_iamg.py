import json

import pytest
from click.testing import CliRunner

from browser import assert_page_renders, render
from tailorgen.cli import main
from tailorgen.evaluation.bench_iamg import COMPARED, TASK, IAMGBenchConfig, format_table, run_iamg_benchmark


@pytest.fixture(scope="module")
def bench(tiny_generator, tiny_judge, tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    cfg = IAMGBenchConfig(
        seed=11,
        users=6,
        shop_items=200,
        shop_users=40,
        steps=2,
        latency_requests=2,
        n_boot=200,
        diversity_users=3,
        diversity_n=2,
        quality_reference=60,
    )
    result = run_iamg_benchmark(cfg, root / "work", root / "out", tiny_generator[0], tiny_judge[0], progress=False)
    return result, root


def test_every_method_gets_every_metric_with_an_interval(bench):
    result, _ = bench
    task, results = result["tasks"][TASK], result["results"][TASK]
    assert task["methods"] == list(COMPARED) and len(task["units"]["user_id"]) == 6
    for method in COMPARED:
        for metric in ("gain_intended", "gain_mismatched", "fidelity", "history_similarity", "text_alignment"):
            s = results[method][metric]
            assert s["n"] == 6 and s["ci_low"] <= s["mean"] <= s["ci_high"]
    # The original item is the baseline of the gain, so its own gain is exactly zero.
    assert results["original"]["gain_intended"]["mean"] == 0.0
    assert results["original"]["novelty"]["mean"] == 0.0
    assert set(result["paired"][TASK]["gain_intended"]) == {
        "full vs original",
        "full vs plain",
        "full vs rewrite",
        "full vs retrieval",
        "full intended vs mismatched",
    }
    lat = result["extras"]["latency_seconds"]
    assert lat["total"] > 0 and abs(sum(lat["share"].values()) - 1) < 1e-9


def test_diversity_per_generated_method_and_image_quality_with_the_original_as_floor(bench):
    result, _ = bench
    assert "diversity" not in result["results"][TASK]["original"]
    for method in COMPARED[1:]:
        s = result["results"][TASK][method]["diversity"]
        assert s["n"] == 3 and 0.0 <= s["ci_low"] <= s["mean"] <= s["ci_high"] <= 2.0
    quality = result["extras"]["image_quality"]
    assert quality["reference_images"] == 60 and set(quality["methods"]) == set(COMPARED)
    # Catalog images against other catalog images vs. a 2-step tiny generator's output: the
    # originals must be far closer to the catalog, whatever the random weights.
    for method in COMPARED[1:]:
        assert quality["methods"]["original"]["kid"] < quality["methods"][method]["kid"]
    # 6 images cannot fit a covariance in 384 dimensions: FID is withheld rather than reported.
    assert quality["feature_dim"] > 6 and all(q["fid"] is None for q in quality["methods"].values())
    assert "KID" in format_table(result)


def test_writes_per_user_numbers_and_an_image_grid(bench):
    _, root = bench
    saved = json.loads((root / "out" / "iamg_benchmark.json").read_text())
    assert len(saved["tasks"][TASK]["units"]["user_id"]) == 6
    assert len(saved["per_unit"][TASK]["full"]["gain_intended"]) == 6
    assert (root / "out" / "iamg_examples.png").exists()


def test_same_seed_same_numbers(bench, tiny_generator, tiny_judge):
    result, root = bench
    cfg = IAMGBenchConfig(**result["config"])
    again = run_iamg_benchmark(cfg, root / "work", None, tiny_generator[0], tiny_judge[0], progress=False)
    assert again["results"] == result["results"]


def test_table_and_cli(bench, tiny_generator, tmp_path):
    result, root = bench
    table = format_table(result)
    assert "full" in table and "paired tests" in table and "latency" in table
    res = CliRunner().invoke(main, ["bench", "iamg", "--help"])
    assert res.exit_code == 0 and "--seed" in res.output and "--users" in res.output


def test_eval_report_from_benchmark_runs(bench, tmp_path):
    _, root = bench
    res = CliRunner().invoke(main, ["eval", str(root / "out"), str(root / "out"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "rep" / "report.html").read_text()
    assert (
        page.count("<table>") == 8 and page.count("data:image/png;base64,") == 2 + 7
    )  # grids, then one plot per metric
    numbers = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert len(numbers["runs"]) == 2 and numbers["runs"][0]["results"][TASK]["full"]["fidelity"]["n"] == 6
    assert numbers["runs"][0]["extras"]["image_quality"]["methods"]["full"]["kid"] is not None
    # Per user: the paired metric of every method, matching the benchmark's own per-unit numbers.
    saved = json.loads((root / "out" / "iamg_benchmark.json").read_text())
    user_ids, saved = saved["tasks"][TASK]["units"]["user_id"], saved["per_unit"][TASK]
    rows = numbers["runs"][0]["per_user"][TASK]
    assert set(rows) == set(user_ids) and "Per user: personalization gain" in page
    for u, gain in zip(user_ids, saved["full"]["gain_intended"]):
        assert rows[u]["items"] == 1 and rows[u]["full"] == pytest.approx(gain)
    res = CliRunner().invoke(main, ["eval", str(tmp_path), "--out", str(tmp_path / "rep2")])
    assert res.exit_code != 0 and "iamg_benchmark.json" in str(res.exception or res.output)


def test_the_report_renders_in_a_browser(bench, browser, tmp_path):
    _, root = bench
    res = CliRunner().invoke(main, ["eval", str(root / "out"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    page = render(browser, tmp_path / "rep" / "report.html", selectors=("table", "table tr"))
    assert_page_renders(page)
    assert page.title == "tailorgen evaluation report" and len(page.images) == 1 + 7  # grid, plots
    assert page.counts["table"] >= 4 and page.counts["table tr"] > 6 + 5


def test_shop_benchmark_runs_each_seed_and_says_which_are_held_out(bench, tiny_generator, tiny_judge, tmp_path):
    from tailorgen.evaluation.bench_shop import HELD_OUT_SEEDS, run_shop_benchmark

    result, root = bench
    base = IAMGBenchConfig(**result["config"])
    seeds = [11, HELD_OUT_SEEDS[0]]
    results, numbers = run_shop_benchmark(
        seeds, tmp_path, 6, root / "work", tiny_generator[0], tiny_judge[0], progress=False, base=base
    )
    assert [r["config"]["seed"] for r in results] == seeds
    # The seed already benchmarked gives the same numbers: the shop is reused, the draws are fixed.
    assert results[0]["results"] == result["results"]
    assert (tmp_path / f"iamg-seed{HELD_OUT_SEEDS[0]}" / "iamg_benchmark.json").exists()
    page = (tmp_path / "report.html").read_text()
    assert f"held-out scenario seeds {HELD_OUT_SEEDS[0]}" in page and "shop seeds 11" in page
    assert numbers["note"] in page and len(numbers["runs"]) == 2
    res = CliRunner().invoke(main, ["bench", "shop", "--help"])
    assert res.exit_code == 0 and "--held-out" in res.output


def test_on_a_dataset_without_ground_truth_only_embedding_metrics_are_reported(bench, tiny_generator, tmp_path):
    import shutil

    from tailorgen.evaluation.bench_iamg import NEEDS_GROUND_TRUTH

    result, root = bench
    real = tmp_path / "catalog"
    shutil.copytree(result["dataset"], real)
    shutil.rmtree(real / "truth")  # what a real catalog looks like: no oracle, no true attributes
    cfg = IAMGBenchConfig(**result["config"])
    out = run_iamg_benchmark(cfg, None, tmp_path / "out", tiny_generator[0], None, progress=False, dataset=real)
    not_computed = out["extras"]["not_computed"]
    assert set(not_computed) == set(NEEDS_GROUND_TRUTH) == {"gain_intended", "gain_mismatched", "fidelity"}
    assert set(out["results"][TASK]["full"]) == {"history_similarity", "text_alignment", "novelty", "diversity"}
    primary = out["tasks"][TASK]["primary_metric"]
    assert primary == "history_similarity" and "full intended vs mismatched" not in out["paired"][TASK][primary]
    # The embedding metrics do not depend on ground truth: the same numbers as on the shop.
    assert out["results"][TASK]["full"]["history_similarity"] == result["results"][TASK]["full"]["history_similarity"]
    table = format_table(out)
    assert "n/a fidelity: needs the item's true category" in table
    res = CliRunner().invoke(main, ["eval", str(tmp_path / "out"), str(root / "out"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert "n/a gain_intended" in (tmp_path / "rep" / "report.html").read_text()


def test_runs_written_before_the_common_layout_read_the_same(bench, tmp_path):
    """A record in the layout of the runs docs/benchmarks.md cites (summary, paired_tests, ...) is read
    into the common layout with the same numbers: the same text table, and `tailorgen eval` takes it."""
    from tailorgen.evaluation.iamg_legacy import upgrade_legacy_record

    result, root = bench
    task, extras = result["tasks"][TASK], result["extras"]
    primary = task["primary_metric"]
    old_names = {"full intended vs mismatched": "full_intended_vs_mismatched"}
    old = {
        "what": result["what"],
        "config": result["config"],
        "shop": result["dataset"],
        "users": len(task["units"]["user_id"]),
        "methods": task["methods"],
        "summary": result["results"][TASK],
        "paired_tests": {
            old_names.get(key, key.replace(" ", "_")): {
                "n": t["n"],
                "mean_diff": t["diff"],
                "ci_low": t["ci_low"],
                "ci_high": t["ci_high"],
                "wilcoxon_p": t["p"],
                "ttest_p": t["ttest_p"],
            }
            for key, t in result["paired"][TASK][primary].items()
        },
        "paired_metric": primary,
        "checkpoints": result["checkpoints"],
        "seconds": result["seconds"],
        "per_unit": task["units"] | result["per_unit"][TASK],
    } | {k: extras[k] for k in ("not_computed", "image_quality", "latency_seconds")}
    upgraded = upgrade_legacy_record(old)
    assert format_table(upgraded) == format_table(result)
    assert upgraded["results"] == result["results"] and upgraded["per_unit"] == result["per_unit"]
    assert upgraded["paired"][TASK][primary] == result["paired"][TASK][primary]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "iamg_benchmark.json").write_text(json.dumps(old))
    res = CliRunner().invoke(main, ["eval", str(tmp_path / "old"), str(root / "out"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    with pytest.raises(ValueError, match="neither the common layout nor the old one"):
        upgrade_legacy_record({"config": {}})

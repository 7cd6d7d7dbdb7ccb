import json

import pytest
from click.testing import CliRunner

from browser import assert_page_renders, render
from tailorgen.cli import main
from tailorgen.evaluation.bench_iamg import COMPARED, IAMGBenchConfig, format_table, run_iamg_benchmark


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
    assert result["methods"] == list(COMPARED) and result["users"] == 6
    for method in COMPARED:
        for metric in ("gain_intended", "gain_mismatched", "fidelity", "history_similarity", "text_alignment"):
            s = result["summary"][method][metric]
            assert s["n"] == 6 and s["ci_low"] <= s["mean"] <= s["ci_high"]
    # The original item is the baseline of the gain, so its own gain is exactly zero.
    assert result["summary"]["original"]["gain_intended"]["mean"] == 0.0
    assert result["summary"]["original"]["novelty"]["mean"] == 0.0
    assert set(result["paired_tests"]) == {
        "full_vs_original",
        "full_vs_plain",
        "full_vs_rewrite",
        "full_vs_retrieval",
        "full_intended_vs_mismatched",
    }
    lat = result["latency_seconds"]
    assert lat["total"] > 0 and abs(sum(lat["share"].values()) - 1) < 1e-9


def test_diversity_per_generated_method_and_image_quality_with_the_original_as_floor(bench):
    result, _ = bench
    assert "diversity" not in result["summary"]["original"]
    for method in COMPARED[1:]:
        s = result["summary"][method]["diversity"]
        assert s["n"] == 3 and 0.0 <= s["ci_low"] <= s["mean"] <= s["ci_high"] <= 2.0
    quality = result["image_quality"]
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
    assert len(saved["per_unit"]["user_id"]) == 6 and len(saved["per_unit"]["full"]["gain_intended"]) == 6
    assert (root / "out" / "iamg_examples.png").exists()


def test_same_seed_same_numbers(bench, tiny_generator, tiny_judge):
    result, root = bench
    cfg = IAMGBenchConfig(**result["config"])
    again = run_iamg_benchmark(cfg, root / "work", None, tiny_generator[0], tiny_judge[0], progress=False)
    assert again["summary"] == result["summary"]


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
    assert len(numbers["runs"]) == 2 and numbers["runs"][0]["summary"]["full"]["fidelity"]["n"] == 6
    assert numbers["runs"][0]["image_quality"]["methods"]["full"]["kid"] is not None
    # Per user: the paired metric of every method, matching the benchmark's own per-unit numbers.
    saved = json.loads((root / "out" / "iamg_benchmark.json").read_text())["per_unit"]
    rows = numbers["runs"][0]["per_user"]
    assert set(rows) == set(saved["user_id"]) and "Per user: personalization gain" in page
    for u, gain in zip(saved["user_id"], saved["full"]["gain_intended"]):
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
    assert results[0]["summary"] == result["summary"]
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
    shutil.copytree(result["shop"], real)
    shutil.rmtree(real / "truth")  # what a real catalog looks like: no oracle, no true attributes
    cfg = IAMGBenchConfig(**result["config"])
    out = run_iamg_benchmark(cfg, None, tmp_path / "out", tiny_generator[0], None, progress=False, dataset=real)
    assert set(out["not_computed"]) == set(NEEDS_GROUND_TRUTH) == {"gain_intended", "gain_mismatched", "fidelity"}
    assert set(out["summary"]["full"]) == {"history_similarity", "text_alignment", "novelty", "diversity"}
    assert out["paired_metric"] == "history_similarity" and "full_intended_vs_mismatched" not in out["paired_tests"]
    # The embedding metrics do not depend on ground truth: the same numbers as on the shop.
    assert out["summary"]["full"]["history_similarity"] == result["summary"]["full"]["history_similarity"]
    table = format_table(out)
    assert "n/a fidelity: needs the item's true category" in table
    res = CliRunner().invoke(main, ["eval", str(tmp_path / "out"), str(root / "out"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert "n/a gain_intended" in (tmp_path / "rep" / "report.html").read_text()

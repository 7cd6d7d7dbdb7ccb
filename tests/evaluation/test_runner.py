"""The benchmark record: summaries, paired tests, the JSON layout and its report, on a task that is not I-AM-G."""

import json
import time

import numpy as np
import pytest
from click.testing import CliRunner

from browser import assert_page_renders, render
from tailorgen.cli import main
from tailorgen.evaluation.metrics import hit_rate_at_k, ndcg_at_k, rmse
from tailorgen.evaluation.registry import METRICS, metric_info
from tailorgen.evaluation.runner import (
    Comparison,
    Task,
    against,
    build_record,
    find_record,
    read_record,
    summarize,
    write_record,
)
from tailorgen.evaluation.stats import paired_test, summarize_metric

N_USERS = 120


def recommendation_values(seed: int = 0) -> tuple[dict, list[str]]:
    """Ranked lists of three recommenders for the same users: "model" ranks the held-out item higher
    than "popular" for most users; "popular_again" draws its ranks from the same distribution as
    "popular", independently: a null comparison."""
    rng = np.random.default_rng(seed)
    users = [f"u{i}" for i in range(N_USERS)]
    targets = list(range(N_USERS))
    catalog = np.arange(1000, 1100)

    def ranked(rank_of_target: np.ndarray) -> list[list[int]]:
        lists = []
        for target, r in zip(targets, rank_of_target):
            others = list(rng.choice(catalog, size=20, replace=False))
            lists.append(others[:r] + [target] + others[r:] if r < 20 else others)
        return lists

    lists = {
        "popular": ranked(rng.integers(0, 30, N_USERS)),  # the target is in the top 10 for about 1 in 3
        "model": ranked(rng.integers(0, 8, N_USERS)),  # always in the top 10
        "popular_again": ranked(rng.integers(0, 30, N_USERS)),
    }
    values = {
        m: {
            "hr@10": hit_rate_at_k(ls, targets, 10, reduce="none"),
            "ndcg@10": ndcg_at_k(ls, targets, 10, reduce="none"),
        }
        for m, ls in lists.items()
    }
    return values, users


def recommendation_task(users: list[str]) -> Task:
    return Task(
        "recommendation",
        methods=("popular", "popular_again", "model"),
        metrics=("hr@10", "ndcg@10"),
        primary_metric="ndcg@10",
        comparisons=tuple(against("model", ("popular", "popular_again"), ("ndcg@10", "hr@10")))
        + (Comparison("popular", "popular_again", "ndcg@10"),),
        units={"user_id": users},
    )


def make_record(**overrides) -> dict:
    values, users = recommendation_values()
    kwargs = dict(
        benchmark="fakerec",
        what="a recommendation benchmark on synthetic rankings",
        tasks=[recommendation_task(users)],
        per_unit={"recommendation": values},
        config={"users": N_USERS},
        seeds=[0],
        checkpoints={"model": "abc"},
        started=time.perf_counter(),
        dataset="synthetic",
        n_boot=500,
        seed=3,
    )
    return build_record(**(kwargs | overrides))


def test_record_layout_summaries_and_paired_tests():
    record = make_record()
    values, _ = recommendation_values()
    for key in ("config", "seeds", "versions", "checkpoints", "seconds", "per_unit", "results", "paired", "tasks"):
        assert key in record
    results = record["results"]["recommendation"]
    assert list(results) == ["popular", "model", "popular_again"]  # the order the values came in
    # Every summary is stats.summarize_metric of the per-unit values, with the record's seed.
    assert results["model"]["hr@10"] == summarize_metric(values["model"]["hr@10"], n_boot=500, seed=3)
    assert set(results["model"]["hr@10"]) == {"mean", "ci_low", "ci_high", "n"}
    assert results["model"]["hr@10"]["mean"] == 1.0 and results["popular"]["hr@10"]["mean"] < 0.5
    paired = record["paired"]["recommendation"]
    assert list(paired) == ["ndcg@10", "hr@10"] and set(paired["ndcg@10"]) == {
        "model vs popular",
        "model vs popular_again",
        "popular vs popular_again",
    }
    real = paired["ndcg@10"]["model vs popular"]
    assert set(real) == {"a", "b", "diff", "ci_low", "ci_high", "p", "ttest_p", "n"}
    expected = paired_test(values["model"]["ndcg@10"], values["popular"]["ndcg@10"], n_boot=500, seed=0)
    assert real["diff"] == expected["mean_diff"] and real["p"] == expected["wilcoxon_p"] and real["n"] == N_USERS
    assert real["p"] < 1e-6 and real["ci_low"] > 0.2  # a real difference is found ...
    null = paired["ndcg@10"]["popular vs popular_again"]
    assert null["p"] > 0.05 and null["ci_low"] < 0 < null["ci_high"]  # ... and a null one is not
    assert record["per_unit"]["recommendation"]["model"]["hr@10"] == [1.0] * N_USERS
    assert record["tasks"]["recommendation"]["units"]["user_id"][:2] == ["u0", "u1"]


def test_a_comparison_of_two_metrics_of_the_same_units():
    values, users = recommendation_values()
    task = recommendation_task(users)
    task = Task(**{**task.__dict__, "comparisons": (Comparison("model", "model", "hr@10", "ndcg@10", "hr vs ndcg"),)})
    record = make_record(tasks=[task])
    t = record["paired"]["recommendation"]["hr@10"]["hr vs ndcg"]
    assert t["b_metric"] == "ndcg@10" and t["diff"] == pytest.approx(
        np.mean(values["model"]["hr@10"] - values["model"]["ndcg@10"])
    )


def test_round_trip_through_the_run_folder(tmp_path):
    record = make_record()
    path = write_record(record, tmp_path / "run")
    assert path.name == "fakerec_benchmark.json" and find_record(tmp_path / "run") == path
    assert read_record(tmp_path / "run") == record == read_record(path)
    with pytest.raises(FileNotFoundError, match="iamg_benchmark.json"):
        find_record(tmp_path)
    (tmp_path / "bad_benchmark.json").write_text(json.dumps({"summary": {}}))
    with pytest.raises(ValueError, match="not a benchmark record"):
        read_record(tmp_path / "bad_benchmark.json")


def test_values_that_do_not_fit_the_task_are_clear_errors():
    values, users = recommendation_values()
    with pytest.raises(KeyError, match="'hr@7' is not registered"):
        make_record(per_unit={"recommendation": {**values, "model": {**values["model"], "hr@7": [1.0]}}})
    short = {**values, "model": {**values["model"], "hr@10": values["model"]["hr@10"][:-1]}}
    with pytest.raises(ValueError, match="same units to pair up"):
        make_record(per_unit={"recommendation": short})
    with pytest.raises(ValueError, match=r"methods \['random'\] it does not declare"):
        make_record(per_unit={"recommendation": {**values, "random": values["model"]}})
    with pytest.raises(ValueError, match="not declared"):
        make_record(per_unit={"recommendation": values, "search": values})


def test_rmse_is_summarized_as_a_root_mean_square():
    y_true = np.array([4.0, 3.0, 5.0, 1.0, 2.0, 4.0])
    y_pred = np.array([3.5, 3.0, 4.0, 2.0, 2.5, 3.0])
    s = summarize(y_pred - y_true, "rmse", n_boot=200, seed=0)
    assert s["mean"] == pytest.approx(rmse(y_true, y_pred)) and s["ci_low"] <= s["mean"] <= s["ci_high"]
    assert metric_info("rmse").direction == "lower" and METRICS["hr@10"].direction == "higher"
    with pytest.raises(ValueError, match="root mean square"):
        make_record(
            tasks=[Task("rating", ("a", "b"), ("rmse",), "rmse", (Comparison("a", "b", "rmse"),))],
            per_unit={"rating": {"a": {"rmse": y_pred - y_true}, "b": {"rmse": y_true - 3}}},
        )


def test_eval_renders_a_run_of_another_task(tmp_path, browser):
    write_record(make_record(), tmp_path / "run")
    res = CliRunner().invoke(main, ["eval", str(tmp_path / "run"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "fakerec benchmark" in html and "Task recommendation, 120 users" in html
    assert "<th title='hit rate@10: the held-out item is in the top 10'>HR@10</th>" in html
    assert "model vs popular_again" in html and "Per user: NDCG@10 of the held-out item" in html
    numbers = json.loads((tmp_path / "rep" / "report.json").read_text())
    run = numbers["runs"][0]
    assert run["results"]["recommendation"]["model"]["hr@10"]["mean"] == 1.0
    assert len(run["per_user"]["recommendation"]) == N_USERS
    page = render(browser, tmp_path / "rep" / "report.html", selectors=("table",))
    assert_page_renders(page)
    assert len(page.images) == 2 and page.counts["table"] == 3  # a plot per metric; results, paired, per user

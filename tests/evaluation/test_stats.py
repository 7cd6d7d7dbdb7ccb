"""Bootstrap intervals, paired tests and breakdowns against hand-computed values."""

import json
import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from tailorgen.evaluation.stats import (
    as_finite_array,
    bootstrap_ci,
    paired_bootstrap_ci,
    paired_test,
    per_user_breakdown,
    summarize_metric,
)


def test_constant_sample_gives_a_zero_width_interval():
    assert bootstrap_ci(np.full(50, 3.0)) == (3.0, 3.0, 3.0)


def test_two_point_sample_by_hand():
    # Resampling [0, 1] twice gives means 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4, so the
    # 2.5th percentile of the bootstrap distribution is 0 and the 97.5th is 1.
    est, low, high = bootstrap_ci([0.0, 1.0], n_boot=4000)
    assert (est, low, high) == (0.5, 0.0, 1.0)


def test_normal_sample_interval_covers_the_mean_with_the_analytic_width():
    rng = np.random.default_rng(1)
    n, mu, sd = 400, 5.0, 2.0
    x = rng.normal(mu, sd, n)
    est, low, high = bootstrap_ci(x)
    assert est == pytest.approx(x.mean())
    assert low < mu < high
    analytic = 2 * 1.96 * x.std(ddof=1) / math.sqrt(n)
    assert high - low == pytest.approx(analytic, rel=0.15)


def test_bootstrap_is_reproducible_and_takes_any_statistic():
    x = np.random.default_rng(2).exponential(size=60)
    assert bootstrap_ci(x, seed=7) == bootstrap_ci(x, seed=7)
    assert bootstrap_ci(x, seed=7) != bootstrap_ci(x, seed=8)
    est, low, high = bootstrap_ci(x, stat=np.median, n_boot=500)
    assert est == pytest.approx(np.median(x)) and low <= est <= high
    # A statistic without an axis argument is evaluated one resample at a time.
    est, low, high = bootstrap_ci(x, stat=lambda v: float(np.max(v) - np.min(v)), n_boot=200)
    assert low <= est + 1e-12 and high <= est + 1e-12  # resampled ranges never exceed the sample's


def test_paired_bootstrap_of_a_constant_shift():
    # a - b = [1, 1, 1] in every resample.
    assert paired_bootstrap_ci([1.0, 2.0, 3.0], [0.0, 1.0, 2.0]) == (1.0, 1.0, 1.0)
    # Pairing matters: huge between-unit spread, tiny within-pair noise -> a narrow interval around 0.5.
    rng = np.random.default_rng(3)
    base = rng.normal(0, 100, 200)
    est, low, high = paired_bootstrap_ci(base + 0.5 + rng.normal(0, 0.1, 200), base)
    assert low < 0.5 < high and high - low < 0.1


def test_paired_test_detects_an_exact_shift():
    a = np.arange(20, dtype=float)
    res = paired_test(a, a + 1)
    assert res["n"] == 20
    assert (res["mean_diff"], res["ci_low"], res["ci_high"]) == (-1.0, -1.0, -1.0)
    # Wilcoxon by hand: all 20 differences are -1, all tied at rank 10.5, so W+ = 0 and the mean
    # is n(n+1)/4 = 105. Variance n(n+1)(2n+1)/24 = 717.5 minus the tie correction (20^3 - 20)/48
    # = 166.25 gives 551.25; z = 105 / sqrt(551.25); two-sided p = erfc(z / sqrt 2).
    z = 105 / math.sqrt(551.25)
    assert res["wilcoxon_p"] == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-6)
    assert res["wilcoxon_p"] < 1e-4
    assert res["ttest_p"] == 0.0  # zero variance of a non-zero difference


def test_paired_t_test_by_hand():
    # d = [1, 2, 2, 3]: mean 2, sd sqrt(2/3), t = 2 / (sd / sqrt 4), df = 3.
    a, b = [1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 1.0]
    t = 2 / (math.sqrt(2 / 3) / 2)
    assert paired_test(a, b)["ttest_p"] == pytest.approx(2 * student_t.sf(t, 3), rel=1e-9)


def test_paired_test_finds_nothing_between_shuffles_of_one_sample():
    rng = np.random.default_rng(4)
    a = rng.normal(size=200)
    res = paired_test(a, rng.permutation(a))
    assert res["mean_diff"] == pytest.approx(0.0, abs=1e-12)
    assert res["ci_low"] < 0 < res["ci_high"]
    assert res["wilcoxon_p"] > 0.2 and res["ttest_p"] > 0.2
    assert paired_test(a, a)["wilcoxon_p"] == 1.0 and paired_test(a, a)["ttest_p"] == 1.0


def test_per_user_breakdown_by_hand():
    # u1: values 2 and 4 -> mean 3; u2: values 1 and 3 -> mean 2.
    out = per_user_breakdown([1.0, 2.0, 3.0, 4.0], ["u2", "u1", "u2", "u1"])
    assert out == {"u1": {"mean": 3.0, "count": 2}, "u2": {"mean": 2.0, "count": 2}}
    out = per_user_breakdown([1.0, 5.0], np.array([7, 7]))
    assert out == {7: {"mean": 3.0, "count": 2}} and type(next(iter(out))) is int
    json.dumps(out)
    with pytest.raises(ValueError, match="one id per value"):
        per_user_breakdown([1.0, 2.0], ["u1"])


def test_summarize_metric_is_json_ready():
    s = summarize_metric([1.0, 2.0, 3.0, 4.0])
    assert s["mean"] == 2.5 and s["n"] == 4 and s["ci_low"] <= 2.5 <= s["ci_high"]
    assert json.loads(json.dumps(s)) == s
    assert summarize_metric([0.7]) == {"mean": 0.7, "ci_low": None, "ci_high": None, "n": 1}


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="need at least 1"):
        summarize_metric([], name="ndcg@10")
    with pytest.raises(ValueError, match="ndcg@10: 1 of 3 values are NaN .* index 1"):
        summarize_metric([0.1, float("nan"), 0.3], name="ndcg@10")
    with pytest.raises(ValueError, match="need at least 2"):
        bootstrap_ci([1.0])
    with pytest.raises(ValueError, match="1-D"):
        as_finite_array(np.ones((2, 2)))
    with pytest.raises(ValueError, match="a has 3, b has 2"):
        paired_test([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="b: .*infinite"):
        paired_bootstrap_ci([1.0, 2.0], [1.0, float("inf")])
    with pytest.raises(ValueError, match="ci must be"):
        bootstrap_ci([1.0, 2.0], ci=95)

"""Every metric against a value computed by hand in the test."""

import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.retrieval import (
    retrieval_hit_rate,
    retrieval_normalized_dcg,
    retrieval_precision,
    retrieval_recall,
    retrieval_reciprocal_rank,
)

from tailorgen.evaluation.metrics import (
    COPY_THRESHOLD,
    attribute_preservation,
    bleu,
    clip_style_score,
    copy_rate,
    diversity,
    fidelity_similarity,
    history_similarity,
    history_similarity_per_unit,
    hit_rate_at_k,
    mae,
    mrr_at_k,
    ndcg_at_k,
    nearest_catalog_similarity,
    novelty,
    personalization_gain,
    precision_at_k,
    recall_at_k,
    rmse,
    rouge,
    sentence_bleu,
)

# ---------------------------------------------------------------- recommendation

# user 0: target 20 at rank 2; user 1: target 5 at rank 1; user 2: target 9 absent.
RANKED = [[10, 20, 30], [5, 6, 7], [1, 2, 3]]
TARGETS = [20, 5, 9]


def test_single_target_metrics_by_hand():
    # HR@1: only user 1 hits -> 1/3. HR@2: users 0 and 1 -> 2/3.
    assert hit_rate_at_k(RANKED, TARGETS, 1) == pytest.approx(1 / 3)
    assert hit_rate_at_k(RANKED, TARGETS, 2) == pytest.approx(2 / 3)
    # NDCG@2: user 0 gains 1/log2(2+1), user 1 gains 1/log2(1+1) = 1, user 2 gains 0.
    assert ndcg_at_k(RANKED, TARGETS, 2) == pytest.approx((1 / math.log2(3) + 1 + 0) / 3)
    # MRR@2: 1/2, 1/1, 0.
    assert mrr_at_k(RANKED, TARGETS, 2) == pytest.approx(0.5)
    np.testing.assert_allclose(mrr_at_k(RANKED, TARGETS, 2, reduce="none"), [0.5, 1.0, 0.0])


def test_target_beyond_k_counts_as_a_miss():
    # The target at rank 3: a miss at k=2, NDCG 1/log2(4) = 0.5 and MRR 1/3 at k=3.
    ranked, target = [["a", "b", "c"]], ["c"]
    assert ndcg_at_k(ranked, target, 2) == 0.0 and hit_rate_at_k(ranked, target, 2) == 0.0
    assert ndcg_at_k(ranked, target, 3) == pytest.approx(0.5)
    assert mrr_at_k(ranked, target, 3) == pytest.approx(1 / 3)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_single_target_metrics_agree_with_torchmetrics(k):
    for ranked, target in zip(RANKED, TARGETS):
        scores = torch.arange(len(ranked), 0, -1, dtype=torch.float32)  # best first
        rel = torch.tensor([item == target for item in ranked])
        assert hit_rate_at_k([ranked], [target], k) == pytest.approx(float(retrieval_hit_rate(scores, rel, top_k=k)))
        assert ndcg_at_k([ranked], [target], k) == pytest.approx(float(retrieval_normalized_dcg(scores, rel, top_k=k)))
        assert mrr_at_k([ranked], [target], k) == pytest.approx(float(retrieval_reciprocal_rank(scores, rel, top_k=k)))


def test_multi_target_recall_and_precision_by_hand():
    ranked = [["a", "b", "c", "d"], ["p", "q"]]
    targets = [{"b", "d", "x"}, ["p"]]
    # user 0, k=2: top {a, b}, one hit of three targets -> recall 1/3, precision 1/2.
    # user 1, k=2: top {p, q}, one hit of one target -> recall 1, precision 1/2.
    np.testing.assert_allclose(recall_at_k(ranked, targets, 2, reduce="none"), [1 / 3, 1.0])
    np.testing.assert_allclose(precision_at_k(ranked, targets, 2, reduce="none"), [0.5, 0.5])
    # k=4: user 0 hits b and d -> recall 2/3, precision 2/4; user 1's list is short -> precision 1/4.
    assert recall_at_k(ranked, targets, 4) == pytest.approx((2 / 3 + 1) / 2)
    assert precision_at_k(ranked, targets, 4) == pytest.approx((2 / 4 + 1 / 4) / 2)
    # Same numbers as torchmetrics for user 0 (all targets present among the candidates but x).
    scores, rel = torch.tensor([4.0, 3.0, 2.0, 1.0]), torch.tensor([False, True, False, True])
    assert precision_at_k(ranked[:1], targets[:1], 2) == pytest.approx(float(retrieval_precision(scores, rel, top_k=2)))
    # torchmetrics only knows the candidates, so its recall denominator is 2 (b, d), not 3.
    assert recall_at_k([ranked[0]], [{"b", "d"}], 2) == pytest.approx(float(retrieval_recall(scores, rel, top_k=2)))


def test_ranking_errors_are_clear():
    with pytest.raises(ValueError, match="positive integer"):
        hit_rate_at_k(RANKED, TARGETS, 0)
    with pytest.raises(ValueError, match="3 ranked lists but 2 targets"):
        ndcg_at_k(RANKED, TARGETS[:2], 2)
    with pytest.raises(ValueError, match="empty"):
        mrr_at_k([], [], 2)
    with pytest.raises(ValueError, match="repeats an id"):
        hit_rate_at_k([[1, 1, 2]], [2], 3)
    with pytest.raises(ValueError, match="user 1 has no target"):
        recall_at_k([[1], [2]], [[1], []], 1)
    with pytest.raises(ValueError, match="collection of ids"):
        precision_at_k([["ab"]], ["ab"], 1)
    with pytest.raises(ValueError, match="reduce"):
        hit_rate_at_k(RANKED, TARGETS, 1, reduce="sum")


# ---------------------------------------------------------------- rating


def test_rmse_and_mae_by_hand():
    # errors 1, 0, 2 -> MAE = 3/3 = 1, RMSE = sqrt((1 + 0 + 4) / 3).
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert rmse([1, 2, 3], [2, 2, 5]) == pytest.approx(math.sqrt(5 / 3))


def test_rating_errors_are_clear():
    with pytest.raises(ValueError, match="y_pred: .*NaN"):
        rmse([1, 2], [1, float("nan")])
    with pytest.raises(ValueError, match="3 values but y_pred has 2"):
        mae([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="y_true: need at least 1"):
        mae([], [])


# ---------------------------------------------------------------- text


def test_bleu_identical_is_one():
    assert sentence_bleu("a red dress with white dots", "a red dress with white dots") == pytest.approx(1.0)
    assert bleu(["a b c d e", "x y z w v"], ["a b c d e", "x y z w v"]) == pytest.approx(1.0)


def test_bleu_unigram_clipping_by_hand():
    # Papineni et al.'s example: "the" x7 against a reference with "the" twice -> clipped precision 2/7;
    # candidate longer than reference (7 > 6) -> no brevity penalty.
    assert sentence_bleu("the the the the the the the", "the cat is on the mat", n_gram=1) == pytest.approx(2 / 7)


def test_bleu_brevity_penalty_and_lin_och_smoothing_by_hand():
    # "the cat sat" vs "the cat sat on": p1 = 3/3; smoothed p2 = (2+1)/(2+1), p3 = (1+1)/(1+1),
    # p4 = (0+1)/(0+1) = 1; c = 3 < r = 4 -> BP = exp(1 - 4/3).
    assert sentence_bleu("the cat sat", "the cat sat on") == pytest.approx(math.exp(1 - 4 / 3), rel=1e-5)
    # "a b c d" vs "a b c e": p1 = 3/4, p2 = (2+1)/(3+1), p3 = (1+1)/(2+1), p4 = (0+1)/(1+1); BP = 1.
    expected = (3 / 4 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert sentence_bleu("a b c d", "a b c e") == pytest.approx(expected, rel=1e-5)
    # Every order matches (torchmetrics' own smoothed path): p1 = 4/5, p2 = 4/5, p3 = 3/4, p4 = 2/3.
    expected = (4 / 5 * 4 / 5 * 3 / 4 * 2 / 3) ** 0.25
    assert sentence_bleu("a b c d e", "a b c d f") == pytest.approx(expected, rel=1e-5)
    # Without smoothing a missing 4-gram match makes BLEU-4 zero.
    assert sentence_bleu("a b c d", "a b c e", smooth=False) == 0.0


def test_corpus_bleu_pools_counts_and_takes_the_best_reference():
    # Unigrams: 2/2 + 1/2 matched -> 3/4; bigrams: 1/1 + 0/1 -> 1/2; lengths 4 = 4 -> BP 1.
    assert bleu(["a b", "c d"], ["a b", "c x"], n_gram=1, smooth=False) == pytest.approx(3 / 4)
    assert bleu(["a b", "c d"], ["a b", "c x"], n_gram=2, smooth=False) == pytest.approx(math.sqrt(3 / 4 * 1 / 2))
    assert sentence_bleu("the cat", ["a dog", "the cat"], n_gram=2) == pytest.approx(1.0)


def test_bleu_with_nothing_in_common_or_empty_output_is_zero():
    assert sentence_bleu("x y z", "a b c") == 0.0
    assert sentence_bleu("", "a b c") == 0.0
    with pytest.raises(ValueError, match="2 predictions but 1 reference"):
        bleu(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="list of strings"):
        bleu("a b", ["a b"])


def test_rouge_by_hand():
    pred, ref = "the cat sat on the mat", "the cat is on the mat"
    scores = rouge([pred], [ref])
    # unigrams: the x2, cat, on, mat shared -> P = R = 5/6. bigrams: the-cat, on-the, the-mat -> 3/5.
    # LCS "the cat on the mat" has 5 tokens -> 5/6.
    assert scores["rouge_1"] == pytest.approx(5 / 6, rel=1e-5)
    assert scores["rouge_2"] == pytest.approx(3 / 5, rel=1e-5)
    assert scores["rouge_l"] == pytest.approx(5 / 6, rel=1e-5)


def test_rouge_f1_with_unequal_lengths_and_per_item_values():
    # "a b" vs "a b c d": ROUGE-1 P = 1, R = 1/2 -> F1 = 2/3; ROUGE-2 P = 1, R = 1/3 -> F1 = 1/2; LCS = 2 -> 2/3.
    # Second pair shares nothing -> 0. Case and punctuation are normalized away.
    per = rouge(["A b!", "x"], ["a b c d", "y"], reduce="none")
    np.testing.assert_allclose(per["rouge_1"], [2 / 3, 0.0], rtol=1e-5)
    np.testing.assert_allclose(per["rouge_2"], [1 / 2, 0.0], rtol=1e-5)
    np.testing.assert_allclose(per["rouge_l"], [2 / 3, 0.0], rtol=1e-5)
    assert rouge(["A b!", "x"], ["a b c d", "y"])["rouge_1"] == pytest.approx(1 / 3, rel=1e-5)


# ---------------------------------------------------------------- embedding space

S60 = math.sqrt(3) / 2  # sin 60 degrees


def test_history_and_fidelity_similarity_by_hand():
    # cos([1,0],[1,0]) = 1, cos([1,0],[0,1]) = 0 -> mean 0.5.
    assert history_similarity(np.array([1.0, 0.0]), np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(0.5)
    # Two outputs for the same user: [0,1] has mean cosine (0 + 1) / 2 as well; [-1,0] has (-1 + 0) / 2.
    np.testing.assert_allclose(
        history_similarity(np.array([[0.0, 1.0], [-1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])), [0.5, -0.5]
    )
    # cos 60 degrees = 1/2.
    assert fidelity_similarity(np.array([1.0, 0.0]), np.array([0.5, S60])) == pytest.approx(0.5)
    np.testing.assert_allclose(
        fidelity_similarity(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.5, S60], [0.0, 1.0]])), [0.5, 1.0]
    )
    # Cosine is scale-free: unnormalized inputs give the same numbers.
    assert fidelity_similarity(np.array([3.0, 0.0]), np.array([1.0, 2 * S60])) == pytest.approx(0.5)


def test_diversity_by_hand():
    # Pairs: ([1,0],[0,1]) distance 1, ([1,0],[-1,0]) distance 2, ([0,1],[-1,0]) distance 1 -> mean 4/3.
    assert diversity(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])) == pytest.approx(4 / 3)
    assert diversity(np.array([[0.6, 0.8], [0.6, 0.8]])) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        diversity(np.array([[1.0, 0.0]]))


def test_novelty_and_copy_rate_by_hand():
    catalog = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    outputs = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    # Output 0 is catalog item 0 (cos 1); output 1 is nearest to item 1 (cos 0.8 > 0.6).
    sims, idx = nearest_catalog_similarity(outputs, catalog, return_index=True)
    np.testing.assert_allclose(sims, [1.0, 0.8], atol=1e-6)
    np.testing.assert_array_equal(idx, [0, 1])
    assert copy_rate(outputs, catalog) == pytest.approx(0.5)  # only output 0 reaches 0.95
    assert copy_rate(outputs, catalog, threshold=0.75) == pytest.approx(1.0)
    np.testing.assert_allclose(nearest_catalog_similarity(outputs[1], catalog), [0.8], atol=1e-6)


def test_copy_rate_and_novelty_per_output_share_one_threshold():
    catalog = np.array([[1.0, 0.0], [0.0, 1.0]])
    # Nearest cosines: 1.0, 0.8 and cos(~0.20 rad) = 0.98, on either side of the 0.95 threshold.
    outputs = np.array([[1.0, 0.0], [0.6, 0.8], [0.98, np.sqrt(1 - 0.98**2)]])
    np.testing.assert_array_equal(copy_rate(outputs, catalog, reduce="none"), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(novelty(outputs, catalog, reduce="none"), [0.0, 1.0, 0.0])
    assert novelty(outputs, catalog) == pytest.approx(1 / 3) == 1 - copy_rate(outputs, catalog)
    # Lowering the threshold below 0.8 makes every output a copy, in both functions.
    assert novelty(outputs, catalog, threshold=0.75) == 0.0 and copy_rate(outputs, catalog, threshold=0.75) == 1.0
    assert COPY_THRESHOLD == 0.95
    with pytest.raises(ValueError, match="reduce"):
        novelty(outputs, catalog, reduce="sum")


def test_history_similarity_per_unit_uses_each_units_own_history():
    histories = [np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 1.0]])]
    outputs = np.array([[1.0, 0.0], [0.6, 0.8]])
    # Unit 0: (1 + 0) / 2; unit 1: cos([0.6, 0.8], [0, 1]) = 0.8.
    np.testing.assert_allclose(history_similarity_per_unit(outputs, histories), [0.5, 0.8])
    with pytest.raises(ValueError, match="one history per output"):
        history_similarity_per_unit(outputs, histories[:1])


def test_clip_style_score_by_hand():
    assert clip_style_score(np.array([1.0, 0.0]), np.array([0.6, 0.8])) == pytest.approx(60.0)
    # Negative cosine is floored at 0.
    np.testing.assert_allclose(
        clip_style_score(np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[-1.0, 0.0], [1.0, 0.0]])), [0.0, 100.0]
    )


def test_embedding_errors_are_clear():
    with pytest.raises(ValueError, match="all zeros"):
        fidelity_similarity(np.zeros(2), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="dimension 2 but history_embs has 3"):
        history_similarity(np.array([1.0, 0.0]), np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        copy_rate(np.array([[np.nan, 1.0]]), np.eye(2))
    with pytest.raises(ValueError, match="one target_emb row per output_emb row"):
        fidelity_similarity(np.eye(2), np.eye(2)[:1])


# ---------------------------------------------------------------- personalization


def test_personalization_gain_is_the_difference():
    np.testing.assert_allclose(personalization_gain([3.0, 1.0], [1.0, 2.0]), [2.0, -1.0])
    with pytest.raises(ValueError, match="2 values but utility_original has 1"):
        personalization_gain([1.0, 2.0], [1.0])


def test_attribute_preservation_by_hand():
    reads = [
        {"category": "dress", "colour": "red"},
        {"category": "shirt", "colour": "red"},
        {"category": "dress", "colour": "blue"},
    ]
    targets = [{"category": "dress", "colour": "red"}] * 3
    # category kept in reads 0 and 2 -> 2/3; category and colour both kept only in read 0 -> 1/3.
    assert attribute_preservation(reads, targets) == pytest.approx(2 / 3)
    assert attribute_preservation(reads, targets, ("category", "colour")) == pytest.approx(1 / 3)
    np.testing.assert_array_equal(attribute_preservation(reads, targets, "colour", reduce="none"), [1, 1, 0])
    with pytest.raises(ValueError, match="judge read 0 has no attribute 'pattern'"):
        attribute_preservation(reads, targets, ("pattern",))


def test_rouge_takes_the_best_reference():
    # "a b c" vs "a b q": ROUGE-1 2/3, ROUGE-2 (a-b) 1/2; vs "a q c": ROUGE-1 2/3, ROUGE-2 0; vs "x y z": 0.
    scores = rouge(["a b c"], [["x y z", "a b q", "a q c"]])
    assert scores["rouge_1"] == pytest.approx(2 / 3, rel=1e-5)
    assert scores["rouge_2"] == pytest.approx(1 / 2, rel=1e-5)
    assert scores["rouge_l"] == pytest.approx(2 / 3, rel=1e-5)

"""The UniMP benchmark's metrics: per-unit text scores by hand, the registry, and factual explanations on a shop."""

import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from tailorgen.evaluation.explanation_facts import (
    LIKED_CONTRIBUTION,
    attribute_contributions,
    attribute_words,
    driving_attributes,
    factual_scores,
    names_driving_attribute,
)
from tailorgen.evaluation.metrics import (
    bleu,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    rouge,
    sentence_bleu,
    unigram_precision,
)
from tailorgen.evaluation.registry import METRICS, metric_info
from tailorgen.evaluation.runner import summarize
from tailorgen.world import Oracle
from tailorgen.world.attributes import NO_SECONDARY
from tailorgen.world.text import attribute_phrase

# ---------------------------------------------------------------- registry


def test_the_unimp_metrics_are_registered():
    for name in ("hr@3", "ndcg@3", "mrr@3", "unigram_precision", "factual", "bleu4", "rouge_1", "rouge_l"):
        assert metric_info(name).direction == "higher"
    assert METRICS["ndcg@3"].column == "NDCG@3" and METRICS["ndcg@3"].digits == 3
    # Unseen items are a task of their own, not a metric.
    assert "hr@10_unseen" not in METRICS and "ndcg@10_unseen" not in METRICS


def test_ranking_at_3_per_unit():
    # Targets at ranks 3, 4 and 1: at k=3 hits 1, 0, 1; NDCG 1/log2(4) = 0.5, 0, 1; MRR 1/3, 0, 1.
    ranked = [["a", "b", "c", "d"], ["a", "b", "c", "d"], ["x", "y", "z", "w"]]
    targets = ["c", "d", "x"]
    np.testing.assert_allclose(hit_rate_at_k(ranked, targets, 3, reduce="none"), [1, 0, 1])
    np.testing.assert_allclose(ndcg_at_k(ranked, targets, 3, reduce="none"), [0.5, 0, 1])
    np.testing.assert_allclose(mrr_at_k(ranked, targets, 3, reduce="none"), [1 / 3, 0, 1])


# ---------------------------------------------------------------- unigram precision


def test_unigram_precision_clips_counts_by_hand():
    # Papineni et al.: "the" x7 against a reference with "the" twice -> 2/7 (no brevity penalty either way).
    assert unigram_precision(["the the the the the the the"], ["the cat is on the mat"]) == pytest.approx(2 / 7)
    # 3 of 4 tokens in the reference; a short output is not penalized for its length.
    assert unigram_precision(["a b c d"], ["a b c e f g h i"]) == pytest.approx(3 / 4)
    # Several references: a token is clipped at the largest count any one reference has
    # ("the" twice in the second), "cat" in none -> 2/3.
    assert unigram_precision(["the the cat"], [["the dog", "the the mat"]]) == pytest.approx(2 / 3)


def test_unigram_precision_tokenizes_as_bleu_does():
    # Whitespace tokens, case-sensitive, punctuation stays on the word: "colour." is not "colour".
    # "Love the red colour." vs "Love the blue colour.": Love, the, colour. match -> 3/4.
    assert unigram_precision(["Love the red colour."], ["Love the blue colour."]) == pytest.approx(3 / 4)
    assert unigram_precision(["The cat"], ["the cat"]) == pytest.approx(1 / 2)
    assert unigram_precision(["red colour"], ["red colour."]) == pytest.approx(1 / 2)
    # The same counts as BLEU-1 when the output is at least as long as the reference (no brevity penalty).
    pred, ref = "the cat sat on a mat", "the cat is on the mat"
    assert unigram_precision([pred], [ref]) == pytest.approx(sentence_bleu(pred, ref, n_gram=1))


def test_unigram_precision_per_unit_and_mean_of_units():
    # Per unit: 2/2, 0/4, empty output 0. The mean is over units (1/3), not pooled counts (2/6).
    per = unigram_precision(["a b", "c d e f", ""], ["a b", "x", "a"], reduce="none")
    assert isinstance(per, np.ndarray) and per.shape == (3,)
    np.testing.assert_allclose(per, [1.0, 0.0, 0.0])
    assert unigram_precision(["a b", "c d e f", ""], ["a b", "x", "a"]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="2 predictions but 1 reference"):
        unigram_precision(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="list of strings"):
        unigram_precision("a b", ["a b"])
    with pytest.raises(ValueError, match="reduce"):
        unigram_precision(["a"], ["a"], reduce="sum")


# ---------------------------------------------------------------- per-unit BLEU-4 and ROUGE


def test_bleu_per_unit_is_sentence_bleu_of_each_unit():
    preds = ["a b c d", "the cat sat", "x y z"]
    refs = ["a b c e", "the cat sat on", "a b c"]
    # Unit 0: p1 = 3/4, smoothed p2 = 3/4, p3 = 2/3, p4 = 1/2, BP 1. Unit 1: all precisions 1 after
    # smoothing, BP exp(1 - 4/3). Unit 2: no unigram match -> 0.
    expected = [(3 / 4 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25, math.exp(1 - 4 / 3), 0.0]
    per = bleu(preds, refs, reduce="none")
    assert isinstance(per, np.ndarray) and per.shape == (3,)
    np.testing.assert_allclose(per, expected, rtol=1e-5)
    assert bleu(preds, refs, reduce="mean") == pytest.approx(np.mean(expected), rel=1e-5)
    # The default is still corpus BLEU (pooled counts), which is not the mean of the units.
    assert bleu(preds, refs) != pytest.approx(np.mean(expected), rel=1e-3)
    with pytest.raises(ValueError, match="'corpus', 'mean' or 'none'"):
        bleu(preds, refs, reduce="sum")


def test_text_metrics_give_the_runner_one_value_per_unit():
    preds = ["Love the red colour.", "Fine for the price.", "Great tee itself, would buy again."]
    refs = ["Love the crimson colour.", "Okay for the money.", "Great tee itself, would buy again."]
    per_unit = {
        "bleu4": bleu(preds, refs, reduce="none"),
        "unigram_precision": unigram_precision(preds, refs, reduce="none"),
        **rouge(preds, refs, reduce="none"),
    }
    for name, values in per_unit.items():
        assert values.shape == (3,), name
        assert values[2] == pytest.approx(1.0), name  # the identical pair
        record = summarize(values, name, n_boot=50)
        assert record["n"] == 3 and record["mean"] == pytest.approx(values.mean())
    # Unit 0: Love, the, colour. of 4 tokens; unit 1: "for", "the" of 4 ("Fine" and "price." are not there).
    np.testing.assert_allclose(per_unit["unigram_precision"], [3 / 4, 2 / 4, 1.0])


# ---------------------------------------------------------------- naming an attribute


def test_attribute_words_are_the_name_and_the_shops_synonyms():
    assert attribute_words("colour", "red") == ("red", "crimson", "scarlet", "cherry-red")
    assert attribute_words("secondary_colour", "navy") == ("navy", "midnight", "ink")
    # The canonical pattern and category names count too, though the synonym lists leave them out.
    assert attribute_words("pattern", "dots") == ("dots", "polka-dot", "dotted", "spotted")
    assert "ankle boot" in attribute_words("category", "ankle boot")
    assert attribute_words("brand", "Lumen & Lace") == ("Lumen & Lace",)
    with pytest.raises(ValueError, match="unknown attribute"):
        attribute_words("size", "M")
    with pytest.raises(ValueError, match="not a value"):
        attribute_words("secondary_colour", NO_SECONDARY)


def test_names_driving_attribute_by_whole_words_and_synonyms():
    red = [("colour", "red")]
    assert names_driving_attribute("Love the cherry-red colour.", red)
    assert names_driving_attribute("CRIMSON, just as I wanted", red)
    assert names_driving_attribute("red", red)
    assert not names_driving_attribute("I bored of it and redid the hem", red)
    assert not names_driving_attribute("Love the blue colour.", red)
    # A hyphen joins words: a t-shirt is not a shirt.
    assert not names_driving_attribute("Great t-shirt itself", [("category", "shirt")])
    assert names_driving_attribute("Great button-down itself", [("category", "shirt")])
    # Multi-word synonyms and brands, any spacing and case.
    assert names_driving_attribute("Love the heather  grey accents", [("secondary_colour", "grey")])
    assert names_driving_attribute("lumen & lace quality", [("brand", "Lumen & Lace")])
    assert names_driving_attribute("Love the plain look.", [("pattern", "solid")])
    # Any of several drivers; none -> never.
    assert names_driving_attribute("Great trainers", [("colour", "red"), ("category", "sneaker")])
    assert not names_driving_attribute("Love the red colour.", [])
    with pytest.raises(ValueError, match="string"):
        names_driving_attribute(None, red)


# ---------------------------------------------------------------- factual explanations on a shop


@pytest.fixture(scope="module")
def shop_reviews(small_shop):
    table = pq.read_table(small_shop / "interactions.parquet").to_pandas()
    return Oracle.load(small_shop), table[table["review"].notna()].reset_index(drop=True)


def _units(df):
    return df["user_id"].tolist(), df["item_id"].tolist(), df["timestamp"].tolist()


def test_contributions_decompose_the_utility(shop_reviews):
    oracle, reviews = shop_reviews
    for row in reviews.head(20).itertuples():
        contrib = attribute_contributions(oracle, row.user_id, row.item_id, row.timestamp)
        attrs = oracle.item_attributes(row.item_id)
        kept = {a: v for a, v in attrs.items() if a != "price" and v != NO_SECONDARY}
        assert [a for a, _, _ in contrib] != [] and {a for a, _, _ in contrib} == set(kept)
        assert sum(c for _, _, c in contrib) == pytest.approx(
            oracle.utility(row.user_id, kept, row.timestamp), abs=1e-4
        )
        values = [c for _, _, c in contrib]
        assert values == sorted(values, reverse=True)
        drivers = driving_attributes(oracle, row.user_id, row.item_id, row.timestamp)
        assert drivers == [(a, v) for a, v, c in contrib if c > LIKED_CONTRIBUTION][:2]
    with pytest.raises(ValueError, match="top"):
        driving_attributes(oracle, row.user_id, row.item_id, row.timestamp, top=0)


def test_real_reviews_of_high_ratings_are_factual_and_neutral_ones_are_not(shop_reviews):
    oracle, reviews = shop_reviews
    high = reviews[reviews["rating"] >= 4]
    middle = reviews[reviews["rating"] == 3]
    assert len(high) > 50 and len(middle) > 5
    # The simulator's reviews of a 4 or 5 cite what the user liked: the same attributes, so nearly all are factual.
    assert factual_scores(oracle, *_units(high), high["review"].tolist()).mean() > 0.9
    # A 3 gets a neutral review ("It is okay."), which names nothing.
    assert factual_scores(oracle, *_units(middle), middle["review"].tolist()).sum() == 0
    # Another unit's review mostly names the wrong attributes.
    shuffled = high["review"].sample(frac=1.0, random_state=0).tolist()
    assert factual_scores(oracle, *_units(high), shuffled).mean() < 0.5


def test_unrelated_text_scores_zero_and_naming_the_top_driver_scores_one(shop_reviews):
    oracle, reviews = shop_reviews
    units = list(zip(*_units(reviews.head(80))))
    scores = factual_scores(oracle, *zip(*units), ["ok"] * len(units))
    assert scores.shape == (len(units),) and scores.dtype == np.float64 and scores.sum() == 0
    with_driver = [(u, i, t) for u, i, t in units if driving_attributes(oracle, u, i, t)]
    assert len(with_driver) > 20
    rng = np.random.default_rng(0)
    tops = [driving_attributes(oracle, u, i, t)[0] for u, i, t in with_driver]
    # The simulator's own phrase for the top driver ("cherry-red colour", "Aurelle quality", ...), and its last synonym.
    phrases = [f"Love the {attribute_phrase(a, v, rng)}." for a, v in tops]
    assert factual_scores(oracle, *zip(*with_driver), phrases).tolist() == [1.0] * len(with_driver)
    synonyms = [f"so {attribute_words(a, v)[-1].upper()}!" for a, v in tops]
    assert factual_scores(oracle, *zip(*with_driver), synonyms).tolist() == [1.0] * len(with_driver)
    with pytest.raises(ValueError, match="need one of each per unit"):
        factual_scores(oracle, ["u0"], ["i0", "i1"], [0], ["ok"])
    with pytest.raises(ValueError, match="text 0 must be a string"):
        factual_scores(oracle, *zip(*units[:1]), [None])

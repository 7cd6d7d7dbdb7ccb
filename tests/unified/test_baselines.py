"""The UniMP benchmark's baselines: one shared set of checks per interface, run over its whole registry,
and a check per method that it learns something real on a small synthetic problem with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from tailorgen.unified.baselines import (
    EXPLANATION,
    RATING,
    RECOMMENDERS,
    SEARCH,
    AttributeTemplate,
    DenseSearch,
    ExplanationBaseline,
    MostPopular,
    NearestReview,
    RatingBaseline,
    Recommender,
    SearchBaseline,
    top_k,
)
from tailorgen.unified.baselines.recommend import _CornacSequential

# Tiny but real: enough epochs to learn the synthetic transition, seconds each.
FAST = {
    "sasrec": dict(embedding_dim=32, num_blocks=1, n_epochs=8, max_len=10, batch_size=64, n_sample=64, dropout=0.1),
    "gru4rec": dict(hidden=32, n_epochs=8, max_len=10, batch_size=32, n_sample=64),
}
SEQUENTIAL = ["sasrec", "gru4rec"]  # checked on a transition; mostpop on popularity


def make_recommender(name: str) -> Recommender:
    return RECOMMENDERS[name](**FAST.get(name, {}))


# ---------------------------------------------------------------- recommendation

N_GROUPS, GROUP_SIZE = 4, 8
ITEMS = [f"i{g}{j}" for g in range(N_GROUPS) for j in range(GROUP_SIZE)]
COLD = ["cold0", "cold1"]  # in the catalog, never in training
CATALOG = ITEMS + COLD


def group(item: str) -> int:
    return int(item[1])


@pytest.fixture(scope="module")
def sequences() -> dict[str, list[str]]:
    """Users walk the groups in a cycle 0 -> 1 -> 2 -> 3 -> 0, a random item of each group; within a
    group, item j is drawn with weight 1/(j+1), so popularity is known too."""
    rng = np.random.default_rng(0)
    p = 1 / np.arange(1, GROUP_SIZE + 1)
    p /= p.sum()
    out = {}
    for u in range(150):
        g = int(rng.integers(N_GROUPS))
        seq = []
        for _ in range(12):
            seq.append(f"i{g}{rng.choice(GROUP_SIZE, p=p)}")
            g = (g + 1) % N_GROUPS
        out[f"u{u}"] = seq
    return out


@pytest.fixture(scope="module")
def fitted(sequences) -> dict[str, Recommender]:
    train = {u: s[:-1] for u, s in sequences.items()}
    return {name: make_recommender(name).fit(train, CATALOG, seed=0) for name in RECOMMENDERS}


@pytest.mark.parametrize("name", RECOMMENDERS)
def test_recommender_scores_any_history_in_the_catalogs_order(name, fitted, sequences):
    model = fitted[name]
    assert isinstance(model, Recommender) and model.name == name
    hist = sequences["u0"][:5]
    histories = [hist, hist + ["unknown"], ["unknown", *hist], ["unknown"], [], sequences["u1"]]
    scores = model.score(histories)
    assert scores.shape == (len(histories), len(CATALOG)) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    # an unknown item is ignored, wherever it stands
    np.testing.assert_array_equal(scores[1], scores[0])
    np.testing.assert_array_equal(scores[2], scores[0])
    # catalog items never trained on never outrank a trained one
    cold = [CATALOG.index(c) for c in COLD]
    assert scores[:, cold].max(axis=1).tolist() <= scores[:, : len(ITEMS)].min(axis=1).tolist()
    assert model.score([]).shape == (0, len(CATALOG))


@pytest.mark.parametrize("name", RECOMMENDERS)
def test_recommender_is_deterministic_under_a_seed(name, fitted, sequences):
    train = {u: s[:-1] for u, s in list(sequences.items())[:60]}
    histories = [s[:6] for s in list(sequences.values())[:5]]
    a = make_recommender(name).fit(train, CATALOG, seed=3).score(histories)
    b = make_recommender(name).fit(train, CATALOG, seed=3).score(histories)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", RECOMMENDERS)
def test_recommender_refuses_a_catalog_it_cannot_use(name):
    with pytest.raises(ValueError):
        make_recommender(name).fit({"u": ["a"]}, ["a", "a"])
    with pytest.raises(ValueError):
        make_recommender(name).fit({"u": ["x", "y"]}, ["a", "b"])


@pytest.mark.parametrize("name", SEQUENTIAL)
def test_sequential_recommender_learns_the_group_transition(name, fitted, sequences):
    """The held-out item's group follows the history's last group; chance puts 1/4 of the top 8 there."""
    model = fitted[name]
    histories = [s[:-1] for s in sequences.values()]
    top = top_k(model.score(histories), CATALOG, GROUP_SIZE)
    hit = np.mean([group(t) == (group(h[-1]) + 1) % N_GROUPS for h, row in zip(histories, top) for t in row])
    assert hit > 0.8, f"{name}: {hit:.2f} of the top {GROUP_SIZE} in the next group (chance 0.25)"


def test_mostpop_recovers_popularity(fitted, sequences):
    counts = {}
    for s in sequences.values():
        for i in s[:-1]:
            counts[i] = counts.get(i, 0) + 1
    scores = fitted["mostpop"].score([["i00"]])[0]
    assert scores.tolist() == [float(counts.get(i, 0)) for i in CATALOG]
    assert top_k(scores[None], CATALOG, 1)[0] == [max(counts, key=counts.get)]


def test_every_recommender_has_a_learning_check():
    assert set(RECOMMENDERS) == {*SEQUENTIAL, "mostpop"}
    assert all(issubclass(RECOMMENDERS[n], _CornacSequential) for n in SEQUENTIAL)
    assert RECOMMENDERS["mostpop"] is MostPopular


def test_top_k_masks_the_excluded_items_and_orders_best_first():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [1.0, 0.0, 0.2, 0.3]], np.float32)
    ids = ["a", "b", "c", "d"]
    assert top_k(scores, ids, 2) == [["b", "d"], ["a", "d"]]
    assert top_k(scores, ids, 2, exclude=[["b"], ["a", "zzz"]]) == [["d", "c"], ["d", "c"]]
    assert top_k(scores, ids, 10, exclude=[ids, []]) == [[], ["a", "d", "c", "b"]]
    with pytest.raises(ValueError):
        top_k(scores, ids[:3], 2)


# ---------------------------------------------------------------- search

COLOURS = ["red", "blue", "green", "yellow", "black"]
PATTERNS = ["striped", "dotted", "checked", "plain"]
KINDS = ["shirt", "dress", "boots"]
SEARCH_ITEMS = [f"s{n}" for n in range(len(COLOURS) * len(PATTERNS) * len(KINDS))]
SEARCH_TEXTS = [f"A {c} {p} {k} made of soft cotton" for c in COLOURS for p in PATTERNS for k in KINDS]


@pytest.fixture(scope="module")
def searchers() -> dict[str, SearchBaseline]:
    return {name: SEARCH[name]().fit(SEARCH_ITEMS, SEARCH_TEXTS) for name in SEARCH}


@pytest.mark.parametrize("name", SEARCH)
def test_search_scores_every_item_for_every_query(name, searchers):
    model = searchers[name]
    assert isinstance(model, SearchBaseline) and model.name == name
    queries = ["red shirt", "the", "", "zzzq unknownword"]
    scores = model.score(queries)
    assert scores.shape == (len(queries), len(SEARCH_ITEMS)) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    assert model.score([]).shape == (0, len(SEARCH_ITEMS))
    np.testing.assert_array_equal(SEARCH[name]().fit(SEARCH_ITEMS, SEARCH_TEXTS).score(queries), scores)
    with pytest.raises(TypeError):
        model.score("red shirt")
    with pytest.raises(ValueError):
        SEARCH[name]().fit(SEARCH_ITEMS, SEARCH_TEXTS[:-1])


@pytest.mark.parametrize("name", SEARCH)
def test_search_finds_the_item_a_query_describes(name, searchers):
    model = searchers[name]
    picks = [0, 7, 22, 41, 59]
    queries = [SEARCH_TEXTS[p] for p in picks] + ["green dotted boots"]
    expected = [*picks, SEARCH_TEXTS.index("A green dotted boots made of soft cotton")]
    top1 = model.score(queries).argmax(axis=1).tolist()
    assert top1 == expected


def test_dense_search_reuses_precomputed_item_embeddings(searchers):
    fresh = searchers["dense"]
    cached = DenseSearch(encoder=fresh.encoder, item_embeddings=fresh.item_matrix_ * 3).fit(SEARCH_ITEMS, SEARCH_TEXTS)
    np.testing.assert_allclose(cached.score(["red shirt"]), fresh.score(["red shirt"]), atol=1e-6)
    with pytest.raises(ValueError):
        DenseSearch(encoder=fresh.encoder, item_embeddings=fresh.item_matrix_[:3]).fit(SEARCH_ITEMS, SEARCH_TEXTS)


# ---------------------------------------------------------------- rating


@pytest.fixture(scope="module")
def ratings():
    """Ratings 1..5 from a global mean, user and item effects and a rank-2 taste, with noise."""
    rng = np.random.default_rng(1)
    n_users, n_items = 80, 50
    bu, bi = rng.normal(0, 0.6, n_users), rng.normal(0, 0.6, n_items)
    pu, qi = rng.normal(0, 0.5, (n_users, 2)), rng.normal(0, 0.5, (n_items, 2))
    users, items, values = [], [], []
    for u in range(n_users):
        for i in rng.choice(n_items, 25, replace=False):
            r = 3.5 + bu[u] + bi[i] + pu[u] @ qi[i] + rng.normal(0, 0.3)
            users.append(f"u{u}")
            items.append(f"i{i}")
            values.append(float(np.clip(np.round(r), 1, 5)))
    cut = int(0.8 * len(values))
    order = rng.permutation(len(values))
    tr, te = order[:cut], order[cut:]

    def pick(idx):
        return [users[k] for k in idx], [items[k] for k in idx], np.array([values[k] for k in idx])

    return pick(tr), pick(te)


@pytest.mark.parametrize("name", RATING)
def test_rating_predicts_within_the_scale_for_any_user_and_item(name, ratings):
    (u, i, r), (tu, ti, _) = ratings
    model = RATING[name]().fit(u, i, r, seed=0)
    assert isinstance(model, RatingBaseline) and model.name == name
    users = [tu[0], "new-user", tu[1], "new-user"]
    items = [ti[0], ti[1], "new-item", "new-item"]
    pred = model.predict(users, items)
    assert pred.shape == (4,) and pred.dtype == np.float32 and np.isfinite(pred).all()
    assert (pred >= r.min()).all() and (pred <= r.max()).all()
    assert pred[3] == pytest.approx(np.clip(r.mean(), r.min(), r.max()), abs=1e-4)
    assert model.predict([], []).shape == (0,)
    np.testing.assert_array_equal(RATING[name]().fit(u, i, r, seed=0).predict(tu, ti), model.predict(tu, ti))
    with pytest.raises(ValueError):
        RATING[name]().fit(u, i[:-1], r)


@pytest.mark.parametrize("name", RATING)
def test_rating_beats_the_global_mean_on_held_out_ratings(name, ratings):
    (u, i, r), (tu, ti, tr) = ratings
    model = RATING[name]().fit(u, i, r, seed=0)
    rmse = float(np.sqrt(np.mean((model.predict(tu, ti) - tr) ** 2)))
    baseline = float(np.sqrt(np.mean((r.mean() - tr) ** 2)))
    assert rmse < 0.85 * baseline, f"{name}: RMSE {rmse:.3f} vs global mean {baseline:.3f}"


# ---------------------------------------------------------------- explanation

EXPLAIN_TEXTS = {
    "shirt": "Red cotton shirt with short sleeves",
    "boots": "Black leather ankle boots with laces",
    "bag": "Blue canvas tote bag",
    "shirt2": "Red linen shirt with long sleeves",
    "boots2": "Brown leather hiking boots",
}
TRAIN_REVIEWS = [
    ("ann", "shirt", "The shirt fits well."),
    ("ann", "boots", "Comfortable boots."),
    ("ann", "bag", "Roomy bag."),
    ("bob", "bag", "Does the job."),
    ("cat", "shirt", "Does the job."),
    ("cat", "boots", None),  # an interaction without a review is skipped
]
ATTRIBUTES = {
    "shirt": dict(title="Orbitex red striped shirt", tags=["t-shirt", "Orbitex", "red", "stripes"], brand="Orbitex"),
    "boots2": dict(title="Brisa boots, checked in plum", category="boot", tags=None, brand="Brisa"),
}


def make_explainer(name: str) -> ExplanationBaseline:
    return EXPLANATION[name](item_attributes=ATTRIBUTES) if name == "template" else EXPLANATION[name]()


@pytest.mark.parametrize("name", EXPLANATION)
def test_explanation_writes_one_review_per_pair(name):
    model = make_explainer(name).fit(TRAIN_REVIEWS, EXPLAIN_TEXTS)
    assert isinstance(model, ExplanationBaseline) and model.name == name
    pairs = [("ann", "shirt2"), ("nobody", "boots2"), ("ann", "unknown-item"), ("nobody", "unknown-item")]
    out = model.explain(pairs)
    assert len(out) == len(pairs) and all(isinstance(s, str) and s.strip() for s in out)
    assert make_explainer(name).fit(TRAIN_REVIEWS, EXPLAIN_TEXTS).explain(pairs) == out
    assert model.explain([]) == []


def test_nearest_review_returns_the_users_review_of_the_most_similar_item():
    model = NearestReview().fit(TRAIN_REVIEWS, EXPLAIN_TEXTS)
    out = model.explain([("ann", "shirt2"), ("ann", "boots2"), ("bob", "shirt2"), ("nobody", "shirt2")])
    assert out == ["The shirt fits well.", "Comfortable boots.", "Does the job.", "Does the job."]
    # precomputed embeddings give the same answer
    ids = list(EXPLAIN_TEXTS)
    emb = model.encoder.encode([EXPLAIN_TEXTS[i] for i in ids])
    cached = NearestReview(encoder=model.encoder, item_embeddings=(ids, emb)).fit(TRAIN_REVIEWS, {})
    assert cached.explain([("ann", "shirt2"), ("ann", "boots2")]) == out[:2]


def test_attribute_template_names_the_items_own_title_and_tag_words():
    model = AttributeTemplate(item_attributes=ATTRIBUTES).fit(TRAIN_REVIEWS, EXPLAIN_TEXTS)
    shirt, boots, bag = model.explain([("ann", "shirt"), ("bob", "boots2"), ("ann", "bag")])
    assert (
        shirt
        == "Love the red striped shirt. Really happy with the t-shirt stripes. Great Orbitex quality, would buy again."
    )
    assert boots == "Love the boots checked plum. Great Brisa quality, would buy again."
    assert bag == "Love the blue canvas tote bag."  # no record: the title is the text's first sentence
    assert "red" not in boots and "plum" not in shirt


def test_every_explanation_method_has_a_learning_check():
    assert set(EXPLANATION) == {"nearest-review", "template"}

"""VectorIndex: one interface suite every kind passes, exactness of flat, recall of ivf and hnsw."""

import json

import numpy as np
import pytest

from tailorgen.retrieval import KINDS, VectorIndex

# Small-data parameters: ivf probes every list of a 200-vector index, hnsw searches wide, so the
# interface tests check the wrapper, not approximation error. Recall is tested separately.
SMALL = {"flat": {}, "ivf": {"nlist": 4, "nprobe": 4}, "hnsw": {"m": 16, "ef_search": 128}}
D = 32


def unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(n, d, n_clusters, seed, noise=1.0):
    """Unit vectors around random centres: the structure ivf and hnsw exploit, as real embeddings have."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, d)).astype(np.float32)
    return unit(centres[rng.integers(0, n_clusters, n)] + noise * rng.standard_normal((n, d)).astype(np.float32))


@pytest.fixture(scope="module")
def data():
    x = unit(np.random.default_rng(0).standard_normal((200, D)))
    return [f"item{i:03d}" for i in range(200)], x


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


def make(kind, ids, x):
    return VectorIndex(kind, **SMALL[kind]).add(ids, x)


def brute_force(base, queries, k):
    scores = queries @ base.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


# ---------------------------------------------------------------------------- every kind


def test_each_vector_finds_itself_first_then_its_true_neighbours(kind, data):
    ids, x = data
    index = make(kind, ids, x)
    found, scores = index.search(x[:20], k=5)
    assert [row[0] for row in found] == ids[:20]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    order, _ = brute_force(x, x[:20], 5)
    assert found == [[ids[j] for j in row] for row in order]
    assert scores.shape == (20, 5) and scores.dtype == np.float32
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "scores must come best first"


def test_incremental_add_appends_and_matches_one_shot_add(kind, data):
    ids, x = data
    index = VectorIndex(kind, **SMALL[kind]).add(ids[:150], x[:150])
    index.add(ids[150:], x[150:])
    assert len(index) == 200 and index.ids == ids and "item199" in index
    found, _ = index.search(x[150:160], k=3)
    assert [row[0] for row in found] == ids[150:160]
    if kind == "flat":
        assert found == make(kind, ids, x).search(x[150:160], k=3)[0]


def test_duplicate_ids_are_refused_and_leave_the_index_unchanged(kind, data):
    ids, x = data
    index = make(kind, ids[:10], x[:10])
    with pytest.raises(ValueError, match="'item003' is already in the index"):
        index.add(["new1", "item003"], x[10:12])
    with pytest.raises(ValueError, match="'new1' appears twice"):
        index.add(["new1", "new1"], x[10:12])
    assert len(index) == 10 and "new1" not in index
    assert index.search(x[:1], k=10)[0][0][-1] != "new1"


def test_exclusion_removes_ids_and_still_returns_k(kind, data):
    ids, x = data
    index = make(kind, ids, x)
    plain, plain_scores = index.search(x[:5], k=8)
    # Per query: drop the item itself and its best other neighbour.
    exclude = [{ids[i], plain[i][1]} for i in range(5)]
    found, scores = index.search(x[:5], k=6, exclude=exclude)
    for i in range(5):
        assert len(found[i]) == 6 and not exclude[i] & set(found[i])
        assert found[i] == plain[i][2:8]
        np.testing.assert_allclose(scores[i], plain_scores[i][2:8], rtol=1e-6)
    # One set for all queries; ids not in the index are ignored.
    shared = {ids[0], ids[1], "not-indexed"}
    found, _ = index.search(x[:3], k=10, exclude=shared)
    assert all(len(row) == 10 and not shared & set(row) for row in found)


def test_save_and_load_give_identical_results(kind, data, tmp_path):
    ids, x = data
    index = make(kind, ids, x)
    index.save(tmp_path / "idx")
    meta = json.loads((tmp_path / "idx" / "meta.json").read_text())
    assert meta["kind"] == kind and meta["dim"] == D and meta["count"] == 200
    loaded = VectorIndex.load(tmp_path / "idx")
    assert loaded.get_params() == index.get_params() and loaded.ids == ids
    a, sa = index.search(x[:30], k=7, exclude={ids[0]})
    b, sb = loaded.search(x[:30], k=7, exclude={ids[0]})
    assert a == b
    np.testing.assert_array_equal(sa, sb)
    with pytest.raises(FileExistsError):
        index.save(tmp_path / "idx")
    loaded.add(["extra"], x[:1] * -1)  # a loaded index keeps accepting new vectors
    assert loaded.search(-x[:1], k=1)[0] == [["extra"]]


def test_wrong_dimension_and_bad_vectors_are_refused_with_a_fix(kind, data):
    ids, x = data
    index = make(kind, ids[:50], x[:50])
    with pytest.raises(ValueError, match="dimension 16 but this index holds 32-dimensional"):
        index.search(x[:2, :16], k=3)
    with pytest.raises(ValueError, match="dimension 16"):
        index.add(["a"], x[:1, :16])
    bad = x[50:52].copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="row 1 contains NaN"):
        index.add(["a", "b"], bad)
    with pytest.raises(ValueError, match="all zeros"):
        index.add(["a"], np.zeros((1, D)))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(x[:1], k=0)
    with pytest.raises(ValueError, match=r"x\[None, :\]|queries\[None, :\]"):
        index.search(x[0], k=1)
    with pytest.raises(ValueError, match="2 ids for 1 vectors"):
        index.add(["a", "b"], x[:1])
    with pytest.raises(ValueError, match="3 entries for 2 queries"):
        index.search(x[:2], k=1, exclude=[set(), set(), set()])
    assert len(index) == 50


def test_batched_search_equals_one_query_at_a_time(kind, data):
    ids, x = data
    index = make(kind, ids, x)
    queries = unit(np.random.default_rng(1).standard_normal((25, D)))
    exclude = [{ids[i]} for i in range(25)]
    batch, batch_scores = index.search(queries, k=10, exclude=exclude)
    for i in range(25):
        one, one_scores = index.search(queries[i : i + 1], k=10, exclude=[exclude[i]])
        assert one[0] == batch[i]
        np.testing.assert_allclose(one_scores[0], batch_scores[i], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- kind-specific


def test_flat_equals_numpy_brute_force():
    x = unit(np.random.default_rng(2).standard_normal((3000, 48)))
    queries = unit(np.random.default_rng(3).standard_normal((40, 48)))
    ids = [str(i) for i in range(3000)]
    found, scores = VectorIndex("flat").add(ids, x).search(queries, k=10)
    order, expected = brute_force(x, queries, 10)
    assert found == [[ids[j] for j in row] for row in order]
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_kinds_reach_high_recall_on_clustered_data(kind):
    x = clustered(5200, D, n_clusters=50, seed=0)
    base, queries = x[:5000], x[5000:]
    ids = [f"v{i}" for i in range(5000)]
    exact, _ = VectorIndex("flat").add(ids, base).search(queries, k=10)
    approx, _ = VectorIndex(kind).add(ids, base).search(queries, k=10)  # default parameters
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.9, f"{kind} recall@10 = {recall:.3f}"


def test_parameters_are_checked_and_search_time_ones_can_change(data):
    ids, x = data
    with pytest.raises(ValueError, match="kind must be one of"):
        VectorIndex("annoy")
    with pytest.raises(TypeError, match="accepts: m, ef_construction, ef_search"):
        VectorIndex("hnsw", nprobe=3)
    with pytest.raises(ValueError, match="nprobe must be a positive integer"):
        VectorIndex("ivf", nprobe=0)
    with pytest.raises(RuntimeError, match="index is empty"):
        VectorIndex().search(x[:1], k=1)
    ivf = VectorIndex("ivf").add(ids, x)
    assert ivf.get_params()["nlist"] == 200 // 39  # resolved from the first batch
    ivf.set_params(nprobe=2)
    assert ivf._index.nprobe == 2
    with pytest.raises(ValueError, match="cannot be changed"):
        ivf.set_params(nlist=8)
    with pytest.raises(ValueError, match="exceeds the 3 vectors"):
        VectorIndex("ivf", nlist=10).add(ids[:3], x[:3])


def test_normalize_makes_scores_cosine_and_can_be_turned_off(data):
    ids, x = data
    scaled = x[:20] * 7.0
    cos = VectorIndex("flat").add(ids[:20], scaled)
    _, s = cos.search(scaled[:1], k=1)
    assert s[0, 0] == pytest.approx(1.0, abs=1e-5)
    raw = VectorIndex("flat", normalize=False).add(ids[:20], scaled)
    _, s = raw.search(scaled[:1], k=1)
    assert s[0, 0] == pytest.approx(49.0, rel=1e-5)


def test_fewer_than_k_available_pads_with_minus_inf(data):
    ids, x = data
    index = VectorIndex("flat").add(ids[:3], x[:3])
    found, scores = index.search(x[:1], k=5, exclude={ids[0]})
    assert len(found[0]) == 2 and np.isneginf(scores[0, 2:]).all()

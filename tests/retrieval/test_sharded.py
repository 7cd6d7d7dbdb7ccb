"""ShardedIndex: S shards searched apart and merged give the search of one index of everything."""

import itertools
import json

import numpy as np
import pytest

from tailorgen.retrieval import ShardedIndex, VectorIndex, load_index, merge_top_k


def unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((12, 24)).astype(np.float32)
    x = unit(centres[rng.integers(0, 12, 600)] + 0.6 * rng.standard_normal((600, 24)).astype(np.float32))
    return [f"item{i:03d}" for i in range(600)], x


def shards_of(kind, ids, x, cuts, params, folder):
    """One index of everything, and shards filled from copies of one trained empty index (as scale index does)."""
    whole = VectorIndex(kind, **params).add(ids, x)
    VectorIndex(kind, **params).train(x[whole.training_rows(len(x))], len(x)).save(folder / "trained")
    bounds = [0, *cuts, len(ids)]
    shards = [VectorIndex.load(folder / "trained").add(ids[a:b], x[a:b]) for a, b in itertools.pairwise(bounds)]
    return whole, ShardedIndex(shards)


@pytest.mark.parametrize("kind,params", [("flat", {}), ("ivf", {"nlist": 16, "nprobe": 3, "train_size": 600})])
def test_shards_searched_and_merged_are_the_search_of_one_index(data, kind, params, tmp_path):
    ids, x = data
    whole, sharded = shards_of(kind, ids, x, [150, 380], params, tmp_path)
    assert sharded.ids == whole.ids and len(sharded) == 600 and "item599" in sharded
    queries = x[::7] + 0.05
    exclude = [set(ids[i : i + 25]) for i in range(0, 7 * len(queries), 7)]  # many of each query's neighbours
    for ex in (None, exclude):
        found, scores = sharded.search(queries, 10, exclude=ex)
        expected, expected_scores = whole.search(queries, 10, exclude=ex)
        assert found == expected
        np.testing.assert_allclose(scores, expected_scores, atol=1e-6)
        if ex is not None:
            assert all(not (set(f) & e) for f, e in zip(found, ex, strict=True))
    sharded.set_params(**({"nprobe": 16} if kind == "ivf" else {}))
    assert sharded.get_params() == whole.set_params(**({"nprobe": 16} if kind == "ivf" else {})).get_params()


def test_fewer_than_k_in_all_shards_pads_with_minus_inf(data):
    ids, x = data
    sharded = ShardedIndex([VectorIndex().add(ids[:2], x[:2]), VectorIndex().add(ids[2:5], x[2:5])])
    found, scores = sharded.search(x[:3], 8, exclude={"item000"})
    assert [len(f) for f in found] == [4, 4, 4] and np.isinf(scores[:, 4:]).all() and np.isfinite(scores[:, :4]).all()
    assert sorted(found[0]) == ["item001", "item002", "item003", "item004"]


def test_merge_top_k_keeps_the_best_and_earlier_shards_on_ties():
    a = ([["a1", "a2"]], np.array([[0.9, 0.5]], np.float32))
    b = ([["b1"]], np.array([[0.5, -np.inf]], np.float32))
    ids, scores = merge_top_k([a, b], 2)
    assert ids == [["a1", "a2"]] and scores.tolist() == [[pytest.approx(0.9), 0.5]]
    ids, _ = merge_top_k([b, a], 3)
    assert ids == [["a1", "b1", "a2"]]
    with pytest.raises(ValueError, match="at least one"):
        merge_top_k([], 3)


def test_saved_shards_load_as_one_and_a_damaged_folder_is_refused(data, tmp_path):
    ids, x = data
    _, sharded = shards_of("flat", ids, x, [300], {}, tmp_path)
    sharded.save(tmp_path / "s")
    loaded = load_index(tmp_path / "s")
    assert isinstance(loaded, ShardedIndex) and loaded.ids == sharded.ids
    assert loaded.search(x[:5], 4)[0] == sharded.search(x[:5], 4)[0]
    assert isinstance(load_index(tmp_path / "s" / "shard-00000"), VectorIndex)
    with pytest.raises(FileExistsError):
        sharded.save(tmp_path / "s")
    meta = json.loads((tmp_path / "s" / "shards.json").read_text())
    meta["shards"][1]["count"] = 7
    (tmp_path / "s" / "shards.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="shard-00001 holds 300 vectors, not 7"):
        ShardedIndex.load(tmp_path / "s")
    meta["shards"][1] |= {"name": "../../elsewhere", "count": 300}
    (tmp_path / "s" / "shards.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="is not a saved index"):
        ShardedIndex.load(tmp_path / "s")


def test_shards_must_agree_and_not_share_ids(data):
    ids, x = data
    with pytest.raises(ValueError, match="item001.*unique"):
        ShardedIndex([VectorIndex().add(ids[:3], x[:3]), VectorIndex().add(ids[1:4], x[1:4])])
    with pytest.raises(ValueError, match="one kind and dimension"):
        ShardedIndex([VectorIndex().add(ids[:3], x[:3]), VectorIndex().add(ids[3:6], x[3:6, :8])])
    with pytest.raises(ValueError, match="at least one shard"):
        ShardedIndex([])

"""ShardedIndex: S shards searched apart and merged give the search of one index of everything."""

import itertools
import json
import re

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
    for change, says in (
        ({"count": 7}, "counts do not add up"),
        ({"count": 7, "total": 307}, "shard-00001 holds 300 flat vectors of dimension 24, not 7 flat of 24"),
        ({"name": ".."}, "shard 1 is named '..', expected 'shard-00001'"),
        ({"name": "../../elsewhere"}, "is named '../../elsewhere'"),
    ):
        bad = json.loads(json.dumps(meta))
        bad["count"] = change.pop("total", bad["count"])
        bad["shards"][1] |= change
        (tmp_path / "s" / "shards.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=re.escape(says)):
            ShardedIndex.load(tmp_path / "s")


def test_an_empty_shard_finds_nothing_and_the_others_answer(data, tmp_path):
    ids, x = data
    VectorIndex().train(x[:1], 1).save(tmp_path / "empty")  # trained, no vectors: a run of items without images
    sharded = ShardedIndex([VectorIndex.load(tmp_path / "empty"), VectorIndex().add(ids[:50], x[:50])])
    found, _ = sharded.search(x[:3], 5)
    assert found == VectorIndex().add(ids[:50], x[:50]).search(x[:3], 5)[0]
    np.testing.assert_allclose(sharded.vector("item007"), x[7], atol=1e-6)
    assert sharded.vector("nope") is None


def test_shards_must_agree_and_not_share_ids(data):
    ids, x = data
    with pytest.raises(ValueError, match="item001.*unique"):
        ShardedIndex([VectorIndex().add(ids[:3], x[:3]), VectorIndex().add(ids[1:4], x[1:4])])
    with pytest.raises(ValueError, match="one kind and dimension"):
        ShardedIndex([VectorIndex().add(ids[:3], x[:3]), VectorIndex().add(ids[3:6], x[3:6, :8])])
    with pytest.raises(ValueError, match="at least one shard"):
        ShardedIndex([])
    ivf = {"nlist": 4, "train_size": 100}
    apart = [VectorIndex("ivf", **ivf).add(ids[a : a + 100], x[a : a + 100]) for a in (0, 100)]
    with pytest.raises(ValueError, match="trained apart"):
        ShardedIndex(apart)
    np.testing.assert_allclose(apart[1].vector("item150"), x[150], atol=1e-6)  # ivf reconstructs through its map

"""Decoupled text/image retrievers over VectorIndex, and the `tailorgen search` command."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tailorgen.retrieval import EmbeddingRetriever, EmbeddingTable, ImageRetriever, TextRetriever, VectorIndex


def unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def emb():
    return [f"it{i}" for i in range(100)], unit(np.random.default_rng(0).standard_normal((100, 16)))


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_retrieve_uses_the_items_own_embedding_and_leaves_it_out(emb, kind):
    ids, x = emb
    r = TextRetriever.from_embeddings(ids, x, kind=kind)
    assert isinstance(r, TextRetriever) and r.modality == "text" and r.index.kind == kind
    out = r.retrieve(["it3", "it7"], k=4)
    expected = [[ids[j] for j in np.argsort(-(x @ x[i]))[1:5]] for i in (3, 7)]
    assert [[i for i, _ in row] for row in out] == expected
    assert all(isinstance(s, float) for row in out for _, s in row)
    with_self = r.retrieve(["it3"], k=1, include_self=True)
    assert with_self[0][0][0] == "it3" and with_self[0][0][1] == pytest.approx(1.0, abs=1e-5)


def test_extra_exclusions_per_item_or_shared(emb):
    ids, x = emb
    r = ImageRetriever.from_embeddings(ids, x)
    first = r.retrieve(["it0", "it1"], k=3)
    history = [{first[0][0][0]}, {first[1][0][0], first[1][1][0]}]
    out = r.retrieve(["it0", "it1"], k=3, exclude=history)
    assert [i for i, _ in out[0]] == [i for i, _ in first[0][1:]] + [out[0][2][0]]
    assert all(len(row) == 3 and not h & {i for i, _ in row} for row, h in zip(out, history))
    shared = r.retrieve(["it0", "it1"], k=3, exclude={"it0"})
    assert all("it0" not in {i for i, _ in row} for row in shared)


def test_retrieve_vectors_and_missing_items(emb):
    ids, x = emb
    r = ImageRetriever.from_embeddings(ids, x)
    assert r.retrieve_vectors(x[5:6], k=1)[0][0][0] == "it5"
    with pytest.raises(KeyError, match="'nope' has no image embedding .items without an image"):
        r.retrieve(["it1", "nope"], k=2)
    with pytest.raises(TypeError, match="wrap a single id"):
        r.retrieve("it1", k=2)


def test_embeddings_may_differ_from_the_pool_and_a_dict_works(emb):
    ids, x = emb
    pool = VectorIndex().add(ids[:50], x[:50])
    r = EmbeddingRetriever(pool, {i: v for i, v in zip(ids[50:], x[50:])})
    (row,) = r.retrieve(["it60"], k=3)
    assert all(int(i[2:]) < 50 for i, _ in row)
    table = EmbeddingTable(ids, x)
    assert len(table) == 100 and "it9" in table and np.array_equal(table["it9"], x[9])
    with pytest.raises(ValueError, match="dimension 8"):
        EmbeddingRetriever(pool, {"a": np.ones(8)})
    with pytest.raises(ValueError, match="'it1' appears more than once"):
        EmbeddingTable(["it1", "it1"], x[:2])


# ---------------------------------------------------------------------------- CLI


def _cli():
    """The `tailorgen` group with `search` registered (importing the module attaches the command)."""
    import importlib

    from tailorgen.cli import main

    importlib.import_module("tailorgen.cli.search")
    return main


class _FakeEncoder:
    fingerprint = "fake:0"

    def __init__(self, modality):
        self.modality = modality


@pytest.fixture
def fake_embeddings(monkeypatch, small_shop):
    """Embeddings that make item k's neighbours k+1, k+2, ... so the CLI's output is predictable."""
    import tailorgen.encoders
    import tailorgen.encoders.factory
    from tailorgen.data import Dataset

    ids = Dataset(small_shop).items.column("item_id").to_pylist()
    angles = np.arange(len(ids), dtype=np.float32) * 0.001
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1)

    def encode_catalog(dataset, encoder, cache_dir=None, progress=True):
        if encoder.modality == "image":
            return ids[1:], vectors[1:]  # pretend the first item has no image
        return ids, vectors

    monkeypatch.setattr(tailorgen.encoders, "encode_catalog", encode_catalog)
    monkeypatch.setattr(tailorgen.encoders.factory, "make_encoder", lambda m, spec, device="cpu": _FakeEncoder(m))
    return ids


def test_search_cli_prints_a_table_and_json(small_shop, fake_embeddings):
    main = _cli()

    ids = fake_embeddings
    runner = CliRunner()
    res = runner.invoke(main, ["search", str(small_shop), "--item", ids[10], "--k", "3"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith(f"text neighbours of {ids[10]}") and "400 items" in lines[0]
    assert lines[1].split() == ["rank", "item_id", "score", "title"]
    found = [ln.split()[1] for ln in lines[2:5]]
    assert set(found[:2]) == {ids[9], ids[11]} and found[2] in (ids[8], ids[12])  # equal angles tie
    res = runner.invoke(
        main, ["search", str(small_shop), "--item", ids[0], "--by", "text", "--k", "2", "--json", "--kind", "hnsw"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["query"]["item_id"] == ids[0] and out["index"] == "hnsw"
    assert [n["item_id"] for n in out["neighbours"]] == [ids[1], ids[2]]
    assert all(n["title"] for n in out["neighbours"])


def test_search_cli_errors_name_the_problem(small_shop, fake_embeddings):
    main = _cli()

    runner = CliRunner()
    res = runner.invoke(main, ["search", str(small_shop), "--item", "missing-item"])
    assert res.exit_code != 0 and "'missing-item' is not in" in res.output
    res = runner.invoke(main, ["search", str(small_shop), "--item", fake_embeddings[0], "--by", "image"])
    assert res.exit_code != 0 and "has no image" in res.output

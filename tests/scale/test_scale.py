"""The Dask twins write what the single-machine commands write, survive a killed worker and skip done work.

Every job runs on a real LocalCluster of two worker processes on 127.0.0.1."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tailorgen.data import Dataset
from tailorgen.encoders import encode_catalog
from tailorgen.encoders.catalog import catalog_cache_path, read_embeddings
from tailorgen.encoders.factory import make_encoder
from tailorgen.evaluation.bench_iamg import IAMGBenchConfig, run_iamg_benchmark
from tailorgen.generation.iamg import IAMGGenerator, pick_requests
from tailorgen.generation.output import generate_into, run_config
from tailorgen.retrieval import ShardedIndex, VectorIndex
from tailorgen.scale import bench_on_dask, dask_client, encode_on_dask, generate_on_dask, index_on_dask
from tailorgen.scale.search import ShardsOnCluster


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2, announce=False) as c:
        yield c


@pytest.fixture()
def shop(small_shop, tmp_path):
    """A copy of the session's small shop, so each test's embeddings and parts are its own."""
    import shutil

    copy = tmp_path / "shop"
    shutil.copytree(small_shop, copy, ignore=shutil.ignore_patterns("embeddings"))
    return copy


def _pairs(shop, k, seed=3):
    ds = Dataset(shop)
    return pick_requests(ds.user_histories(), ds.items.column("item_id").to_pylist(), k, 5, np.random.default_rng(seed))


@pytest.mark.parametrize("modality", ["text", "image"])
def test_encode_parts_join_into_the_single_machine_cache(client, shop, tmp_path, modality):
    encoded = encode_on_dask(client, shop, modality, partition_rows=150, progress=False)
    assert [len(p) for p in encoded.parts] == [150, 150, 100] and encoded.skipped == 0
    encoder = make_encoder(modality, None)
    assert encoded.cache_file == catalog_cache_path(Dataset(shop), encoder)  # `tailorgen encode` reads it
    ids, vectors = read_embeddings(encoded.cache_file)
    single_ids, single = encode_catalog(Dataset(shop), encoder, cache_dir=tmp_path / "single", progress=False)
    assert ids == single_ids
    # Images go through the same batches, so bit for bit; sentence-transformers sorts each call's
    # texts by length into batches, so a partition's batches differ and floats round differently.
    np.testing.assert_allclose(vectors, single, atol=0 if modality == "image" else 1e-6)
    # A rerun finds every part done; a lost part (and the joined file) is all it makes again.
    assert encode_on_dask(client, shop, modality, partition_rows=150, progress=False).skipped == 3
    encoded.cache_file.unlink()
    (encoded.parts_dir / "part-00001.npz").unlink()
    again = encode_on_dask(client, shop, modality, partition_rows=150, progress=False)
    assert again.skipped == 2 and read_embeddings(again.cache_file)[0] == ids


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_the_index_built_by_parts_is_the_index_of_one_add(client, shop, tmp_path, kind):
    params = {"nlist": 8, "nprobe": 2, "train_size": 300} if kind == "ivf" else {}
    index_on_dask(client, shop, tmp_path / "idx", "image", None, kind, params, partition_rows=120, progress=False)
    ids, vectors = read_embeddings(catalog_cache_path(Dataset(shop), make_encoder("image", None)))
    single = VectorIndex(kind, **params).add(ids, vectors)
    loaded = VectorIndex.load(tmp_path / "idx")
    assert loaded.ids == single.ids and loaded.get_params() == single.get_params()
    found, scores = loaded.search(vectors[:40], 10)
    expected, expected_scores = single.search(vectors[:40], 10)
    assert found == expected and np.array_equal(scores, expected_scores)
    assert not (tmp_path / ".idx.parts").exists()  # the parts go once the index is whole
    with pytest.raises(FileExistsError, match="overwrite"):
        index_on_dask(client, shop, tmp_path / "idx", "image", kind=kind, params=params, progress=False)
    with pytest.raises(ValueError, match="hnsw"):
        index_on_dask(client, shop, tmp_path / "hnsw", "image", kind="hnsw", progress=False)
    # In shards merged by the workers, searched on one machine and held on the cluster: the same answers.
    meta = index_on_dask(client, shop, tmp_path / "shards", "image", kind=kind, params=params,
                         partition_rows=120, progress=False, shards=3)  # fmt: skip
    sharded = ShardedIndex.load(tmp_path / "shards")
    assert (
        [len(s) for s in sharded.shards] == [s["count"] for s in meta["shards"]] == [240, 120, 40]
    )  # 4 parts: 2, 1, 1
    assert sharded.ids == single.ids and not (tmp_path / ".shards.parts").exists()
    on_cluster = ShardsOnCluster(client, tmp_path / "shards")
    exclude = [set(ids[i : i + 5]) for i in range(40)]
    for index in (sharded, on_cluster):
        found, scores = index.search(vectors[:40], 10, exclude=exclude)
        assert found == single.search(vectors[:40], 10, exclude=exclude)[0]
        np.testing.assert_allclose(scores, single.search(vectors[:40], 10, exclude=exclude)[1], atol=1e-6)
    with pytest.raises(ValueError, match="cannot exceed the partitions"):
        index_on_dask(client, shop, tmp_path / "many", "image", kind=kind, params=params, partition_rows=120,
                      progress=False, shards=5)  # fmt: skip


def _images(out: Path, record: dict) -> list[np.ndarray]:
    return [np.asarray(Image.open(out / f)) for f in record["images"]]


def _without_timings(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "seconds"}


# The generate tests read the session's shop itself: the workers keep its generator from one test to the next.
def test_generate_on_dask_writes_the_single_machine_run(client, small_shop, tiny_generator, tmp_path):
    shop = small_shop
    pairs = _pairs(shop, 10)
    options = {"n": 8, "seed": 5, "method": "full", "steps": 2, "guidance": 2.0, "rewriter": "template"}
    made = generate_on_dask(
        client, shop, pairs, tmp_path / "dask", generator=tiny_generator[0], batches_per_partition=1,
        progress=False, **options,
    )  # fmt: skip
    gen = IAMGGenerator(shop, tiny_generator[0], num_inference_steps=2)
    config = run_config(gen, pairs, **{k: options[k] for k in ("method", "n", "steps", "guidance", "rewriter", "seed")})
    single = generate_into(gen, pairs, tmp_path / "one", config, 8, 5, "full", progress=False)  # 4 requests a batch
    assert [_without_timings(r) for r in made] == [_without_timings(r) for r in single]
    for a, b in zip(made, single):
        for x, y in zip(_images(tmp_path / "dask", a), _images(tmp_path / "one", b)):
            assert np.abs(x.astype(int) - y.astype(int)).max() <= 1  # the same batches; at most a rounding step
    run = [json.loads((tmp_path / name / "run.json").read_text()) for name in ("dask", "one")]
    assert run[0] == run[1]
    lines = (tmp_path / "dask" / "records.jsonl").read_text().splitlines()
    assert [(json.loads(x)["user_id"], json.loads(x)["item_id"]) for x in lines] == pairs


def test_a_worker_killed_mid_job_loses_nothing_and_writes_nothing_twice(client, small_shop, tiny_generator, tmp_path):
    shop = small_shop
    pairs = _pairs(shop, 16, seed=9)
    out = tmp_path / "run"
    job = {"n": 16, "steps": 2, "generator": tiny_generator[0], "batches_per_partition": 1, "progress": False}
    result = {}
    runner = threading.Thread(target=lambda: result.update(records=generate_on_dask(client, shop, pairs, out, **job)))
    runner.start()
    deadline = time.monotonic() + 120
    while not list(out.glob("*/*/record.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    done_at_kill = len(list(out.glob("*/*/record.json")))
    os.kill(next(iter(client.run(os.getpid).values())), signal.SIGKILL)  # one worker process, kill -9
    runner.join(timeout=300)
    assert not runner.is_alive() and "records" in result
    assert 0 < done_at_kill < len(pairs), "the kill must land while the job runs"
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert sorted((r["user_id"], r["item_id"]) for r in records) == sorted(pairs)  # each once, none lost
    folders = list(out.glob("*/*__full"))
    assert len(folders) == len(pairs) and all(len(list(f.glob("image_*.png"))) == 16 for f in folders)
    assert not [p for p in out.rglob("*") if ".partial-" in p.name or ".old-" in p.name]
    # A rerun of the finished job (--resume) has nothing left to make.
    stamps = {f: f.stat().st_mtime_ns for f in out.glob("*/*/record.json")}
    generate_on_dask(client, shop, pairs, out, resume=True, **job)
    assert {f: f.stat().st_mtime_ns for f in out.glob("*/*/record.json")} == stamps


def test_the_benchmark_mapped_over_users_gives_the_same_record(client, tiny_generator, tiny_judge, tmp_path):
    cfg = IAMGBenchConfig(
        seed=11, users=40, shop_items=200, shop_users=80, steps=2, latency_requests=1, n_boot=200,
        diversity_users=3, diversity_n=2, quality_reference=60,
    )  # fmt: skip
    args = (cfg, tmp_path / "work", None, tiny_generator[0], tiny_judge[0])
    mapped = bench_on_dask(client, *args, partition_users=32, progress=False)
    single = run_iamg_benchmark(*args, progress=False)
    assert mapped["tasks"] == single["tasks"] and mapped["config"] == single["config"]
    values, expected = mapped["per_unit"]["personalization"], single["per_unit"]["personalization"]
    assert values.keys() == expected.keys()
    # Workers run one thread and this process two, so BLAS sums in another order and a pixel may round
    # to the next level (as in the generate test above); the image embeddings' metrics move in the
    # fifth decimal (1.3e-5 seen on diversity with the UniPC sampler).
    for method in expected:
        assert values[method].keys() == expected[method].keys()
        for metric in expected[method]:
            np.testing.assert_allclose(values[method][metric], expected[method][metric], atol=1e-4, err_msg=metric)
    with pytest.raises(ValueError, match="multiple of 32"):
        bench_on_dask(client, *args, partition_users=20, progress=False)


def test_the_commands_write_what_their_single_machine_twins_write(shop, tmp_path):
    from click.testing import CliRunner

    from tailorgen.cli import main

    runner = CliRunner()
    one = runner.invoke(main, ["index", str(shop), "--by", "image", "--kind", "ivf", "--param", "nlist=8",
                               "--out", str(tmp_path / "one")])  # fmt: skip
    assert one.exit_code == 0, one.output
    res = runner.invoke(main, ["scale", "index", str(shop), "--by", "image", "--kind", "ivf", "--param", "nlist=8",
                               "--partition-size", "150", "--out", str(tmp_path / "dask")])  # fmt: skip
    assert res.exit_code == 0, res.output
    for name in ("ids.parquet", "meta.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes()
    item = Dataset(shop).items.column("item_id")[0].as_py()
    found = [
        json.loads(runner.invoke(main, ["search", str(shop), "--item", item, "--by", "image", "--json", *extra]).output)
        for extra in ([], ["--index", str(tmp_path / "dask")])
    ]
    assert found[0]["neighbours"][:3] == found[1]["neighbours"][:3] and found[1]["index"] == "ivf"
    # Sharded: `search --index` on one machine and `scale search` on the cluster say the same.
    res = runner.invoke(main, ["scale", "index", str(shop), "--by", "image", "--partition-size", "150",
                               "--shards", "2", "--out", str(tmp_path / "sharded")])  # fmt: skip
    assert res.exit_code == 0 and "image vectors in 2 flat shards" in res.output, res.output
    query = ["--item", item, "--index", str(tmp_path / "sharded"), "--json"]
    here = json.loads(runner.invoke(main, ["search", str(shop), "--by", "image", *query]).stdout)
    there = runner.invoke(main, ["scale", "search", str(shop), *query, "--workers", "2"])
    assert there.exit_code == 0, there.output
    assert (
        json.loads(there.stdout) == here and here["neighbours"] == found[0]["neighbours"]
    )  # the vectors stay on the workers
    res = runner.invoke(main, ["scale", "search", str(shop), "--item", "nope", "--index", str(tmp_path / "sharded")])
    assert res.exit_code == 2 and "'nope' is not in" in res.output
    res = runner.invoke(main, ["scale", "search", str(shop), "--item", item, "--index", str(tmp_path / "one")])
    assert res.exit_code == 2 and "not a sharded index" in res.output
    # Mistakes are one line, before any cluster starts.
    for bad, says in (
        (["--param", "nlst=8"], "nlst"),
        (["--kind", "hnsw"], "hnsw"),
        (["--param", "nlist=x"], "NAME=INTEGER"),
    ):
        res = runner.invoke(main, ["scale", "index", str(shop), "--out", str(tmp_path / "bad"), *bad])
        assert res.exit_code == 2 and says in res.output and not (tmp_path / "bad").exists(), res.output


def _amazon_shards(tmp_path, n_items=300, n_reviews=1500, seed=5):
    """An Amazon 2023 dump cut into 3 meta and 4 reviews shards, with bad rows of every kind in them."""
    rng = np.random.default_rng(seed)
    meta = [{"parent_asin": f"P{i}", "title": f"Item {i}", "categories": ["Shop", f"C{i % 7}"], "price": float(i)}
            for i in range(n_items)]  # fmt: skip
    meta[10]["title"] = ""  # missing required field
    meta[250] = {"parent_asin": "P3", "title": "A repeat in a later shard", "price": -4.0}  # duplicate, bad price
    meta[40]["price"] = float("inf")  # kept without a price
    reviews = [
        {"user_id": f"U{rng.integers(80)}", "parent_asin": f"P{rng.integers(n_items + 20)}",
         "rating": float(rng.integers(1, 6)), "timestamp": 1_600_000_000_000 + int(rng.integers(10**9))}
        for _ in range(n_reviews)
    ]  # fmt: skip
    reviews[7]["rating"] = 9.0  # off the 1-5 scale
    lines = [json.dumps(r) for r in reviews]
    lines[900] = '{"user_id": "U1", broken'
    cut = lambda rows, k: [rows[i * len(rows) // k : (i + 1) * len(rows) // k] for i in range(k)]  # noqa: E731
    shards = {"meta": cut([json.dumps(m) for m in meta], 3), "reviews": cut(lines, 4)}
    paths = {}
    for name, parts in shards.items():
        (tmp_path / name).mkdir()
        paths[name] = [tmp_path / name / f"{name}-{k}.jsonl" for k in range(len(parts))]
        for path, part in zip(paths[name], parts):
            path.write_text("\n".join(part) + "\n")
        (tmp_path / f"{name}-all.jsonl").write_text("".join(p.read_text() for p in paths[name]))
    return paths


def test_import_by_shards_is_the_import_of_the_shards_concatenated(client, tmp_path):
    from click.testing import CliRunner

    from tailorgen.cli import main
    from tailorgen.data.adapters import import_dataset
    from tailorgen.data.errors import DataError
    from tailorgen.scale import import_on_dask

    paths = _amazon_shards(tmp_path)
    single = Dataset(import_dataset("amazon2023", [tmp_path / "reviews-all.jsonl", tmp_path / "meta-all.jsonl"],
                                    tmp_path / "single"))  # fmt: skip
    out = import_on_dask(client, "amazon2023", paths["reviews"], [str(tmp_path / "meta" / "*.jsonl")],
                         tmp_path / "sharded", progress=False)  # fmt: skip
    sharded = Dataset(out)
    assert sharded.items.equals(single.items) and sharded.interactions.equals(single.interactions)
    assert sharded.n_items == 298  # 300 rows, one without a title, one a repeat
    report = json.loads((out / "import_report.json").read_text())
    expected = json.loads((tmp_path / "single" / "import_report.json").read_text())
    assert report["skipped_by_reason"] == expected["skipped_by_reason"]
    assert sorted(str(s["field"]) for s in report["skipped"]) == sorted(str(s["field"]) for s in expected["skipped"])
    # The repeat is named in its own shard and line, against the first row in another shard.
    repeat = next(s for s in report["skipped"] if s["reason"].startswith("duplicate id"))
    assert repeat["file"].endswith("meta-2.jsonl") and repeat["line"] == 51 and "meta-0.jsonl:4" in repeat["reason"]
    broken = next(s for s in report["skipped"] if s["file"].endswith("reviews-2.jsonl"))
    assert broken["line"] == 151  # line 901 of the whole file is line 151 of the third shard

    with pytest.raises(DataError, match=r"meta-0.jsonl:11: field .title.: missing required field"):
        import_on_dask(client, "amazon2023", paths["reviews"], paths["meta"], tmp_path / "strict", strict=True,
                       progress=False)  # fmt: skip
    assert not (tmp_path / "strict").exists()  # a failed import writes nothing

    args = ["scale", "import", "amazon2023", "--reviews", str(tmp_path / "reviews" / "*.jsonl"), "--workers", "1"]
    meta = str(tmp_path / "meta" / "*.jsonl")
    res = CliRunner().invoke(main, [*args, "--meta", meta, "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert "imported 298 items" in res.output and Dataset(tmp_path / "cli").interactions.equals(single.interactions)
    res = CliRunner().invoke(main, [*args, "--meta", str(tmp_path / "nope-*.jsonl"), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "meta: no file matches" in res.output


def test_a_rerun_reuses_its_own_work_and_clears_another_jobs(tmp_path):
    from tailorgen.scale.index import shard_work_name, work_folder
    from tailorgen.scale.jobs import Partition

    out = tmp_path / "idx"
    job = {"kind": "ivf", "params": {"nlist": 8}, "counts": [120, 120]}
    (work_folder(out, job) / "part-00000").mkdir()
    assert (work_folder(out, dict(job)) / "part-00000").is_dir()  # the same job: its filled parts are kept
    assert not (work_folder(out, job | {"params": {"nlist": 16}}) / "part-00000").exists()
    # A shard waits under its range of parts: a rerun with other shards never takes it for its own.
    assert shard_work_name(Partition(0, 0, 2)) != shard_work_name(Partition(0, 0, 4))

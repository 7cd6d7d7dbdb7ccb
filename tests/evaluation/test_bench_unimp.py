"""`tailorgen bench unimp` end to end on a small shop, with tiny models: the record's layout and its checks."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tailorgen.cli import main
from tailorgen.evaluation.runner import read_record

TINY = ["steps=12", "batch_size=4", "hidden=32", "layers=1", "heads=2", "bpe_vocab=300", "threads=1"]


def test_bench_unimp_writes_the_common_record(small_shop, tiny_vq, tmp_path):
    out = tmp_path / "out"
    args = ["bench", "unimp", "--dataset", str(small_shop), "--work-dir", str(tmp_path / "work"), "--out", str(out)]
    args += ["--recommenders", "mostpop", "--tasks", "recommendation,rating,explanation", "--variants", "text-only"]
    args += ["--train", ",".join([*TINY, f"vq={tiny_vq}"])]  # unimp trains every task, image generation too
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    record = read_record(out)
    assert {"recommendation", "rating", "explanation"} <= set(record["tasks"])
    unseen = record["extras"]["unseen_test_targets"]  # a small shop leaves some items unsold in training
    assert unseen > 0 and len(record["tasks"]["recommendation_unseen"]["units"]["user_id"]) == unseen
    rec = record["results"]["recommendation"]
    assert {"unimp", "unimp-single", "unimp-text-only", "mostpop"} <= set(rec)
    assert {"hr@10", "ndcg@10", "mrr@10", "hr@3"} <= set(rec["unimp"])
    n_users = len(record["tasks"]["recommendation"]["units"]["user_id"])
    assert rec["unimp"]["ndcg@10"]["n"] == n_users > 0
    assert "unimp vs mostpop" in record["paired"]["recommendation"]["ndcg@10"]
    assert "unimp vs unimp-single" in record["paired"]["rating"]["mae"]
    assert set(record["results"]["rating"]) >= {"mean", "mf", "unimp"}
    expl = record["results"]["explanation"]
    assert {"nearest-review", "template"} <= set(expl) and "factual" in expl["unimp"]  # a shop: the oracle's score
    assert record["extras"]["latency_ms"]["top10_one_user_ms"]["median"] > 0
    assert record["extras"]["images"]["unimp"] and not record["extras"]["images"]["unimp-text-only"]
    assert (out / "report.html").exists()
    # The models are kept and reused while their config holds: a second run trains nothing.
    before = {p: p.stat().st_mtime for p in (tmp_path / "work" / "models").rglob("model.safetensors")}
    res = CliRunner().invoke(main, [*args, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["benchmark"] == "unimp"
    assert before == {p: p.stat().st_mtime for p in (tmp_path / "work" / "models").rglob("model.safetensors")}


def test_bench_unimp_measures_image_generation_with_its_controls(small_shop, tiny_vq, tmp_path):
    out = tmp_path / "out"
    args = ["bench", "unimp", "--dataset", str(small_shop), "--work-dir", str(tmp_path / "work"), "--out", str(out)]
    args += ["--tasks", "image_generation", "--image-users", "6", "--image-n", "2", "--no-single-task"]
    args += ["--train", ",".join([*TINY, f"vq={tiny_vq}"])]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    record = read_record(out)
    match = record["results"]["image_generation"]
    assert {"unimp", "unimp-no-history", "iamg", "catalog", "catalog-vq"} == set(match)
    assert match["unimp"]["keyword_match"]["n"] == 6 and 0 <= match["unimp"]["keyword_match"]["mean"] <= 1
    assert match["catalog"]["keyword_match"]["mean"] > 0.5  # the shipped judge reads real items well
    personal = record["results"]["image_generation_personalization"]
    assert {"unimp", "unimp-no-history", "iamg", "mismatched", "random-item", "catalog"} == set(personal)
    assert "unimp vs unimp-no-history" in record["paired"]["image_generation_personalization"]["utility_open"]
    extras = record["extras"]["image_generation"]
    assert extras["latency_seconds"]["one_image_median"] > 0 and {"unimp", "iamg"} <= set(extras["kid"])
    assert set(extras["per_attribute_match"]["unimp"]) == {"category", "colour", "pattern"}
    assert (out / "unimp_images.png").exists()


def test_iamg_answers_the_same_requests_without_ever_seeing_the_target(small_shop):
    from tailorgen.data import Dataset
    from tailorgen.evaluation.unimp_images import iamg_requests
    from tailorgen.generation.iamg import IAMGGenerator
    from tailorgen.unified.serialize import Event, Example

    ds = Dataset(small_shop)
    generator = IAMGGenerator(ds)
    histories = ds.user_histories()
    users = sorted(histories)[:4]
    examples = [Example(u, "image_generation", tuple(Event(i) for i in histories[u][:-1]), histories[u][-1],
                        query="dress red striped") for u in users]  # fmt: skip
    requests = iamg_requests(generator, examples)
    for ex, r in zip(examples, requests, strict=True):
        seen = {r.item_id, *(i for i, _ in r.text_neighbours), *(i for i, _ in r.image_neighbours)}
        assert ex.target not in seen and not seen & {e.item for e in ex.history}
        assert r.item_text == "dress red striped" and r.history == [e.item for e in ex.history]
        assert "dress red striped" in r.rewrite.text  # the keywords are what is rewritten
    made = generator.generate_batch([(r.user_id, r.item_id) for r in requests], requests=requests)
    size = generator.pipeline.image_size
    assert [g.images[0].size for g in made] == [(size, size)] * 4

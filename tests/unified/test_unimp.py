"""The unified model: serializer, item names, held-out split, loss, training, decoding, saving, CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tailorgen.cli import main
from tailorgen.data import Dataset
from tailorgen.unified import UniMP
from tailorgen.unified.item_ids import IdTrie, ItemIdentifiers
from tailorgen.unified.model import UnifiedModel
from tailorgen.unified.serialize import IMAGE_TASKS, TASKS, Event, Example, Serializer, render
from tailorgen.unified.tasks import build_task_split
from tailorgen.unified.tokenizer import PieceEncoder, train_tokenizer
from tailorgen.unified.train import UniMPTrainConfig, build_model, prepare, train_unimp
from tailorgen.unified.vocab import ANSWER, END_OF_CHUNK

# The four text tasks: image generation (tests/unified/test_imagine.py) needs a VQ tokenizer.
TEXT_TASKS = tuple(t for t in TASKS if t not in IMAGE_TASKS)
TINY = dict(steps=40, batch_size=8, hidden=32, layers=2, heads=2, bpe_vocab=300, warmup_steps=5, threads=1, lr=5e-3,
            tasks=TEXT_TASKS)  # fmt: skip


@pytest.fixture(scope="module")
def texts():
    return {f"i{k}": f"category dress price {10 + k}.00 brand Acme title red dress number {k}" for k in range(6)}


def _examples(items):
    history = (Event(items[0], 5.0, "Love the red colour."), Event(items[1], 3.0, None), Event(items[2], None, None))
    return [
        Example("u", "recommendation", history, items[3]),
        Example("u", "search", history, items[3], query="red dress"),
        Example("u", "rating", history, items[4], rating=4.0),
        Example("u", "explanation", history, items[5], review="Great red dress."),
    ]


@pytest.mark.parametrize("scheme", ["token", "semantic"])
def test_inference_prompt_is_the_training_sequence_cut_at_the_answer(texts, scheme):
    items = list(texts)
    ids = (
        ItemIdentifiers.tokens(items)
        if scheme == "token"
        else ItemIdentifiers.semantic(items, np.random.default_rng(0).normal(size=(6, 8)), levels=2, codebook_size=2)
    )
    tok = train_tokenizer(
        [*texts.values(), "What is the next item? Love the red colour. Great red dress."], ids.all_tokens(), 300
    )
    ser, enc = Serializer(texts, ids, max_history=5), PieceEncoder(tok)
    for ex in _examples(items):
        full, prompt = enc.encode(ser.pieces(ex)), enc.encode(ser.pieces(ex, with_answer=False))
        n = len(prompt.input_ids)
        assert np.array_equal(full.input_ids[:n], prompt.input_ids), ex.task
        assert tok.convert_ids_to_tokens(int(prompt.input_ids[-1])) == ANSWER
        assert full.task_answer[n:].all() and not full.task_answer[:n].any()  # the task's answer: exactly the rest
        assert tok.convert_ids_to_tokens(int(full.input_ids[-1])) == END_OF_CHUNK
        # History answers: each chunk's id (+ rating, review) and its end; nothing of the item's text.
        answer_text = tok.decode(full.input_ids[:n][full.answer[:n]])
        assert "category" not in answer_text and answer_text.count(END_OF_CHUNK) == 3
        assert " ".join(ids.name(items[0])).replace(" ", "") in answer_text.replace(" ", "")
        assert "<rate_5>" in answer_text and "Love the red colour." in answer_text
        assert full.images == tuple(e.item for e in ex.history) + (
            (ex.target,) if ex.task in ("rating", "explanation") else ()
        )


def test_names_are_single_tokens_with_no_space_between(texts):
    items = list(texts)
    ids = ItemIdentifiers.semantic(items, np.random.default_rng(0).normal(size=(6, 8)), levels=2, codebook_size=2)
    tok = train_tokenizer(list(texts.values()), ids.all_tokens(), 300)
    name = ids.name(items[0])
    assert tok(" ".join(name) + " <rate_4>", add_special_tokens=False)["input_ids"] == tok.convert_tokens_to_ids(
        [*name, "<rate_4>"]
    )


def test_semantic_ids_are_unique_and_similar_items_share_a_prefix():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16))
    content = np.repeat(centres, 10, axis=0) + 0.01 * rng.normal(size=(40, 16))
    items = [f"i{k}" for k in range(40)]
    ids = ItemIdentifiers.semantic(items, content.astype(np.float32), levels=2, codebook_size=4)
    names = [ids.name(i) for i in items]
    assert len(set(names)) == 40
    for g in range(4):  # the ten items around one centre share their first code, and no other group has it
        first = {names[k][0] for k in range(10 * g, 10 * g + 10)}
        assert len(first) == 1
    assert len({names[10 * g][0] for g in range(4)}) == 4
    trie = IdTrie([[hash(t) % 1000 for t in n] for n in names], items)
    assert trie.item([hash(t) % 1000 for t in names[7]]) == "i7"
    assert trie.allowed([]) and trie.item([-1]) is None


def test_no_held_out_interaction_is_shown_in_training(small_shop):
    split = build_task_split(Dataset(small_shop), TASKS, "last")
    assert split.train["image_generation"] and split.test["image_generation"]
    held = {(ex.user, ex.target) for part in (split.test, split.valid) for t in ("recommendation",) for ex in part[t]}
    assert held
    for task, examples in split.train.items():
        for ex in examples:
            assert (ex.user, ex.target) not in held or task == "search", task
            assert not {(ex.user, e.item) for e in ex.history} & held, task
    for ex in split.test["recommendation"]:  # the test history is everything before the test item
        assert [e.item for e in ex.history] == [e.item for e in split.histories[ex.user][:-1]]


def test_loss_reads_only_answers_weighted_and_focal(small_shop):
    cfg = UniMPTrainConfig(**TINY)
    prep = prepare(cfg, small_shop, progress=False)
    torch.manual_seed(0)
    model = build_model(cfg, prep)
    from tailorgen.unified.batch import collate

    exs = prep.examples[:3]
    enc = [prep.encoder.encode(prep.serializer.pieces(ex)) for ex in exs]
    batch = collate(enc, prep.encoder.tokenizer.pad_token_id, prep.images, [1.0] * 3)
    loss = model(batch.input_ids, batch.attention_mask, batch.image_features, batch.weights, focal_gamma=0.0)
    logits = model.logits(model.hidden_states(batch.input_ids, batch.attention_mask, batch.image_features))
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), batch.input_ids[:, 1:], reduction="none")
    w = batch.weights[:, 1:]
    assert torch.allclose(loss, (ce * w).sum() / w.sum(), atol=1e-5)
    focal = model(batch.input_ids, batch.attention_mask, batch.image_features, batch.weights, focal_gamma=2.0)
    assert focal < loss  # (1 - p)^2 < 1 shrinks every term


@pytest.fixture(scope="module")
def tiny_unimp(small_shop, tmp_path_factory):
    out = tmp_path_factory.mktemp("unimp") / "model"
    report = train_unimp(UniMPTrainConfig(**TINY), small_shop, out, progress=False)
    return out, report


def test_training_lowers_the_loss_and_saves_a_model_that_reloads_exactly(tiny_unimp, small_shop):
    out, report = tiny_unimp
    curve = report["loss_curve"]
    assert curve[-1] < curve[0] * 0.8, curve
    assert {"lm", "tokenizer", "projector.safetensors", "item_ids.json", "training_report.json"} <= {
        p.name for p in out.iterdir()
    }
    unimp = UniMP(Dataset(small_shop), out)
    again = UniMP(Dataset(small_shop), out)
    users = sorted(unimp.histories)[:3]
    assert unimp.recommend(users, 5) == again.recommend(users, 5)


def test_answers_name_only_real_items_and_valid_ratings(tiny_unimp, small_shop):
    out, _ = tiny_unimp
    unimp = UniMP(Dataset(small_shop), out)
    user = sorted(unimp.histories)[0]
    history = {e.item for e in unimp.history(user)}
    ranked = unimp.recommend([user], 20)[0]
    assert len(ranked) == 20 and not {i for i, _ in ranked} & history
    assert all(i in unimp.model.ids.position for i, _ in ranked)
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)
    expected, dist = unimp.rate(user, ranked[0][0])
    assert 1 <= expected <= 5 and abs(dist.sum() - 1) < 1e-5
    text = unimp.explain(user, ranked[0][0])
    assert "<" not in text  # no structure token, rating or item name inside an explanation


def test_semantic_ids_decode_real_items_and_leave_out_the_history(small_shop, tmp_path):
    cfg = UniMPTrainConfig(**{**TINY, "steps": 10}, id_scheme="semantic", codebook_size=8, id_levels=2)
    train_unimp(cfg, small_shop, tmp_path / "m", progress=False)
    unimp = UniMP(Dataset(small_shop), tmp_path / "m")
    users = sorted(unimp.histories)[:2]
    for user, ranked in zip(users, unimp.recommend(users, 10), strict=True):
        assert ranked and not {i for i, _ in ranked} & {e.item for e in unimp.history(user)}
        assert all(i in unimp.model.ids.position for i, _ in ranked)


def test_a_killed_training_resumes_to_the_same_weights(small_shop, tmp_path):
    from tailorgen.training import TrainingStopped

    cfg = UniMPTrainConfig(**{**TINY, "steps": 12})
    train_unimp(cfg, small_shop, tmp_path / "whole", progress=False, checkpoint_every=0)
    with pytest.raises(TrainingStopped):
        train_unimp(cfg, small_shop, tmp_path / "resumed", progress=False, checkpoint_every=5, stop_after=5)
    train_unimp(cfg, small_shop, tmp_path / "resumed", progress=False, checkpoint_every=5)
    a = UnifiedModel.from_pretrained(tmp_path / "whole").state_dict()
    b = UnifiedModel.from_pretrained(tmp_path / "resumed").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = dataclasses.replace(cfg, seed=1)
    train_unimp(other, small_shop, tmp_path / "other", progress=False, checkpoint_every=0)
    c = UnifiedModel.from_pretrained(tmp_path / "other").state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_a_pretrained_lm_trains_under_lora_and_reloads(small_shop, tmp_path):
    """As transformers tests itself: a tiny random Llama and tokenizer saved, then loaded as the base."""
    from transformers import LlamaConfig, LlamaForCausalLM

    base = tmp_path / "base"
    LlamaForCausalLM(LlamaConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=2)).save_pretrained(base)  # fmt: skip
    train_tokenizer(["category dress price brand title"], [], 400).save_pretrained(base)
    cfg = UniMPTrainConfig(**{**TINY, "steps": 6}, base_model=str(base), lora_rank=4)
    train_unimp(cfg, small_shop, tmp_path / "m", progress=False)
    frozen = LlamaForCausalLM.from_pretrained(base).state_dict()
    model = UnifiedModel.from_pretrained(tmp_path / "m")
    kept = model.lm.get_base_model().state_dict()
    q = "model.layers.0.self_attn.q_proj.base_layer.weight"
    assert torch.equal(kept[q], frozen["model.layers.0.self_attn.q_proj.weight"])  # the base stays frozen
    unimp, again = UniMP(Dataset(small_shop), tmp_path / "m"), UniMP(Dataset(small_shop), tmp_path / "m")
    user = sorted(unimp.histories)[0]
    assert unimp.recommend([user], 5) == again.recommend([user], 5)


def test_cli_answers_and_refuses_unknown_ids(tiny_unimp, small_shop):
    out, _ = tiny_unimp
    user = sorted(Dataset(small_shop).user_histories())[0]
    runner = CliRunner()
    res = runner.invoke(
        main, ["unimp", "recommend", str(small_shop), "--user", user, "--model", str(out), "-k", "3", "--json"]
    )
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)
    assert record["user"] == user and len(record["items"]) == 3
    res = runner.invoke(
        main, ["unimp", "rate", str(small_shop), "--user", "nobody", "--item", "i000", "--model", str(out)]
    )
    assert res.exit_code == 2 and "nobody" in res.output


def test_render_reads_like_the_reference(texts):
    ids = ItemIdentifiers.tokens(list(texts))
    text = render(Serializer(texts, ids).pieces(_examples(list(texts))[0]))
    assert text.startswith(
        "<image> category dress price 10.00 brand Acme title red dress number 0 <answer> <item_0> <rate_5>"
    )
    assert text.endswith("What is the next item recommended to the user? <answer> <item_3> <|endofchunk|>")


def test_a_dataset_without_images_trains_text_only(small_shop, tmp_path):
    """MovieLens-100k has no images: the model then runs text-only and says so (its config, the record)."""
    import pyarrow.compute as pc

    from tailorgen.data.store import DatasetWriter

    shop = Dataset(small_shop)
    items = shop.items.drop_columns(["image", "image_bytes"])
    ratings = shop.interactions.set_column(3, "rating", pc.round(shop.interactions.column("rating")))
    with DatasetWriter(tmp_path / "plain", source={"format": "test"}) as w:
        w.set_tables(items=items, interactions=ratings.drop_columns(["review"]))
    train_unimp(UniMPTrainConfig(**{**TINY, "steps": 6}), tmp_path / "plain", tmp_path / "m", progress=False)
    unimp = UniMP(Dataset(tmp_path / "plain"), tmp_path / "m")
    assert not unimp.model.config.with_images and not unimp.serializer.with_images
    user = sorted(unimp.histories)[0]
    ex = Example(user, "recommendation", tuple(unimp.history(user)), "")
    assert "<image>" not in render(unimp.serializer.pieces(ex, with_answer=False))
    assert len(unimp.recommend([user], 5)[0]) == 5 and 1 <= unimp.rate(user, "i000")[0] <= 5


def test_task_mixing_draws_tasks_by_size_to_a_power(small_shop):
    from collections import Counter

    from tailorgen.unified.train import draw_batch

    sizes = None
    for mixing in (1.0, 0.0):
        cfg = UniMPTrainConfig(**{**TINY, "batch_size": 4000}, task_mixing=mixing)
        prep = prepare(cfg, small_shop, progress=False)
        sizes = {t: len(prep.split.train[t]) for t in TEXT_TASKS}
        counts = Counter(ex.task for ex in draw_batch(prep, cfg, np.random.default_rng(0)))
        share = {t: counts[t] / 4000 for t in TEXT_TASKS}
        expected = {t: (sizes[t] / sum(sizes.values()) if mixing else 1 / len(TEXT_TASKS)) for t in TEXT_TASKS}
        assert all(abs(share[t] - expected[t]) < 0.03 for t in TEXT_TASKS), (mixing, share, expected)
    assert min(sizes.values()) < 0.2 * max(sizes.values())  # so the two mixings differ

"""Image generation in the unified model: the serialized task, the requests, the sampler, saving, the CLI."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tailorgen.cli import main
from tailorgen.data import Dataset
from tailorgen.unified import UniMP
from tailorgen.unified.item_ids import ItemIdentifiers
from tailorgen.unified.sample import DecodeStep, Prompt, SamplingSettings, guided_log_probs, sample_codes
from tailorgen.unified.serialize import Event, Example, Serializer, render
from tailorgen.unified.tokenizer import PieceEncoder, train_tokenizer
from tailorgen.unified.train import UniMPTrainConfig, draw_batch, prepare, train_unimp
from tailorgen.unified.vocab import ANSWER, END_OF_CHUNK, image_code_token

TINY = dict(
    steps=30,
    batch_size=8,
    hidden=32,
    layers=2,
    heads=2,
    bpe_vocab=300,
    warmup_steps=5,
    threads=1,
    lr=5e-3,
    tasks=("recommendation", "image_generation"),
)


@pytest.fixture(scope="module")
def drawing(small_shop, tiny_vq, tmp_path_factory):
    out = tmp_path_factory.mktemp("unimp-img") / "model"
    train_unimp(UniMPTrainConfig(**TINY, vq=str(tiny_vq)), small_shop, out, progress=False)
    return UniMP(Dataset(small_shop), out), out


def test_the_answer_is_the_target_images_codes_and_inference_cuts_at_it():
    texts = {f"i{k}": f"category dress title dress {k}" for k in range(3)}
    ids = ItemIdentifiers.tokens(list(texts))
    codes = {"i2": [5, 0, 63, 5]}
    tok = train_tokenizer([*texts.values(), "Keywords: Draw the item for the user."], ids.all_tokens(), 300, 64)
    ser, enc = Serializer(texts, ids, image_codes=codes), PieceEncoder(tok)
    ex = Example("u", "image_generation", (Event("i0", 4.0, None), Event("i1")), "i2", query="dress red")
    full, prompt = enc.encode(ser.pieces(ex)), enc.encode(ser.pieces(ex, with_answer=False))
    n = len(prompt.input_ids)
    assert np.array_equal(full.input_ids[:n], prompt.input_ids)
    assert tok.convert_ids_to_tokens(int(prompt.input_ids[-1])) == ANSWER
    assert tok.convert_ids_to_tokens(full.input_ids[n:].tolist()) == [image_code_token(c) for c in codes["i2"]] + [
        END_OF_CHUNK
    ]
    assert full.task_answer[n:].all() and not full.task_answer[:n].any()
    assert render(ser.pieces(ex, with_answer=False)).endswith(
        "Keywords: dress red. Draw the item for the user. <answer>"
    )
    assert full.images == ("i0", "i1")  # the target's own image is what is drawn, never shown
    with pytest.raises(ValueError, match="no image codes for item 'i0'"):
        ser.pieces(Example("u", "image_generation", (), "i0", query="x"))


def test_requests_draw_the_targets_own_words_and_drop_for_guidance(small_shop, tiny_vq):
    cfg = UniMPTrainConfig(**{**TINY, "batch_size": 3000}, vq=str(tiny_vq), drop_history=0.2, drop_all=0.1)
    prep = prepare(cfg, small_shop, progress=False)
    tags = dict(zip(*(Dataset(small_shop).items.column(c).to_pylist() for c in ("item_id", "tags")), strict=True))
    drawn = [ex for ex in draw_batch(prep, cfg, np.random.default_rng(0)) if ex.task == "image_generation"]
    kinds = Counter()
    for ex in drawn:
        assert _part_of(ex.query, tags[ex.target]), (ex.query, tags[ex.target])
        if ex.user:  # from an interaction (every one has a history), not a catalog item
            kinds["all" if not ex.history and not ex.query else "history" if not ex.history else "kept"] += 1
    share = {k: v / sum(kinds.values()) for k, v in kinds.items()}
    assert abs(share["history"] - 0.2) < 0.05 and abs(share["all"] - 0.1) < 0.04, share
    assert prep.vq.tokens_per_image == 64 and len(prep.serializer.image_codes) == 400


def _part_of(query: str, tags: list[str]) -> bool:
    """``query`` is some of ``tags`` (each may be several words), in their order, joined by spaces."""
    rest = query
    for t in tags:
        if rest == t or rest.startswith(t + " "):
            rest = rest[len(t) :].lstrip()
    return rest == ""


def _full_logps(lm, prompt: Prompt, code_ids, codes):
    """Log-probabilities of ``codes`` by one teacher-forced pass over prompt + codes (no cache)."""
    emb = lm.get_input_embeddings()
    x = torch.cat([prompt.embeds, emb(code_ids[codes])], 1)
    mask = torch.cat([prompt.mask, torch.ones_like(codes)], 1)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = lm(inputs_embeds=x, attention_mask=mask, position_ids=pos).logits[:, prompt.embeds.shape[1] - 1 : -1]
    return torch.log_softmax(logits[..., code_ids].float(), -1)


@pytest.mark.parametrize(
    ("guidance", "compiled"),
    [
        (1.0, False),
        (3.0, False),
        pytest.param(3.0, True, marks=pytest.mark.skipif(shutil.which("c++") is None, reason="compile needs g++")),
    ],
)
def test_sampled_log_probs_are_the_models_under_guidance_with_a_cache_and_left_padding(drawing, guidance, compiled):
    unimp, _ = drawing
    users = sorted(unimp.histories)[:3]  # histories of different lengths: left padding differs per row
    exs = [
        Example(u, "image_generation", tuple(unimp.history(u)[-k:]), "", query="dress")
        for k, u in zip((1, 3, 5), users)
    ]
    blank = [Example(u, "image_generation", (), "", query="") for u in users]
    dec, lm = unimp.decoder, unimp.model.lm
    cond, uncond = Prompt(*dec._prompt_embeds(exs)), Prompt(*dec._prompt_embeds(blank))
    settings = SamplingSettings(guidance=guidance, temperature=1.0, top_k=0, top_p=1.0)
    code_ids = unimp.model.image_code_ids
    step = DecodeStep(lm, code_ids, compile=compiled)  # compiled: the same distribution, traced once
    for _ in range(2 if compiled else 1):  # the second call reuses the compiled step and its cache
        codes, logps = sample_codes(lm, cond, uncond, code_ids, 12, settings, torch.Generator().manual_seed(0), step)
    assert codes.shape == (3, 12) and int(codes.max()) < 64
    with torch.no_grad():
        c = _full_logps(lm, cond, code_ids, codes)
        expected = (
            c
            if guidance == 1
            else torch.log_softmax((u := _full_logps(lm, uncond, code_ids, codes)) + guidance * (c - u), -1)
        )
    assert torch.allclose(logps, expected.gather(2, codes[..., None])[..., 0], atol=1e-4)
    with torch.no_grad():
        assert torch.allclose(logps, guided_log_probs(lm, cond, uncond, code_ids, codes, settings), atol=1e-4)
    alone, _ = sample_codes(
        lm,
        Prompt(*dec._prompt_embeds(exs[2:])),
        Prompt(*dec._prompt_embeds(blank[2:])),
        code_ids,
        12,
        settings,
        torch.Generator().manual_seed(0),
    )
    assert alone.shape == (1, 12)


def test_top_k_keeps_only_the_k_likeliest_codes(drawing):
    unimp, _ = drawing
    user = sorted(unimp.histories)[0]
    ex = Example(user, "image_generation", tuple(unimp.history(user)), "", query="dress")
    dec, lm = unimp.decoder, unimp.model.lm
    cond = Prompt(*dec._prompt_embeds([ex] * 200))
    settings = SamplingSettings(guidance=1.0, top_k=3)
    codes, _ = sample_codes(lm, cond, None, unimp.model.image_code_ids, 1, settings, torch.Generator().manual_seed(0))
    assert len(set(codes[:, 0].tolist())) <= 3
    with pytest.raises(ValueError, match="top_p"):
        SamplingSettings(top_p=0)


def test_images_are_reproducible_and_survive_a_reload(drawing, small_shop):
    unimp, out = drawing
    assert (out / "vq" / "config.json").is_file() and unimp.model.config.image_tokens == 64
    user = sorted(unimp.histories)[0]
    a = unimp.imagine(user, "dress pink", n=3, seed=4)
    b = UniMP(Dataset(small_shop), out).imagine(user, "dress pink", n=3, seed=4)
    assert torch.equal(a.codes, b.codes) and len(a.images) == 3 and a.images[0].size == (32, 32)
    assert not torch.equal(a.codes, unimp.imagine(user, "dress pink", n=3, seed=5).codes)
    assert np.array_equal(np.asarray(a.images[1]), np.asarray(b.images[1]))


def test_cli_imagine_writes_images_and_a_record_with_safe_names(drawing, small_shop, tmp_path):
    _, out = drawing
    user = sorted(Dataset(small_shop).user_histories())[0]
    res = CliRunner().invoke(
        main,
        [
            "unimp",
            "imagine",
            str(small_shop),
            "--user",
            user,
            "--model",
            str(out),
            "--keywords",
            "bag red",
            "--n",
            "2",
            "--out",
            str(tmp_path / "o"),
            "--seed",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "o" / "imagine.json").read_text())
    assert record["settings"]["guidance"] == 3.0 and len(record["tokens"]) == 2 and len(record["tokens"][0]) == 64
    assert all((tmp_path / "o").joinpath(p).exists() or __import__("os").path.exists(p) for p in record["images"])
    assert record["checkpoints"]["vq"].startswith("sha256:")
    res = CliRunner().invoke(
        main,
        [
            "unimp",
            "imagine",
            str(small_shop),
            "--user",
            "../nobody",
            "--model",
            str(out),
            "--out",
            str(tmp_path / "o2"),
        ],
    )
    assert res.exit_code == 2 and "../nobody" in res.output and not (tmp_path / "nobody").exists()


def test_extreme_sampling_settings_draw_real_codes_and_too_cold_is_refused(drawing):
    """schemathesis found NaN probabilities at temperature 1e-40 (guided scores / T overflowed)."""
    model, _ = drawing
    user = sorted(model.histories)[0]
    for settings in (SamplingSettings(guidance=20, temperature=0.01, top_k=0, top_p=1e-9),
                     SamplingSettings(guidance=0, temperature=5, top_k=1)):  # fmt: skip
        made = model.imagine(user, "dress", 1, settings, seed=0)
        assert torch.isfinite(made.log_probs).all()
    with pytest.raises(ValueError, match="temperature: 1e-40 is not allowed"):
        SamplingSettings(temperature=1e-40)


@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile's CPU kernels need a C++ compiler (g++)")
def test_few_row_products_traced_as_reductions_equal_linear_however_called():
    from tailorgen.unified.sample import _LinearAsReduction

    x, many, w, b = torch.randn(2, 1, 24), torch.randn(4, 5, 24), torch.randn(40, 24), torch.randn(40)

    def products(x, many):
        with _LinearAsReduction():
            return (
                torch.nn.functional.linear(x, w, b),
                torch.nn.functional.linear(input=x, weight=w),
                torch.nn.functional.linear(many, w),  # 20 rows: above MAX_ROWS, through BLAS
            )

    from torch.profiler import profile

    with profile() as small:  # eagerly, to see which kernels run: none of BLAS's for 2 rows
        products(x, many[:1, :1])
    with profile() as large:
        products(x, many)
    blas = {"aten::mm", "aten::addmm", "aten::bmm"}
    assert not blas & {e.key for e in small.key_averages()} and blas & {e.key for e in large.key_averages()}
    compiled = torch.compile(products, dynamic=False)(x, many)
    expected = (x @ w.T + b, x @ w.T, many @ w.T)
    assert all(torch.allclose(c, e, atol=1e-5) for c, e in zip(compiled, expected, strict=True))

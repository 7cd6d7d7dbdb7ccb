import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tailorgen.generation import PersonalizedImagePipeline
from tailorgen.generation.iamg import default_generator_path


def test_a_short_training_run_saves_a_working_pipeline(tiny_generator):
    path, report = tiny_generator
    assert report["examples"] == 120 and 0 < report["personalize_examples"] < 120
    saved = json.loads((path / "training_report.json").read_text())
    assert saved["config"]["train_seed"] == 5001
    assert report["counterfactual_targets"] is True
    assert np.isfinite(report["loss_curve"]).all()
    assert report["look_loss_curve"] and np.isfinite(report["look_loss_curve"]).all()
    pipe = PersonalizedImagePipeline.from_pretrained(str(path))
    assert pipe.unet.config.cross_attention_dim == 32 and pipe.reads_source_image
    assert sum(p.numel() for p in pipe.conditioner.parameters()) == report["parameters"]["conditioner"]
    assert sum(p.numel() for p in pipe.unet.parameters()) == report["parameters"]["unet"]
    # Sampling starts at the last training step (pure noise), for the trained and the shipped pipeline.
    pipe.scheduler.set_timesteps(25)
    assert pipe.scheduler.config.timestep_spacing == "trailing" and int(pipe.scheduler.timesteps[0]) == 999
    shipped = PersonalizedImagePipeline.from_pretrained(str(default_generator_path()))
    assert shipped.scheduler.config.timestep_spacing == "trailing"


def test_training_targets_are_the_source_garment_in_the_chosen_items_look(small_shop):
    from tailorgen.data import Dataset
    from tailorgen.evaluation.judge import Judge
    from tailorgen.generation.train import _SourceTargetImages

    ds = Dataset(small_shop)
    truth = pq.read_table(small_shop / "truth" / "items.parquet").to_pydict()
    row = {i: r for r, i in enumerate(truth["item_id"])}
    images = _SourceTargetImages(ds, seed=0)
    assert images.truth is not None
    ids = truth["item_id"]
    # Pairs whose looks differ in colour (the function does not care about categories).
    pairs = [(a, b) for a, b in zip(ids[:40], ids[40:80]) if truth["colour"][row[a]] != truth["colour"][row[b]]]
    sources, targets = zip(*(images(a, b) for a, b in pairs))
    for s, t in zip(sources, targets):
        garment_s = np.abs(s.astype(float) - 245).max(-1) > 30
        garment_t = np.abs(t.astype(float) - 245).max(-1) > 30
        assert (garment_s == garment_t).mean() > 0.95  # same silhouette, same place
    # The shipped judge reads the source's colour on the source and the chosen item's on the target.
    reads = Judge().read([Image.fromarray(a) for a in (*sources, *targets)])
    want = [truth["colour"][row[a]] for a, _ in pairs] + [truth["colour"][row[b]] for _, b in pairs]
    assert np.mean([r["colour"] == w for r, w in zip(reads, want)]) > 0.9
    assert np.mean([r["category"] == truth["category"][row[a]] for r, (a, _) in zip(reads, pairs * 2)]) > 0.8


def test_history_look_takes_each_attributes_most_frequent_value_recency_weighted():
    from tailorgen.generation.train import history_look

    looks = {
        "a": {"colour": "red", "pattern": "solid", "secondary_colour": "white"},
        "b": {"colour": "red", "pattern": "striped", "secondary_colour": "white"},
        "c": {"colour": "blue", "pattern": "striped", "secondary_colour": "black"},
    }
    # Unweighted: red twice, striped twice, white twice.
    assert history_look(looks, ["a", "b", "c"], None) == ("red", "striped", "white")
    # Weighted, half-life 0.5: c (the latest) outweighs a and b together (1 > 0.25 + 0.0625).
    assert history_look(looks, ["a", "b", "c"], 0.5) == ("blue", "striped", "black")
    # Attributes are counted separately, not as whole looks: no single item has this one.
    looks |= {
        "d": {"colour": "red", "pattern": "dots", "secondary_colour": "black"},
        "e": {"colour": "green", "pattern": "striped", "secondary_colour": "white"},
    }
    assert history_look(looks, ["a", "d", "c", "e"], None) == ("red", "striped", "white")


def test_history_targets_take_the_look_the_users_history_shows(small_shop):
    from tailorgen.data import Dataset
    from tailorgen.evaluation.judge import Judge
    from tailorgen.generation.train import _SourceTargetImages, history_look

    ds = Dataset(small_shop)
    images = _SourceTargetImages(ds, seed=0, recency_half_life=10.0)
    histories = [h for _, h in sorted(ds.user_histories().items()) if len(h) >= 4][:30]
    source_ids = ds.items.column("item_id").to_pylist()[: len(histories)]
    targets = [images(x, "unused", h)[1] for x, h in zip(source_ids, histories)]
    want = [history_look(images.truth, h, 10.0)[0] for h in histories]
    reads = Judge().read([Image.fromarray(t) for t in targets])
    assert np.mean([r["colour"] == w for r, w in zip(reads, want)]) > 0.9


def test_the_training_set_records_its_texts_and_what_the_renderer_drew(small_shop):
    """Both let a set be rebuilt elsewhere (scripts/device_train.py), so both must be what was used."""
    from tailorgen.data import Dataset
    from tailorgen.generation.context import IAMGSettings, PersonalizationContext
    from tailorgen.generation.train import GeneratorTrainConfig, _SourceTargetImages, build_training_set

    ctx = PersonalizationContext(Dataset(small_shop), IAMGSettings(), progress=False)
    cfg = GeneratorTrainConfig(examples=40)
    data = build_training_set(cfg, ctx, np.random.default_rng(0), progress=False)
    tokens, mask = ctx.text_encoder.encode_tokens(list(data["text"]), max_length=data["text_mask"].shape[1])
    assert np.array_equal(mask, data["text_mask"])
    assert np.abs(tokens - data["text_tokens"].astype(np.float32)).max() < 0.01  # stored as float16
    assert data["rewritten"].any() and not data["rewritten"].all()
    item_texts = set(ctx.texts.values())
    assert all((text in item_texts) != rewritten for text, rewritten in zip(data["text"], data["rewritten"]))
    # Rendered again in order with the same seed, the recorded specs give back the very same pixels.
    images = _SourceTargetImages(ctx.dataset, cfg.seed, ctx.settings.recency_half_life)
    for i in range(len(data["target"])):
        source, target = images.render(int(data["silhouette_index"][i]), [tuple(x) for x in data["looks"][i]])
        assert np.array_equal(source.transpose(2, 0, 1), data["source"][i])
        assert np.array_equal(target.transpose(2, 0, 1), data["target"][i])


def test_an_unknown_target_look_is_refused(small_shop):
    from tailorgen.generation.train import GeneratorTrainConfig, build_training_set

    with pytest.raises(ValueError, match="target_look must be"):
        build_training_set(GeneratorTrainConfig(target_look="favourite"), ctx=None, rng=None)


def test_colour_histogram_counts_each_colour_by_its_share_of_the_pixels():
    import torch

    from tailorgen.generation.train import colour_histogram

    img = torch.full((1, 3, 4, 4), -1.0)  # black
    img[0, 0, :, :1] = 1.0  # a red quarter
    h = colour_histogram(img, levels=4)
    assert h.shape == (1, 64) and torch.allclose(h.sum(1), torch.ones(1))
    assert h[0, 0] == 0.75 and h[0, 3 * 16] == 0.25  # cell (r, g, b) = (3, 0, 0)


def test_fine_tuning_a_saved_generator_with_every_accent_option(tiny_generator):
    import torch

    from tailorgen.generation.train import GeneratorTrainConfig, train_generator

    path, trained = tiny_generator
    # The fixture's own config (same shop, same model shapes), continued from its weights.
    base = trained["config"] | {"warmup_steps": 2, "init_from": str(path)}
    out = path.parent / "fine-tuned"
    report = train_generator(
        GeneratorTrainConfig.from_dict(
            base
            | {"steps": 4, "accent_loss_weight": 1.0, "history_tokens": True}
            | {"history_accent": True, "accent_film": True, "accent_pixel_weight": 2.0}
        ),
        out,
        path.parent / "work",
        progress=False,
    )
    assert report["config"]["init_from"] == str(path)
    assert report["accent_loss_curve"] and np.isfinite(report["accent_loss_curve"]).all()
    before = PersonalizedImagePipeline.from_pretrained(str(path))
    after = PersonalizedImagePipeline.from_pretrained(str(out))
    # It starts from the saved weights (same shapes; history_tokens adds none, the accent token its
    # projection), and training moved them.
    assert not before.conditioner.config.history_tokens and after.conditioner.config.history_tokens
    assert not before.conditioner.config.history_accent and after.conditioner.config.history_accent
    assert report["iamg_settings"]["history_accent"]
    for name in ("unet", "conditioner"):
        b, a = getattr(before, name).state_dict(), getattr(after, name).state_dict()
        new = {k for k in a.keys() - b.keys() if not k.startswith(("accent_proj.", "class_embedding."))}
        assert new == set() and b.keys() <= a.keys()
    assert any(k.startswith("accent_proj.") for k in after.conditioner.state_dict())
    assert not before.reads_history_accent and after.reads_history_accent
    assert any(k.startswith("class_embedding.") for k in after.unet.state_dict())
    # The UNet's accent embedding starts at zero and training moved it.
    assert after.unet.class_embedding.linear_2.weight.abs().sum() > 0
    w = "history_encoder.0.weight"
    assert not torch.equal(before.conditioner.state_dict()[w], after.conditioner.state_dict()[w])
    # A UNet that reads the accent cannot be fine-tuned as one that does not.
    as_before_but_film = {"init_from": str(out), "history_tokens": True, "history_accent": True}
    wrongs = ({"history_images": 0}, {"cross_attention_dim": 64}, as_before_but_film)
    for wrong in wrongs:
        with pytest.raises(ValueError, match="cannot fine-tune"):
            train_generator(
                GeneratorTrainConfig.from_dict(base | wrong | {"steps": 1}), out, path.parent / "work", progress=False
            )

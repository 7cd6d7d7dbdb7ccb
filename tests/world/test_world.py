import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy.stats import spearmanr

from tailorgen.cli import main
from tailorgen.data import Dataset
from tailorgen.world import CATEGORIES, PATTERNS, Oracle, WorldConfig, build_world
from tailorgen.world.attributes import BRAND_NAMES, CATEGORY_WORDS, COLOUR_WORDS, COLOURS, PATTERN_WORDS
from tailorgen.world.preview import sample_grid


def _truth(shop):
    return pq.read_table(shop / "truth" / "items.parquet").to_pylist()


def test_shop_loads_through_the_dataset_loader(small_shop):
    ds = Dataset(small_shop)
    assert len(ds) == 400
    assert ds.manifest["counts"]["items"] == 400
    assert ds.manifest["counts"]["users"] == 60
    assert ds.manifest["source"]["format"] == "tailorgen-shop"
    assert ds.has_ground_truth
    histories = ds.user_histories()
    assert len(histories) == 60
    assert min(len(h) for h in histories.values()) >= 5
    # Users never buy the same item twice and histories are in time order.
    inter = ds.interactions.to_pandas()
    assert not inter.duplicated(["user_id", "item_id"]).any()
    assert (inter.groupby("user_id")["timestamp"].apply(lambda s: s.is_monotonic_increasing)).all()
    assert set(inter["rating"].unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_images_have_the_configured_size_and_show_the_colour(small_shop):
    ds = Dataset(small_shop)
    truth = _truth(small_shop)
    for row in truth[:50]:
        im = ds.load_image(row["item_id"])
        assert im.size == (32, 32) and im.mode == "RGB"
        px = np.asarray(im, np.float32).reshape(-1, 3)
        garment = px[np.abs(px - 245).max(axis=1) > 40]  # pixels that are not background
        assert len(garment) > 30
        if row["pattern"] == "solid":
            # A solid garment's median pixel is nearest to its own colour among all named colours.
            med = np.median(garment, axis=0)
            nearest = min(COLOURS, key=lambda c: np.linalg.norm(med - np.array(COLOURS[c])))
            assert nearest == row["colour"], row


def test_same_seed_same_shop_other_seed_other_shop(tmp_path):
    cfg = WorldConfig(n_items=60, n_users=8, seed=3)
    build_world(cfg, tmp_path / "a", progress=False)
    build_world(cfg, tmp_path / "b", progress=False)
    build_world(WorldConfig(n_items=60, n_users=8, seed=4), tmp_path / "c", progress=False)
    files = lambda d: Dataset(d).manifest["files"]  # noqa: E731
    assert files(tmp_path / "a") == files(tmp_path / "b")
    assert (tmp_path / "a/truth/users.npz").read_bytes() == (tmp_path / "b/truth/users.npz").read_bytes()
    assert files(tmp_path / "a")["items.parquet"] != files(tmp_path / "c")["items.parquet"]


def _words(text):
    return set(re.findall(r"[a-z&\-]+(?: [a-z\-]+)?", text.lower()))


def test_text_omits_colour_or_pattern_in_the_documented_share(small_shop):
    ds = Dataset(small_shop)
    items = {r["item_id"]: r for r in ds.items.to_pylist()}
    truth = _truth(small_shop)
    cfg = WorldConfig()
    for key, p in (("text_omits_colour", cfg.p_text_omits_colour), ("text_omits_pattern", cfg.p_text_omits_pattern)):
        share = np.mean([t[key] for t in truth])
        assert abs(share - p) < 3 * np.sqrt(p * (1 - p) / len(truth)), (key, share)
    n_checked = 0
    for t in truth:
        item = items[t["item_id"]]
        text = f"{item['title']} {item['description']} {' '.join(item['tags'])}".lower()
        colour_words = COLOUR_WORDS[t["colour"]]
        if t["text_omits_colour"]:
            assert not any(re.search(rf"\b{re.escape(w)}\b", text) for w in colour_words), (t, text)
            n_checked += 1
        else:
            assert t["colour"] in item["tags"]
        if t["text_omits_pattern"]:
            assert not any(re.search(rf"\b{re.escape(w)}\b", text) for w in PATTERN_WORDS[t["pattern"]]), (t, text)
        else:
            assert t["pattern"] in item["tags"]
        assert t["category"] in item["tags"] and t["brand"] in item["tags"]
        assert any(w in text for w in CATEGORY_WORDS[t["category"]])
    assert n_checked > 50


def test_catalog_covers_every_attribute_value(small_shop):
    truth = _truth(small_shop)
    assert {t["category"] for t in truth} == set(CATEGORIES)
    assert {t["colour"] for t in truth} == set(COLOURS)
    assert {t["pattern"] for t in truth} == set(PATTERNS)
    assert {t["brand"] for t in truth} == set(BRAND_NAMES)
    assert all((t["secondary_colour"] == "none") == (t["pattern"] == "solid") for t in truth)
    assert all(t["secondary_colour"] != t["colour"] for t in truth)


def test_users_choose_by_utility_and_rate_by_it(small_shop):
    oracle = Oracle.load(small_shop)
    ds = Dataset(small_shop)
    truth = {t["item_id"]: t for t in _truth(small_shop)}
    rng = np.random.default_rng(0)
    ids = list(truth)
    chosen, random_, ratings = [], [], []
    for r in ds.interactions.to_pylist():
        attrs = oracle.item_attributes(r["item_id"])
        u = oracle.utility(r["user_id"], attrs, r["timestamp"])
        chosen.append(u)
        ratings.append(r["rating"])
        other = oracle.item_attributes(ids[int(rng.integers(len(ids)))])
        random_.append(oracle.utility(r["user_id"], other, r["timestamp"]))
    assert np.mean(chosen) > np.mean(random_) + 1.0
    rho, p = spearmanr(chosen, ratings)
    assert rho > 0.2 and p < 1e-6


def test_taste_drifts_between_past_and_future(small_shop):
    oracle = Oracle.load(small_shop)
    taste = oracle.taste
    changed = [not np.allclose(taste.w0["colour"][u], taste.w1["colour"][u]) for u in range(len(taste.user_ids))]
    assert 0.2 < np.mean(changed) < 0.8  # P_DRIFT = 0.5 per attribute
    u = int(np.flatnonzero(changed)[0])
    user = str(taste.user_ids[u])
    new_fav = list(COLOURS)[int(np.argmax(taste.w1["colour"][u] - taste.w0["colour"][u]))]
    early = oracle.utility(user, {"colour": new_fav}, 0)
    mid = oracle.utility(user, {"colour": new_fav}, oracle.horizon // 2)
    late = oracle.utility(user, {"colour": new_fav}, oracle.horizon)
    assert early < mid < late
    assert mid == pytest.approx((early + late) / 2, rel=1e-4)


def test_oracle_rejects_unknown_values_with_a_clear_message(small_shop):
    oracle = Oracle.load(small_shop)
    with pytest.raises(KeyError, match="unknown colour 'magenta'"):
        oracle.utility("u00", {"colour": "magenta"}, 0)
    with pytest.raises(KeyError, match="unknown user"):
        oracle.utility("nobody", {"colour": "red"}, 0)


def test_reviews_cite_attributes_of_the_item(small_shop):
    ds = Dataset(small_shop)
    truth = {t["item_id"]: t for t in _truth(small_shop)}
    cited = 0
    reviews = [r for r in ds.interactions.to_pylist() if r["review"] and r["rating"] >= 4]
    assert len(reviews) > 50
    for r in reviews:
        t = truth[r["item_id"]]
        words = [*COLOUR_WORDS[t["colour"]], *PATTERN_WORDS[t["pattern"]], *CATEGORY_WORDS[t["category"]], t["brand"]]
        if t["secondary_colour"] != "none":
            words += COLOUR_WORDS[t["secondary_colour"]]
        cited += any(w.lower() in r["review"].lower() for w in words)
    assert cited / len(reviews) > 0.9


def test_queries_describe_their_target(small_shop):
    ds = Dataset(small_shop)
    truth = {t["item_id"]: t for t in _truth(small_shop)}
    queries = ds.queries.to_pylist()
    assert len(queries) > 20
    for q in queries:
        t = truth[q["target_item_id"]]
        assert any(w in q["query"] for w in CATEGORY_WORDS[t["category"]]), q


def test_procedural_silhouettes_when_fashion_mnist_is_absent(tmp_path):
    summary = build_world(
        WorldConfig(n_items=40, n_users=4, seed=1, use_fashion_mnist=False), tmp_path / "p", progress=False
    )
    assert summary["silhouettes"] == "procedural"
    assert Dataset(tmp_path / "p").load_image("i00").size == (32, 32)


def test_image_size_is_configurable(tmp_path):
    build_world(WorldConfig(n_items=30, n_users=3, seed=1, image_size=48), tmp_path / "s", progress=False)
    assert Dataset(tmp_path / "s").load_image("i00").size == (48, 48)


def test_sample_grid_has_a_row_per_category(small_shop, tmp_path):
    sample_grid(small_shop, tmp_path / "g.png", per_category=5, scale=2)
    im = Image.open(tmp_path / "g.png")
    assert im.size == (90 + 5 * 64, 10 * 64)


def test_cli_build_refuses_to_overwrite_and_leaves_existing_data_alone(tmp_path):
    out = tmp_path / "shop"
    runner = CliRunner()
    res = runner.invoke(main, ["world", "build", "--items", "30", "--users", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output[res.output.index("{") :])["items"] == 30
    before = (out / "items.parquet").read_bytes()
    res = runner.invoke(main, ["world", "build", "--items", "40", "--users", "3", "--out", str(out)])
    assert res.exit_code != 0 and "already exists" in str(res.exception)
    assert (out / "items.parquet").read_bytes() == before
    res = runner.invoke(main, ["world", "build", "--items", "40", "--users", "3", "--out", str(out), "--overwrite"])
    assert res.exit_code == 0
    assert len(Dataset(out)) == 40
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind


def test_cli_utility_scores_items_and_attribute_sets(small_shop):
    runner = CliRunner()
    res = runner.invoke(main, ["world", "utility", str(small_shop), "--user", "u00", "--attr", "colour=red"])
    assert res.exit_code == 0, res.output
    assert isinstance(json.loads(res.output)["utility"], float)
    res = runner.invoke(main, ["world", "utility", str(small_shop), "--user", "u00", "--item", "i000"])
    assert json.loads(res.output)["attributes"]["category"] in CATEGORIES


def test_render_looks_draws_one_placed_garment_in_each_look():
    from tailorgen.world.render import render_looks
    from tailorgen.world.silhouettes import SilhouetteBank

    sil = SilhouetteBank(use_fashion_mnist=False, procedural_per_class=2).draw(0, np.random.default_rng(0))[1]
    red, blue = render_looks(
        sil, [("red", "solid", "none"), ("blue", "stripes", "yellow")], 32, np.random.default_rng(1)
    )
    # Same placement: the garment covers the same pixels; different looks: different fabric.
    garment_red = np.abs(red.astype(float) - 245).max(-1) > 30
    garment_blue = np.abs(blue.astype(float) - 245).max(-1) > 30
    assert garment_red.sum() > 50 and (garment_red == garment_blue).mean() > 0.97
    assert red[garment_red].mean(0)[0] > red[garment_red].mean(0)[2]
    assert blue[garment_blue].mean(0)[2] > blue[garment_blue].mean(0)[0]

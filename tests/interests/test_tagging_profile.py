import pyarrow.parquet as pq
import pytest

from tailorgen.data import Dataset
from tailorgen.encoders import default_encoder
from tailorgen.encoders.zeroshot import ZeroShotTagger
from tailorgen.interests import (
    ImageTagger,
    ItemTags,
    TagVocabulary,
    TextTagger,
    build_profile,
    load_profiles,
    save_profiles,
    tag_catalog,
)
from tailorgen.world.attributes import prompt_vocabulary


@pytest.fixture(scope="module")
def text_tagger():
    return TextTagger(TagVocabulary.from_shop())


def test_text_tagger_maps_synonyms_to_canonical_tags(text_tagger):
    assert text_tagger.tag_text("Kobaltz crimson plaid trainers") == ["Kobaltz", "red", "checks", "sneaker"]
    # Whole words only, and a longer phrase wins over a shorter one inside it.
    assert text_tagger.tag_text("a redesigned bag") == ["bag"]
    assert text_tagger.tag_text("running shoes in midnight") == ["sneaker", "navy"]
    assert text_tagger.tag_text("") == []


def test_text_tagger_adds_known_catalog_tags(text_tagger):
    row = {"title": "Something", "description": None, "tags": ["casual", "unknown-tag", "Red"]}
    assert text_tagger.tag_item(row) == ["casual", "red"]


def test_text_tags_recover_what_the_text_says(small_shop, text_tagger):
    truth = {r["item_id"]: r for r in pq.read_table(small_shop / "truth" / "items.parquet").to_pylist()}
    tags = tag_catalog(Dataset(small_shop), text_tagger)
    said = [i for i, t in truth.items() if not t["text_omits_colour"]]
    hit = sum(truth[i]["colour"] in tags[i].text for i in said)
    assert hit == len(said)
    assert all(truth[i]["category"] in tags[i].text for i in truth)


def test_image_tags_find_colours_the_text_leaves_out(small_shop, text_tagger):
    truth = {r["item_id"]: r for r in pq.read_table(small_shop / "truth" / "items.parquet").to_pylist()}
    zs = ZeroShotTagger(default_encoder("image"), default_encoder("text"), prompt_vocabulary())
    tags = tag_catalog(Dataset(small_shop), text_tagger, ImageTagger(zs))
    silent = [i for i, t in truth.items() if t["text_omits_colour"]]
    assert len(silent) > 50
    accuracy = sum(truth[i]["colour"] in tags[i].image for i in silent) / len(silent)
    assert accuracy > 0.5  # 12 colours: chance is 0.08
    assert all(len(tags[i].image) == 3 for i in truth)  # category, colour, pattern


def test_profile_counts_with_and_without_recency():
    item_tags = {"a": ItemTags(["red", "dress"], []), "b": ItemTags(["red"], ["dots"]), "c": ItemTags(["blue"], [])}
    p = build_profile("u", ["a", "b", "c"], item_tags)
    assert p.weights == {"red": 2, "dress": 1, "dots": 1, "blue": 1}
    assert p.top(2) == ["red", "blue"]  # ties alphabetical
    r = build_profile("u", ["a", "b", "c"], item_tags, recency_half_life=1.0)
    assert r.weights["blue"] == 1.0 and r.weights["red"] == pytest.approx(0.25 + 0.5)
    assert r.top(1) == ["blue"] and r.top(2, exclude=["blue"]) == ["red", "dots"]


def test_profile_of_one_modality():
    item_tags = {"a": ItemTags(["red", "blue"], ["red"]), "b": ItemTags(["blue"], ["green"])}
    assert build_profile("u", ["a", "b"], item_tags).top(1) == ["blue"]  # text's accent colours count
    image = build_profile("u", ["a", "b"], item_tags, modality="image")
    assert image.weights == {"red": 1, "green": 1}
    assert image.top(1, only=["green", "blue"]) == ["green"]
    assert build_profile("u", ["a"], item_tags, modality="text").weights == {"red": 1, "blue": 1}
    with pytest.raises(ValueError, match="modality must be one of"):
        build_profile("u", ["a"], item_tags, modality="audio")


def test_profiles_save_and_load(tmp_path):
    item_tags = {"a": ItemTags(["red", "dress"], []), "b": ItemTags(["red"], [])}
    profiles = {"u1": build_profile("u1", ["a", "b"], item_tags), "u2": build_profile("u2", ["b"], item_tags)}
    save_profiles(profiles, tmp_path / "p.parquet")
    assert load_profiles(tmp_path / "p.parquet") == profiles


def test_vocabulary_from_a_real_dataset(small_shop):
    vocab = TagVocabulary.from_dataset(Dataset(small_shop))
    assert "dress" in vocab.tags and vocab.attribute_of["dress"] == "category"
    assert vocab.synonyms["red"] == ["red"]

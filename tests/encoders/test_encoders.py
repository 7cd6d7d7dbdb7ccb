"""Shared interface tests: every encoder backend must pass all of them."""

import numpy as np
import pytest
from PIL import Image

from tailorgen.data import Dataset
from tailorgen.encoders import SentenceTransformerEncoder, ShopImageEncoder, ShopImageEncoderModel, encode_catalog
from tailorgen.encoders.factory import make_encoder
from tailorgen.encoders.hf import HFImageEncoder, HFTextEncoder

TEXTS = ["a red striped dress", "navy wool coat", "yellow polka-dot sneakers", "a red striped dress", "tote bag"]


def _images():
    rng = np.random.default_rng(0)
    ims = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(4)]
    return [*ims, ims[0].copy(), Image.new("RGB", (50, 40), (200, 10, 10))]  # a duplicate and an odd size


@pytest.fixture(scope="module")
def minilm():
    return SentenceTransformerEncoder()


@pytest.fixture(params=["minilm", "shop-cnn", "clip-text", "clip-image", "siglip-text", "siglip-image"])
def encoder_and_inputs(request, minilm, tiny_clip_dir, tiny_siglip_dir, tmp_path_factory):
    kind = request.param
    if kind == "minilm":
        return minilm, TEXTS
    if kind == "shop-cnn":
        d = tmp_path_factory.mktemp("cnn")
        ShopImageEncoderModel(channels=(8, 16), out_dim=24).save_pretrained(str(d))
        return ShopImageEncoder(d), _images()
    model_dir = str(tiny_clip_dir if kind.startswith("clip") else tiny_siglip_dir)
    if kind.endswith("text"):
        return HFTextEncoder(model_dir), TEXTS
    return HFImageEncoder(model_dir), _images()


def test_encode_returns_unit_float32_rows(encoder_and_inputs):
    enc, inputs = encoder_and_inputs
    out = enc.encode(inputs)
    assert out.shape == (len(inputs), enc.dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_batching_does_not_change_results(encoder_and_inputs):
    enc, inputs = encoder_and_inputs
    np.testing.assert_allclose(enc.encode(inputs, batch_size=2), enc.encode(inputs, batch_size=64), atol=1e-5)


def test_identical_inputs_identical_vectors_different_inputs_differ(encoder_and_inputs):
    enc, inputs = encoder_and_inputs
    out = enc.encode(inputs)
    np.testing.assert_allclose(out[0], out[len(inputs) - 2 if enc.modality == "image" else 3], atol=1e-5)
    assert not np.allclose(out[0], out[1], atol=1e-3)


def test_empty_input_and_bad_calls(encoder_and_inputs):
    enc, _ = encoder_and_inputs
    assert enc.encode([]).shape == (0, enc.dim)
    with pytest.raises(TypeError, match="sequence"):
        enc.encode("just one string")
    with pytest.raises(ValueError, match="batch_size"):
        enc.encode(["x"], batch_size=0)


def test_fingerprint_is_stable_and_names_the_backend(encoder_and_inputs):
    enc, _ = encoder_and_inputs
    assert isinstance(enc.fingerprint, str) and enc.fingerprint == enc.fingerprint
    assert enc.fingerprint.split(":")[0] in {"st", "shop-cnn", "hf"}


def test_minilm_puts_paraphrases_closer_than_unrelated_texts(minilm):
    a, b, c = minilm.encode(["a red striped dress", "a crimson dress with stripes", "black leather ankle boots"])
    assert a @ b > a @ c + 0.2


def test_shop_cnn_save_and_reload_gives_identical_vectors(tmp_path):
    model = ShopImageEncoderModel(channels=(8, 16), out_dim=24)
    model.save_pretrained(str(tmp_path / "a"))
    assert (tmp_path / "a" / "model.safetensors").exists() and (tmp_path / "a" / "config.json").exists()
    ims = _images()
    e1, e2 = ShopImageEncoder(tmp_path / "a"), ShopImageEncoder(tmp_path / "a")
    np.testing.assert_allclose(e1.encode(ims), e2.encode(ims), atol=1e-6)
    assert e1.fingerprint == e2.fingerprint


def test_missing_checkpoint_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="tailorgen train encoder"):
        ShopImageEncoder(tmp_path)


def test_clip_text_and_image_share_one_space(tiny_clip_dir):
    t = make_encoder("text", f"clip:{tiny_clip_dir}")
    i = make_encoder("image", f"clip:{tiny_clip_dir}")
    assert t.dim == i.dim == 24
    assert (t.encode(["red"]) @ i.encode(_images()[:1]).T).shape == (1, 1)


def test_catalog_embeddings_are_cached_by_model_and_data(small_shop, tmp_path, minilm):
    ds = Dataset(small_shop)
    cnn_dir = tmp_path / "cnn"
    ShopImageEncoderModel(channels=(8, 16), out_dim=24).save_pretrained(str(cnn_dir))
    image_enc = ShopImageEncoder(cnn_dir)
    ids, vecs = encode_catalog(ds, image_enc, cache_dir=tmp_path / "cache", progress=False)
    assert ids == ds.items.column("item_id").to_pylist() and vecs.shape == (len(ds), 24)
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    ids2, vecs2 = encode_catalog(ds, image_enc, cache_dir=tmp_path / "cache", progress=False)
    assert files[0].stat().st_mtime_ns == mtime and np.array_equal(vecs, vecs2)  # read, not recomputed
    # A different model gets its own cache entry.
    ShopImageEncoderModel(channels=(8, 16), out_dim=24).save_pretrained(str(tmp_path / "cnn2"))
    encode_catalog(ds, ShopImageEncoder(tmp_path / "cnn2"), cache_dir=tmp_path / "cache", progress=False)
    assert len(list((tmp_path / "cache").iterdir())) == 2
    # Text embeddings match encoding the item texts directly.
    tids, tvecs = encode_catalog(ds, minilm, cache_dir=tmp_path / "cache", progress=False)
    row = ds.item(tids[5])
    np.testing.assert_allclose(tvecs[5], minilm.encode([f"{row['title']}. {row['description']}"])[0], atol=1e-5)

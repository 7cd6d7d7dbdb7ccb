"""FID and KID with a tiny random encoder as the feature network (no Inception weights needed)."""

import numpy as np
import pytest
import torch
from PIL import Image

from tailorgen.encoders.image import ShopImageEncoder, ShopImageEncoderModel, images_to_tensor
from tailorgen.evaluation.image_quality import EncoderFeatureExtractor, fid, images_to_uint8, kid


def _shop_like(n: int, seed: int) -> np.ndarray:
    """n 32x32 images: a randomly coloured rectangle at a random place on a light background."""
    rng = np.random.default_rng(seed)
    out = np.full((n, 32, 32, 3), 235, np.uint8)
    for i in range(n):
        x0, y0 = rng.integers(2, 12, 2)
        w, h = rng.integers(10, 20, 2)
        out[i, y0 : y0 + h, x0 : x0 + w] = rng.integers(0, 256, 3)
    return out


def _tint_red(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float32)
    x[..., 0] = 0.5 * x[..., 0] + 127.5
    x[..., 1:] *= 0.6
    return x.astype(np.uint8)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return ShopImageEncoderModel(channels=(8, 16), out_dim=16)


@pytest.fixture(scope="module")
def sets():
    first, second = _shop_like(64, 1), _shop_like(64, 2)
    return first, second, _tint_red(first)


def test_feature_extractor_matches_the_encoders_own_preprocessing(encoder, sets):
    images = sets[0][:8]
    fe = EncoderFeatureExtractor(encoder)
    assert fe.num_features == 16 and fe.image_size == 32
    feats = fe(images_to_uint8(images))
    expected = encoder.eval()(images_to_tensor([Image.fromarray(a) for a in images], 32))
    torch.testing.assert_close(feats, expected.detach(), rtol=1e-5, atol=1e-6)
    fe.train()
    assert not fe.training and not encoder.training  # batch-norm must not follow the batch
    # Larger inputs are resized inside the module.
    assert fe(torch.zeros(2, 3, 48, 48, dtype=torch.uint8)).shape == (2, 16)
    with pytest.raises(ValueError, match="uint8"):
        fe(torch.zeros(2, 3, 32, 32))


def test_fid_is_zero_for_identical_sets_and_grows_with_a_shift(encoder, sets):
    first, second, red = sets
    feats = EncoderFeatureExtractor(encoder)(images_to_uint8(first)).double().numpy()
    scale = np.trace(np.cov(feats.T))  # FID is in squared feature units
    assert abs(fid(first, first, encoder)) < 1e-3 * scale
    same_distribution = fid(first, second, encoder)
    shifted = fid(first, red, encoder)
    assert shifted > 3 * same_distribution > 0


def test_kid_is_near_zero_for_identical_sets_and_grows_with_a_shift(encoder, sets):
    first, second, red = sets
    identical, _ = kid(first, first, encoder, subsets=20)
    same_distribution, _ = kid(first, second, encoder, subsets=20)
    shifted, shifted_std = kid(first, red, encoder, subsets=20)
    assert shifted > 3 * max(abs(identical), abs(same_distribution))
    assert shifted > 3 * shifted_std


def test_kid_is_reproducible_and_leaves_the_global_rng_alone(encoder, sets):
    first, second, _ = sets
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = kid(first, second, encoder, subset_size=32, subsets=10, seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    assert kid(first, second, encoder, subset_size=32, subsets=10, seed=5) == a


def test_all_input_formats_give_the_same_fid(encoder, sets):
    first, second, _ = sets
    as_array = fid(first[:16], second[:16], encoder)
    as_pil = fid([Image.fromarray(a) for a in first[:16]], list(second[:16]), encoder)
    as_tensor = fid(torch.from_numpy(first[:16]).permute(0, 3, 1, 2), second[:16], ShopImageEncoder(model=encoder))
    assert as_pil == pytest.approx(as_array, rel=1e-5) and as_tensor == pytest.approx(as_array, rel=1e-5)


def test_bad_image_input_is_a_clear_error(encoder, sets):
    first = sets[0]
    with pytest.raises(ValueError, match="fake_images is empty"):
        fid(first, [], encoder)
    with pytest.raises(ValueError, match="real_images: need at least 2"):
        fid(first[:1], first, encoder)
    with pytest.raises(ValueError, match=r"fake_images\[0\]: arrays must be uint8"):
        fid(first, [first[0].astype(np.float32)], encoder)
    with pytest.raises(ValueError, match="subset_size"):
        kid(first[:8], first, encoder, subset_size=16)
    with pytest.raises(ValueError, match="differ in size"):
        images_to_uint8([first[0], np.zeros((16, 16, 3), np.uint8)])

import numpy as np
import torch

from tailorgen.interests.accent import ACCENT_TOL, HISTORY_ACCENT_DIM, accent_pixels, history_accent, main_and_accent


def test_main_and_accent_reads_a_garments_main_and_accent_colours_from_its_pixels():
    from tailorgen.world.attributes import COLOURS, NO_SECONDARY, PATTERNS
    from tailorgen.world.render import render_looks
    from tailorgen.world.silhouettes import SilhouetteBank

    rng = np.random.default_rng(0)
    bank = SilhouetteBank(use_fashion_mnist=False, seed=0)
    names = list(COLOURS)
    palette = np.array([COLOURS[c] for c in names], np.float32) / 255

    def nearest(rgb):  # the palette colour that some shade of explains the summary best
        x = (rgb + 1) / 2
        distance = [min(np.linalg.norm(x - s * q) for s in np.linspace(0.7, 1.1, 9)) for q in palette]
        return names[int(np.argmin(distance))]

    looks = []
    for _ in range(400):
        main, accent = rng.choice(len(names), 2, replace=False)
        pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
        looks.append((names[main], pattern, NO_SECONDARY if pattern == "solid" else names[accent]))
    images = [render_looks(bank.images[int(rng.integers(len(bank.images)))], [look], 32, rng)[0] for look in looks]
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    summary = main_and_accent(pixels).numpy()
    assert summary.shape == (400, 7)
    assert np.mean([nearest(s[:3]) == look[0] for s, look in zip(summary, looks)]) > 0.9
    solid = np.array([look[2] == NO_SECONDARY for look in looks])
    assert summary[solid, 6].mean() < 0.03 and np.abs(summary[solid, 3:6]).mean() < 0.05
    # Crisp patterns show their accent; a gradient fades into a tint of it, which the summary misses.
    crisp = [i for i, look in enumerate(looks) if look[1] not in ("solid", "gradient")]
    assert summary[crisp, 6].mean() > 0.1
    assert np.mean([summary[i, 6] > 0.02 and nearest(summary[i, 3:6]) == looks[i][2] for i in crisp]) > 0.7
    # At the lower accent threshold that history_accent uses, crisp accents are read far more often,
    # while solid garments still stay under its single-colour share.
    finer = main_and_accent(pixels, accent_tol=ACCENT_TOL).numpy()
    assert np.mean([finer[i, 6] >= 0.1 and nearest(finer[i, 3:6]) == looks[i][2] for i in crisp]) > 0.85
    assert np.mean(finer[solid, 6] < 0.1) > 0.9
    # accent_pixels marks the pixels behind that share: some exactly where the summary has an accent.
    marked = accent_pixels(pixels)
    assert marked.shape == (400, 32, 32) and marked.dtype == torch.bool
    np.testing.assert_array_equal(marked.flatten(1).any(1).numpy(), finer[:, 6] > 0)


def _summary(accent=None, share=0.3):
    """A main_and_accent row: a grey garment with the given accent colour (or none)."""
    row = np.zeros(7, np.float32)
    if accent is not None:
        row[3:6], row[6] = accent, share
    else:
        row[6] = 0.02  # a solid garment's few off-main pixels
    return row


def test_history_accent_is_the_recency_weighted_most_shown_accent():
    red, red2, blue = (0.8, -0.8, -0.8), (0.7, -0.75, -0.8), (-0.7, -0.3, 0.9)
    # Two reds (close enough to be one colour under shading) outweigh one blue of the same weight.
    out = history_accent(np.stack([_summary(red), _summary(blue), _summary(red2)]), np.ones(3))
    assert out.shape == (HISTORY_ACCENT_DIM,) and out[3] == 1.0
    np.testing.assert_allclose(out[:3], np.mean([red, red2], axis=0), atol=1e-6)
    np.testing.assert_allclose(out[4], 2 / 3, atol=1e-6)
    # With recency weights the blue, bought last and weighted most, wins.
    out = history_accent(np.stack([_summary(red), _summary(red2), _summary(blue)]), np.array([1.0, 1.0, 3.0]))
    np.testing.assert_allclose(out[:3], blue, atol=1e-6)
    # Single-colour items count as "no accent", and win when they weigh more than any accent.
    rows = np.stack([_summary(red), _summary(), _summary(), _summary(blue)])
    out = history_accent(rows, np.ones(4))
    assert out[3] == 0.0 and not out[:3].any() and np.isclose(out[4], 0.5)
    # An accent on too small a share of the garment is not one.
    assert history_accent(np.stack([_summary(red, share=0.05)]), np.ones(1))[3] == 0.0
    assert not history_accent(np.zeros((0, 7)), np.zeros(0)).any()

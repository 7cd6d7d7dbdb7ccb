"""The shipped generator's output for one fixed request is pinned: refactoring must not change it.

``data/shipped_generator_u00_i000.npz`` was made by the code before the 2026-11-29 refactor (issue
#21): the small shop of seed 7, user u00, item i000, seed 0, 4 DDIM steps, two images each for
``plain`` and ``full``. Images are uint8, so a float difference of the order of rounding may move
a pixel by one level; anything more is a changed generator.
"""

from pathlib import Path

import numpy as np

from tailorgen.generation.iamg import IAMGGenerator

PINNED = Path(__file__).parent / "data" / "shipped_generator_u00_i000.npz"


def test_the_shipped_generator_makes_the_pinned_images(small_shop):
    pinned = np.load(PINNED)
    gen = IAMGGenerator(small_shop, num_inference_steps=4, sampler="ddim", progress=False)
    for method in ("plain", "full"):
        images = gen.generate(str(pinned["user"]), str(pinned["item"]), n=2, seed=0, method=method).images
        got = np.stack([np.asarray(im) for im in images]).astype(int)
        diff = np.abs(got - pinned[method].astype(int))
        assert diff.max() <= 2 and diff.mean() < 0.05, f"{method}: max {diff.max()}, mean {diff.mean():.3f}"

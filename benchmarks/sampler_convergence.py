"""How far each sampler's image lands from the probability-flow ODE's solution, on the same noise.

    python benchmarks/sampler_convergence.py --dataset runs/demo/shop --requests 24

The reference is UniPC at 100 steps; DPM-Solver++ at 100 steps is printed beside it (two solvers of
the same ODE should agree). For each sampler and step count: the mean absolute pixel difference
to the reference (0-255), and the mean saturation (max minus min channel per pixel), on the
``full`` images of ``--requests`` (user, item) requests of the shipped generator.
"""

from __future__ import annotations

import argparse

import numpy as np

from tailorgen.data import Dataset
from tailorgen.generation.iamg import IAMGGenerator, pick_requests

SETTINGS = [("ddim", 25), ("ddim", 50), ("ddim", 100), ("ddim", 250), ("unipc", 8), ("unipc", 6), ("dpm++", 8)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="runs/demo/shop")
    ap.add_argument("--requests", type=int, default=24)
    args = ap.parse_args()
    gen = IAMGGenerator(Dataset(args.dataset))
    ctx = gen.context
    pairs = pick_requests(ctx.histories, list(ctx.texts), args.requests, 5, np.random.default_rng(5))
    requests = ctx.requests(pairs)

    def images(sampler: str, steps: int) -> np.ndarray:
        gen.sampler = sampler
        gen.pipeline.use_sampler(sampler)
        made = gen.generate_batch(pairs, n=1, requests=requests, num_inference_steps=steps)
        return np.stack([np.asarray(g.images[0], float) for g in made])

    def saturation(x: np.ndarray) -> float:
        return float((x.max(-1) - x.min(-1)).mean())

    reference = images("unipc", 100)
    print(f"dpm++ 100 steps: {np.abs(images('dpm++', 100) - reference).mean():.2f} from unipc 100")
    print(f"reference saturation {saturation(reference):.1f}")
    for sampler, steps in SETTINGS:
        x = images(sampler, steps)
        distance = np.abs(x - reference).mean()
        print(f"{sampler} {steps} steps: {distance:.2f} from unipc 100; saturation {saturation(x):.1f}")


if __name__ == "__main__":
    main()

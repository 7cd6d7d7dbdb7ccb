"""How fast one personalized image is made on this machine, lever by lever (issue #27).

    python benchmarks/bench_generation_speed.py --dataset runs/demo/shop --out docs/generation_speed.json

Every figure is a ratio against the shipped setting (DDIM, 25 steps, eager) measured in the same
run: the settings take turns request by request (round robin), so drift in the machine's speed
falls on all of them alike.

1. Latency of one image: batch of one, method ``full``, every stage (interests, rewrite,
   retrieval, conditions, denoising), per setting: the sampler and its steps, channels-last
   memory, a compiled UNet (``PersonalizedImagePipeline.compile_unet``).
2. ``torch.inference_mode`` against ``torch.no_grad`` on the pipeline call alone (the same
   conditions), since the pipeline now runs under the first.
3. Batched throughput: images a second at batch 1, 8 and 64, and the FLOP rate (torch's flop
   counter over the measured time) against a 1024x1024 fp32 matmul timed in the same run.

The quality side (is the faster setting as good?) is the shop benchmark, run with `tailorgen
bench shop --sampler S --steps N` and paired with the shipped setting by
benchmarks/compare_generators.py; docs/benchmarks.md, "Generation speed", has both.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from machine import matmul_gflops  # noqa: E402
from tailorgen.data import Dataset
from tailorgen.encoders.image import images_to_tensor
from tailorgen.generation.iamg import METHODS, IAMGGenerator, load_pipeline, noise_for, pick_requests

BASELINE = ("ddim", 25, "eager")
LATENCY_SETTINGS = [
    BASELINE,
    ("ddim", 25, "channels-last"),
    ("ddim", 25, "compiled"),
    ("dpm++", 10, "eager"),
    ("dpm++", 8, "eager"),
    ("dpm++", 6, "eager"),
    ("unipc", 10, "eager"),
    ("unipc", 8, "eager"),
    ("unipc", 6, "eager"),
    ("unipc", 8, "compiled"),
    ("unipc", 6, "compiled"),
]
THROUGHPUT_SETTINGS = [BASELINE, ("ddim", 25, "compiled"), ("unipc", 8, "compiled")]


def build_generators(ds: Dataset) -> dict[str, IAMGGenerator]:
    """One generator per pipeline variant, sharing the dataset's context (encoders, indexes, tags)."""
    eager = IAMGGenerator(ds)
    out = {"eager": eager}
    channels_last = load_pipeline()
    channels_last.unet.to(memory_format=torch.channels_last)
    out["channels-last"] = IAMGGenerator(ds, channels_last, context=eager.context)
    out["compiled"] = IAMGGenerator(ds, load_pipeline(), context=eager.context, compile_unet=True)
    return out


def run(gen: IAMGGenerator, sampler: str, steps: int, pairs, batch_size: int = 32) -> tuple[float, dict]:
    """Seconds for ``pairs`` (one image each, method full) with ``sampler`` at ``steps``; per-stage seconds."""
    gen.sampler = sampler
    gen.pipeline.use_sampler(sampler)
    t0 = time.perf_counter()
    out = gen.generate_batch(pairs, n=1, num_inference_steps=steps, batch_size=batch_size)
    return time.perf_counter() - t0, out[0].seconds


def latency(gens, pairs, rounds: int) -> dict:
    """Per setting: seconds for one image, request by request, the settings in turn."""
    warm_started = {}
    for sampler, steps, variant in LATENCY_SETTINGS:  # first calls allocate, and compile
        t0 = time.perf_counter()
        run(gens[variant], sampler, steps, pairs[:1])
        warm_started[f"{sampler}-{steps}-{variant}"] = time.perf_counter() - t0
    seconds = {k: [] for k in warm_started}
    stages = {k: [] for k in warm_started}
    for r in range(rounds):
        for pair in pairs:
            for sampler, steps, variant in LATENCY_SETTINGS:
                total, per_stage = run(gens[variant], sampler, steps, [pair])
                seconds[f"{sampler}-{steps}-{variant}"].append(total)
                stages[f"{sampler}-{steps}-{variant}"].append(per_stage)
        print(f"latency round {r + 1}/{rounds} done", flush=True)
    base = seconds["-".join(map(str, BASELINE))]
    out = {}
    for key, times in seconds.items():
        ratios = np.array(base) / np.array(times)
        out[key] = {
            "median_s": statistics.median(times),
            "mean_s": float(np.mean(times)),
            "p90_s": float(np.percentile(times, 90)),
            "speedup_vs_baseline": float(np.median(ratios)),
            "speedup_iqr": [float(np.percentile(ratios, 25)), float(np.percentile(ratios, 75))],
            "stages_mean_s": {s: float(np.mean([x[s] for x in stages[key]])) for s in stages[key][0]},
            "first_call_s": warm_started[key],
            "n": len(times),
        }
    return out


def inference_mode_vs_no_grad(gen: IAMGGenerator, pair, repeats: int) -> dict:
    """The pipeline call alone (conditions made once), under inference_mode (as shipped) and no_grad."""
    gen.pipeline.use_sampler("ddim")
    pipe, ctx = gen.pipeline, gen.context
    conditions = ctx.conditions(ctx.requests([pair]), rewritten=True)
    source = images_to_tensor([ctx.dataset.load_image(pair[1])], pipe.image_size)
    latents = noise_for(0, *pair, 0, pipe.noise_shape)[None]
    kwargs = dict(image=source, use=METHODS["full"][1], num_inference_steps=25, latents=latents, output_type="np")
    unwrapped = type(pipe).__call__.__wrapped__  # the call without its inference_mode decorator

    def no_grad_call():
        with torch.no_grad():
            return unwrapped(pipe, conditions, **kwargs)

    calls = {"inference_mode": lambda: pipe(conditions, **kwargs), "no_grad": no_grad_call}
    times = {k: [] for k in calls}
    for f in calls.values():
        f()
    for _ in range(repeats):
        for k, f in calls.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    ratio = np.array(times["no_grad"]) / np.array(times["inference_mode"])
    return {k: statistics.median(v) for k, v in times.items()} | {"speedup": float(np.median(ratio))}


def throughput(gens, pairs, batches: list[int], matmul: float) -> dict:
    """Images a second at each batch size, and the FLOP rate against the matmul rate."""
    out = {}
    for sampler, steps, variant in THROUGHPUT_SETTINGS:
        gen = gens[variant]
        for b in batches:
            chunk = pairs[:b]
            run(gen, sampler, steps, chunk, batch_size=b)  # warm-up (and compile for this batch size)
            with FlopCounterMode(display=False) as counter:
                run(gen, sampler, steps, chunk, batch_size=b)
            flops = counter.get_total_flops()
            times = [run(gen, sampler, steps, chunk, batch_size=b)[0] for _ in range(max(1, 16 // b))]
            seconds = statistics.median(times)
            out[f"{sampler}-{steps}-{variant}-batch{b}"] = {
                "images_per_s": b / seconds,
                "gflop_per_image": flops / b / 1e9,
                "gflops": flops / seconds / 1e9,
                "share_of_matmul": flops / seconds / 1e9 / matmul,
            }
            print(f"throughput {sampler}-{steps}-{variant} batch {b}: {b / seconds:.2f} images/s", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="runs/demo/shop", help="A dataset folder (the demo shop by default).")
    p.add_argument("--requests", type=int, default=8, help="Distinct (user, item) requests for the latency.")
    p.add_argument("--rounds", type=int, default=2, help="Times each request is timed per setting.")
    p.add_argument("--batches", default="1,8,64", help="Batch sizes for the throughput.")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="Write the results as JSON here.")
    args = p.parse_args()
    torch.manual_seed(0)
    ds = Dataset(args.dataset)
    gens = build_generators(ds)
    batches = [int(b) for b in args.batches.split(",")]
    ctx = gens["eager"].context
    n_pairs = max(args.requests, *batches)
    pairs = pick_requests(ctx.histories, list(ctx.texts), n_pairs, 5, np.random.default_rng(27))
    started = datetime.now(UTC).isoformat(timespec="seconds")
    matmul_before = matmul_gflops()
    result = {
        "what": "generation speed, issue #27 (benchmarks/bench_generation_speed.py)",
        "started": started,
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()},
        "torch": torch.__version__,
        "dataset": args.dataset,
        "baseline": "-".join(map(str, BASELINE)),
        "latency": latency(gens, pairs[: args.requests], args.rounds),
        "inference_mode": inference_mode_vs_no_grad(gens["eager"], pairs[0], 10),
    }
    result["matmul_gflops"] = statistics.mean([matmul_before, matmul_gflops()])
    if not args.skip_throughput:
        result["throughput"] = throughput(gens, pairs, batches, result["matmul_gflops"])
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

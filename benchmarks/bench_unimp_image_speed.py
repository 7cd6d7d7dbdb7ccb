"""How fast the unified model draws one image on this machine, lever by lever (issue #27).

    python benchmarks/bench_unimp_image_speed.py --dataset runs/demo/shop --out docs/unimp_image_speed.json

One image = the prompt's forward pass, 256 decoding steps with classifier-free guidance (the
conditional and unconditional prompts as two rows of one batch) and the VQ decoder. The settings
take turns request by request (round robin), so drift in the machine's speed falls on all alike:

- ``dynamic``: the loop as it was before this benchmark, with transformers' default
  ``DynamicCache``, which concatenates every layer's keys and values at every step (the
  reference; its loop is kept here, not in the library);
- ``static``: the library's ``sample_codes``, over transformers' ``StaticCache`` (written in place);
- ``static-compiled``: the same with the decoding step compiled (``Decoder.compile_sampler``).

Then images a second at batch 1, 8 and 64 for each setting but the reference, and the share of
the time a step spends in arithmetic (FLOPs from torch's flop counter against a 1024x1024 fp32
matmul timed in the same run).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import TopKLogitsWarper

sys.path.insert(0, str(Path(__file__).parent))
from machine import matmul_gflops  # noqa: E402
from tailorgen.data import Dataset
from tailorgen.unified import UniMP
from tailorgen.unified.keywords import Keywords
from tailorgen.unified.sample import Prompt, SamplingSettings, _pad_left, _positions
from tailorgen.unified.serialize import Example

SETTINGS = ("dynamic", "static", "static-compiled")


@torch.no_grad()
def dynamic_cache_codes(lm, cond: Prompt, uncond: Prompt, code_ids, n_tokens, settings, generator):
    """The reference: the sampling loop before the static cache, step for step (guidance, temperature,
    transformers' top-k warper, the log-probabilities RL reads; DynamicCache)."""
    b = cond.embeds.shape[0]
    length = max(cond.embeds.shape[1], uncond.embeds.shape[1])
    cond, uncond = _pad_left(cond, length), _pad_left(uncond, length)
    mask = torch.cat([cond.mask, uncond.mask])
    positions = _positions(mask)
    out = lm(inputs_embeds=torch.cat([cond.embeds, uncond.embeds]), attention_mask=mask, position_ids=positions,
             use_cache=True, logits_to_keep=1)  # fmt: skip
    embedding, codes, logps = lm.get_input_embeddings(), [], []
    top_k = TopKLogitsWarper(settings.top_k)
    for _ in range(n_tokens):
        scores = torch.log_softmax(out.logits[:, -1, code_ids].float(), -1)
        scores = scores[b:] + settings.guidance * (scores[:b] - scores[b:])
        scores = top_k(None, scores / settings.temperature)
        logp = torch.log_softmax(scores, -1)
        pick = torch.multinomial(logp.exp(), 1, generator=generator)
        codes.append(pick[:, 0])
        logps.append(logp.gather(1, pick)[:, 0])
        if len(codes) == n_tokens:
            break
        token = code_ids[pick].repeat(2, 1)
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], 1)
        positions = positions[:, -1:] + 1
        out = lm(inputs_embeds=embedding(token), attention_mask=mask, position_ids=positions,
                 past_key_values=out.past_key_values, use_cache=True)  # fmt: skip
    return torch.stack(codes, 1), torch.stack(logps, 1)


def requests(unimp: UniMP, n: int) -> list[Example]:
    """``n`` requests: a user's history before their last item, asking for its first three keywords."""
    words = Keywords.of(unimp.dataset).words
    users = sorted(unimp.histories)[:n]
    return [Example(u, "image_generation", tuple(unimp.history(u)[:-1]), "",
                    query=" ".join(words[unimp.history(u)[-1].item][:3])) for u in users]  # fmt: skip


def draw(unimp: UniMP, setting: str, examples: list[Example], settings: SamplingSettings) -> None:
    """One batch of images, pixels included, by ``setting``."""
    dec, model = unimp.decoder, unimp.model
    if setting == "dynamic":
        blank = [dataclasses.replace(ex, history=(), query="") for ex in examples]
        cond, uncond = dec.prompt(examples), dec.prompt(blank)
        gen = torch.Generator().manual_seed(0)
        codes, _ = dynamic_cache_codes(model.lm, cond, uncond, model.image_code_ids, model.config.image_tokens,
                                    settings, gen)  # fmt: skip
    else:
        codes = dec.imagine(examples, 1, settings)[0]
    dec.pixels(codes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="runs/demo/shop")
    ap.add_argument("--requests", type=int, default=20, help="Timed single-image requests per setting.")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    ds = Dataset(args.dataset)
    settings = SamplingSettings()
    models = {s: UniMP(ds) for s in SETTINGS}  # one model each: a compiled step stays with its decoder
    models["static-compiled"].decoder.compile_sampler()
    reqs = requests(models["static"], args.requests + 1 + 64)
    t0 = time.perf_counter()
    for s in SETTINGS:  # warm-up (and the compile)
        draw(models[s], s, reqs[:1], settings)
    compile_seconds = time.perf_counter() - t0
    times = {s: [] for s in SETTINGS}
    for ex in reqs[1 : args.requests + 1]:
        for s in SETTINGS:
            t = time.perf_counter()
            draw(models[s], s, [ex], settings)
            times[s].append(time.perf_counter() - t)
    base = statistics.median(times["dynamic"])
    latency = {s: {"median_s": round(statistics.median(v), 4), "p90_s": round(sorted(v)[int(0.9 * len(v))], 4),
                   "speedup": round(base / statistics.median(v), 2)} for s, v in times.items()}  # fmt: skip
    for s, r in latency.items():
        print(f"{s:16s} {r['median_s'] * 1000:7.0f} ms  (p90 {r['p90_s'] * 1000:.0f})  x{r['speedup']}", flush=True)
    throughput = {}
    for s in SETTINGS[1:]:
        for size in (1, 8, 64):
            batch = reqs[-size:]
            draw(models[s], s, batch, settings)  # traces the compiled step for this batch size
            t = time.perf_counter()
            draw(models[s], s, batch, settings)
            throughput[f"{s}@{size}"] = round(size / (time.perf_counter() - t), 2)
            print(f"{s:16s} batch {size:3d}: {throughput[f'{s}@{size}']:.2f} images/s", flush=True)
    with FlopCounterMode(display=False) as counter:
        draw(models["static"], "static", reqs[:1], settings)
    gflops = matmul_gflops()
    flops = counter.get_total_flops()
    record = {
        "what": "one token-generated image (UniMP), lever by lever",
        "command": " ".join(sys.argv),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "threads": torch.get_num_threads(),
            "matmul_gflops": round(gflops),
        },
        "latency": latency,
        "warm_up_and_compile_s": round(compile_seconds, 1),
        "images_per_second": throughput,
        "flops_per_image": flops,
        "arithmetic_share_of_static": round(flops / 1e9 / gflops / latency["static"]["median_s"], 4),
        "versions": {"torch": torch.__version__},
    }
    print(json.dumps({k: record[k] for k in ("flops_per_image", "arithmetic_share_of_static")}))
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()

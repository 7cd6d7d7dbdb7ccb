"""Training throughput of the unified model (UniMP) on this machine, against its fp32 matmul rate (issue #27).

    python benchmarks/bench_unimp_train_speed.py --dataset runs/demo/shop --steps 20 --out docs/unimp_train_speed.json

The steps of ``unified.train.train_unimp`` with the recipe's defaults (the same model, batches,
loss and optimizer), timed: tokens a second (non-padding tokens of each batch) and the FLOP rate
(torch's flop counter over one step, forward and backward) against a 1024x1024 fp32 matmul timed
before and after. The first 3 steps warm up and are not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from machine import matmul_gflops  # noqa: E402
from tailorgen.unified.batch import collate
from tailorgen.unified.serialize import TASKS
from tailorgen.unified.train import UniMPTrainConfig, build_model, draw_batch, prepare

WARM_UP = 3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=Path("runs/demo/shop"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    cfg = UniMPTrainConfig()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    prep = prepare(cfg, args.dataset, progress=False)
    model = build_model(cfg, prep).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    weights = dict(zip(TASKS, cfg.task_weights, strict=True))
    pad = prep.encoder.tokenizer.pad_token_id

    def step(count_flops: bool = False) -> tuple[float, int, int, float]:
        picked = draw_batch(prep, cfg, rng)
        encoded = [prep.encoder.encode(prep.serializer.pieces(ex), cfg.max_length) for ex in picked]
        batch = collate(encoded, pad, prep.images, [weights[ex.task] for ex in picked])
        t = time.perf_counter()
        counter = FlopCounterMode(display=False) if count_flops else None
        with counter or contextlib.nullcontext():
            loss = model(batch.input_ids, batch.attention_mask, batch.image_features, batch.weights, cfg.focal_gamma)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        seconds = time.perf_counter() - t
        flops = counter.get_total_flops() if count_flops else 0
        return seconds, int(batch.attention_mask.sum()), int(batch.attention_mask.numel()), flops

    rates = [matmul_gflops()]
    for _ in range(WARM_UP):
        step()
    _, _, slots_one, flops_one = step(count_flops=True)
    rows = [step() for _ in range(args.steps)]
    rates.append(matmul_gflops())
    seconds = sum(r[0] for r in rows)
    tokens, slots = sum(r[1] for r in rows), sum(r[2] for r in rows)
    # FLOPs grow with the padded batch (every slot is computed): the counted step's FLOPs a slot, times the slots.
    flops = flops_one / slots_one * slots
    rate = statistics.median(rates)
    result = {
        "what": "UniMP training throughput (benchmarks/bench_unimp_train_speed.py)",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dataset": str(args.dataset),
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch_size": cfg.batch_size,
        "steps_timed": len(rows),
        "seconds_per_step": seconds / len(rows),
        "tokens_per_second": tokens / seconds,
        "padded_slots_per_second": slots / seconds,
        "gflop_per_step_estimate": flops / len(rows) / 1e9,
        "gflops": flops / seconds / 1e9,
        "matmul_gflops": rates,
        "share_of_matmul": flops / seconds / 1e9 / rate,
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

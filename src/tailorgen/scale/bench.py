"""`tailorgen scale bench iamg`: the I-AM-G benchmark with its users scored in partitions on the cluster.

Map: each worker scores a slice of the benchmark's users with ``evaluation.bench_iamg.score_users``
(every method's image, the embedding metrics, the judge's reads and the oracle's utility).
Reduce: the slices joined in order (``ScoredUsers.join``), then image quality, latency and the
record exactly as ``tailorgen bench iamg`` makes them. Slices are whole multiples of the
benchmark's UNet batch, so every image is the one the single-machine run draws.
"""

from __future__ import annotations

import os
from pathlib import Path

from tailorgen.data import Dataset
from tailorgen.evaluation.bench_iamg import (
    GENERATION_BATCH,
    IAMGBenchConfig,
    ScoredUsers,
    benchmark_shop,
    run_iamg_benchmark,
    score_users,
)
from tailorgen.evaluation.judge import Judge
from tailorgen.generation.iamg import IAMGGenerator
from tailorgen.scale.jobs import Partition, kept, partitions, run_partitions

PARTITION_USERS = 2 * GENERATION_BATCH


def bench_on_dask(
    client,
    cfg: IAMGBenchConfig,
    work_dir: str | os.PathLike = "runs/work",
    out: str | os.PathLike | None = None,
    generator: str | os.PathLike | None = None,
    judge: str | os.PathLike | None = None,
    dataset: str | os.PathLike | None = None,
    partition_users: int = PARTITION_USERS,
    progress: bool = True,
) -> dict:
    """``run_iamg_benchmark`` with the users scored on the cluster; returns the same record."""
    if partition_users < 1 or partition_users % GENERATION_BATCH:
        raise ValueError(
            f"partition_users must be a multiple of {GENERATION_BATCH} (the benchmark's UNet batch), "
            f"got {partition_users}"
        )
    shop = benchmark_shop(cfg, work_dir, progress) if dataset is None else Path(dataset)  # built once, here
    models = tuple(str(Path(m).resolve()) if m else None for m in (generator, judge))  # as the workers find them

    def scorer(shop, cfg, users, targets, mismatched) -> ScoredUsers:
        parts = partitions(len(users), partition_users)
        share = lambda p: (users[p.start : p.stop], targets[p.start : p.stop], mismatched[p.start : p.stop])  # noqa: E731
        scored = run_partitions(
            client,
            score_partition,
            parts,
            str(Path(shop).resolve()),
            cfg,
            *models,
            own=share,
            desc="bench",
            progress=progress,
        )
        return ScoredUsers.join([scored[p.index] for p in parts])

    return run_iamg_benchmark(cfg, work_dir, out, generator, judge, progress, dataset=shop, scorer=scorer)


def score_partition(
    part: Partition,
    users: list[str],
    targets: list[str],
    mismatched: list[str],
    shop: str,
    cfg: IAMGBenchConfig,
    generator: str | None,
    judge: str | None,
) -> ScoredUsers:
    """On a worker: this slice of the users scored, as the single-machine benchmark scores them."""
    gen = kept(
        ("bench-generator", shop, generator, cfg.guidance, cfg.steps, cfg.sampler),
        lambda: IAMGGenerator(
            shop, generator, guidance_scale=cfg.guidance, num_inference_steps=cfg.steps, sampler=cfg.sampler
        ),
    )
    judge_model = kept(("judge", judge), lambda: Judge(judge)) if Dataset(shop).has_ground_truth else None
    return score_users(shop, cfg, users, targets, mismatched, gen, judge_model, first=part.start)

"""`tailorgen scale generate`: a batch of personalized images made by the workers, into a generate run folder.

The run folder is ``tailorgen generate``'s (``run.json``, ``USER/ITEM__METHOD/``, ``records.jsonl``,
``manifest.json``), so either command resumes the other's run. The requests still to do are cut
into partitions of whole UNet batches, which makes each batch, and so each image, the one the
single-machine command makes. A worker writes each request's folder whole (a temporary folder
renamed in) and skips requests already written, so a retried partition finishes what is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

from tailorgen.common.manifest import write_run_manifest
from tailorgen.generation.iamg import IAMGGenerator
from tailorgen.generation.output import (
    generate_requests,
    open_run_folder,
    requests_per_batch,
    requests_to_do,
    run_config,
    write_records,
)
from tailorgen.generation.pipeline import DEFAULT_SAMPLER, DEFAULT_STEPS
from tailorgen.interests.rewrite import make_rewriter
from tailorgen.scale.jobs import Partition, kept, partitions, run_partitions

BATCHES_PER_PARTITION = 4  # UNet batches a task makes: ~10 s of work, so progress moves and a lost task costs little


def generate_on_dask(
    client,
    dataset_dir: str | os.PathLike,
    pairs: list[tuple[str, str]],
    out: str | os.PathLike,
    n: int = 4,
    seed: int = 0,
    method: str = "full",
    rewriter: str = "template",
    generator: str | os.PathLike | None = None,
    steps: int = DEFAULT_STEPS,
    sampler: str = DEFAULT_SAMPLER,
    compile_unet: bool = False,
    guidance: float = 2.0,
    overwrite: bool = False,
    resume: bool = False,
    batches_per_partition: int = BATCHES_PER_PARTITION,
    progress: bool = True,
) -> list[dict]:
    """``n`` images for each (user, item) of ``pairs``, made on the cluster; returns every record of the run."""
    out = Path(out).resolve()
    options = {
        "root": str(Path(dataset_dir).resolve()),
        "generator": str(Path(generator).resolve()) if generator else None,
    }
    options |= {"rewriter": rewriter, "guidance": guidance, "steps": steps, "sampler": sampler}
    # Here the generator only names the run's settings and checkpoints: never compiled, it makes no image.
    gen = loaded_generator(**options)
    gen.context.check_known(pairs)  # before anything is written
    config = run_config(gen, pairs, method=method, n=n, steps=steps, guidance=guidance, rewriter=rewriter, seed=seed)
    options["compile_unet"] = compile_unet
    records = open_run_folder(out, config, overwrite, resume)
    todo = requests_to_do(pairs, records)
    per_batch = requests_per_batch(n)
    parts = partitions(len(todo), per_batch * batches_per_partition)
    job = (str(out), n, seed, method, gen.checkpoints(), per_batch, options)
    share = lambda part: (todo[part.start : part.stop],)  # noqa: E731
    made = run_partitions(client, generate_partition, parts, *job, own=share, desc="generate", progress=progress)
    for part in parts:
        records += made[part.index]
    write_records(out, records)
    write_run_manifest(out, "tailorgen scale generate", config, seed, {"records": out / "records.jsonl"})
    return records


def loaded_generator(
    root: str,
    generator: str | None,
    rewriter: str,
    guidance: float,
    steps: int,
    sampler: str = DEFAULT_SAMPLER,
    compile_unet: bool = False,
) -> IAMGGenerator:
    """The generator for these options, loaded once per process (a worker keeps it for its next partition)."""
    key = ("generator", root, generator, rewriter, guidance, steps, sampler, compile_unet)
    return kept(
        key,
        lambda: IAMGGenerator(
            root,
            generator,
            rewriter=make_rewriter(rewriter),
            guidance_scale=guidance,
            num_inference_steps=steps,
            sampler=sampler,
            compile_unet=compile_unet,
        ),
    )


def generate_partition(
    part: Partition,
    pairs: list[tuple[str, str]],
    out: str,
    n: int,
    seed: int,
    method: str,
    checkpoints: dict[str, str],
    per_batch: int,
    options: dict,
) -> list[dict]:
    """On a worker: the part's requests ``pairs``, generated and written; their records."""
    gen = loaded_generator(**options)
    if gen.checkpoints() != checkpoints:
        raise RuntimeError("this worker's generator or encoders differ from the client's; install the same files")
    return generate_requests(gen, [tuple(p) for p in pairs], Path(out), n, seed, method, checkpoints, per_batch)

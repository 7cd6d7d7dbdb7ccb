"""`tailorgen generate`: personalized images for a user and an item (I-AM-G), one request or a batch."""

from __future__ import annotations

import csv
from pathlib import Path

import click

from tailorgen.cli import main

MAX_IMAGES = 64  # per request; a batch writes as it goes, so memory holds one batch, whatever --n
MAX_STEPS = 1000  # the scheduler's training timesteps: more steps than that would repeat some
MAX_GUIDANCE = 50.0
# generation.pipeline's SAMPLERS, DEFAULT_SAMPLER and DEFAULT_STEPS, named here so that --help does
# not import diffusers (a test checks they agree).
SAMPLER_NAMES = ("ddim", "dpm++", "unipc")
DEFAULT_SAMPLER = "unipc"
DEFAULT_STEPS = 6


def read_pairs(path: str) -> list[tuple[str, str]]:
    pairs = []
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's BOM is not part of "user_id"
        reader = csv.DictReader(f)
        missing = {"user_id", "item_id"} - set(reader.fieldnames or [])
        if missing:
            raise click.BadParameter(f"{path} needs the columns user_id and item_id (missing: {sorted(missing)})")
        for line, row in enumerate(reader, start=2):
            if not row["user_id"] or not row["item_id"]:
                raise click.BadParameter(f"{path}, line {line}: empty user_id or item_id")
            pairs.append((row["user_id"], row["item_id"]))
    return pairs


def generation_options(fn):
    """The options ``tailorgen generate`` and ``tailorgen scale generate`` share: what to make, and where."""
    options = [
        click.option("--n", type=click.IntRange(1, MAX_IMAGES), default=4, show_default=True,
                     help=f"Images per request (1 to {MAX_IMAGES})."),
        click.option("--seed", type=int, default=0, show_default=True, help="Fixes the starting noise of every image."),
        click.option("--method", type=click.Choice(["full", "rewrite", "retrieval", "plain"]), default="full",
                     show_default=True,
                     help="full: I-AM-G; rewrite / retrieval: one half of it; plain: the item text alone "
                     "(not personalized)."),
        click.option("--rewriter", default="template", show_default=True,
                     help="template, local-llm (embedded SmolLM2), local-llm:PATH, or http:URL[#MODEL]."),
        click.option("--generator", "generator_path", type=click.Path(file_okay=False), default=None,
                     help="Generator pipeline folder (default: the one shipped with tailorgen)."),
        click.option("--steps", type=click.IntRange(1, MAX_STEPS), default=DEFAULT_STEPS, show_default=True,
                     help=f"Denoising steps (1 to {MAX_STEPS})."),
        click.option("--sampler", type=click.Choice(SAMPLER_NAMES), default=DEFAULT_SAMPLER, show_default=True,
                     help="unipc / dpm++: multistep solvers, as good as DDIM at 25 steps from 6 steps on the shop "
                     "benchmark; ddim: the generator's training-time sampler, with --steps 25 the images of runs "
                     "before 2026-11-30 (docs/benchmarks.md, \"Generation speed\")."),
        click.option("--compile", "compile_unet", is_flag=True,
                     help="Compile the UNet first (torch.compile; 25-50 s a batch size on 2 cores, then each step "
                     "about 15% faster): at 6 steps it pays back from about 1,500 images."),
        click.option("--guidance", type=click.FloatRange(0, MAX_GUIDANCE), default=2.0, show_default=True,
                     help=f"Classifier-free guidance scale (0 to {MAX_GUIDANCE:g}; 1: no guidance)."),
        click.option("--out", type=click.Path(file_okay=False), default="runs/generate", show_default=True,
                     help="Run folder: a new one, or an earlier run with --overwrite or --resume."),
        click.option("--overwrite", is_flag=True, help="Replace OUT if it holds an earlier generate run."),
        click.option("--resume", is_flag=True,
                     help="Finish an interrupted run in OUT (same options): skip the requests done."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def echo_records(records: list[dict], out: str) -> None:
    for r in records:
        click.echo(f"{r['user_id']} x {r['item_id']}: tags {r['user_tags']} -> {r['rewrite']['text']!r}")
        click.echo(f"  wrote {len(r['images'])} images to {Path(out) / Path(r['images'][0]).parent}")


@main.command()
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--user", "user_id", default=None, help="User to personalize for (their history is read from the data).")
@click.option("--item", "item_id", default=None, help="The item to personalize.")
@click.option(
    "--requests",
    "requests_csv",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Batch mode: a CSV with columns user_id,item_id (instead of --user/--item).",
)
@generation_options
def generate(
    dataset_dir,
    user_id,
    item_id,
    requests_csv,
    n,
    seed,
    method,
    rewriter,
    generator_path,
    steps,
    sampler,
    compile_unet,
    guidance,
    out,
    overwrite,
    resume,
) -> None:
    """Generate the personalized version of an item for a user, and record every step.

    Writes OUT/run.json (the options), OUT/USER/ITEM__METHOD/image_K.png and record.json (the user's interest tags, the
    rewritten text, the retrieved text and image neighbours with scores, the seed, the time each
    stage took and the hashes of every checkpoint), OUT/records.jsonl and OUT/manifest.json.
    Folder names are made safe from the ids (docs/data.md); the record keeps the ids. Each batch is
    written as soon as it is made, so an interrupted run keeps its images and --resume finishes it.

    \b
    Example:
      tailorgen generate runs/demo/shop --user u007 --item i0042 --n 4
      tailorgen generate runs/demo/shop --requests pairs.csv --n 2
    """
    from tailorgen.common.manifest import write_run_manifest
    from tailorgen.generation.iamg import IAMGGenerator
    from tailorgen.generation.output import generate_into, run_config
    from tailorgen.interests.rewrite import make_rewriter

    if overwrite and resume:
        raise click.UsageError("give --overwrite (start over) or --resume (finish the run), not both")

    if requests_csv:
        if user_id or item_id:
            raise click.UsageError("give either --requests or --user/--item, not both")
        pairs = read_pairs(requests_csv)
    elif user_id and item_id:
        pairs = [(user_id, item_id)]
    else:
        raise click.UsageError("give --user and --item (or --requests FILE.csv for a batch)")
    # The settings the generator was trained with (its training report), else the defaults.
    gen = IAMGGenerator(
        dataset_dir,
        generator_path,
        rewriter=make_rewriter(rewriter),
        guidance_scale=guidance,
        num_inference_steps=steps,
        progress=True,
        sampler=sampler,
        compile_unet=compile_unet,
    )
    config = run_config(gen, pairs, method=method, n=n, steps=steps, guidance=guidance, rewriter=rewriter, seed=seed)
    records = generate_into(gen, pairs, out, config, n, seed, method, overwrite=overwrite, resume=resume)
    write_run_manifest(out, "tailorgen generate", config, seed, {"records": Path(out) / "records.jsonl"})
    echo_records(records, out)

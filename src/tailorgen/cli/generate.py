"""`tailorgen generate`: personalized images for a user and an item (I-AM-G), one request or a batch."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import click

from tailorgen.cli import main


def _read_pairs(path: str) -> list[tuple[str, str]]:
    pairs = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"user_id", "item_id"} - set(reader.fieldnames or [])
        if missing:
            raise click.BadParameter(f"{path} needs the columns user_id and item_id (missing: {sorted(missing)})")
        for line, row in enumerate(reader, start=2):
            if not row["user_id"] or not row["item_id"]:
                raise click.BadParameter(f"{path}, line {line}: empty user_id or item_id")
            pairs.append((row["user_id"], row["item_id"]))
    return pairs


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
@click.option("--n", type=click.IntRange(min=1), default=4, show_default=True, help="Images per request.")
@click.option("--seed", type=int, default=0, show_default=True, help="Fixes the starting noise of every image.")
@click.option(
    "--method",
    type=click.Choice(["full", "rewrite", "retrieval", "plain"]),
    default="full",
    show_default=True,
    help="full: I-AM-G; rewrite / retrieval: one half of it; plain: the item text alone (not personalized).",
)
@click.option(
    "--rewriter",
    default="template",
    show_default=True,
    help="template, local-llm (embedded SmolLM2), local-llm:PATH, or http:URL[#MODEL].",
)
@click.option("--generator", "generator_path", type=click.Path(file_okay=False), default=None,
              help="Generator pipeline folder (default: the one shipped with tailorgen).")  # fmt: skip
@click.option("--steps", type=int, default=25, show_default=True, help="Denoising steps (DDIM).")
@click.option("--guidance", type=float, default=2.0, show_default=True, help="Classifier-free guidance scale.")
@click.option(
    "--interest-guidance",
    type=float,
    default=None,
    help="Guide the interest tokens on their own with this scale (a third branch without them; default: "
    "off, i.e. the same as --guidance). Raising it lowered the gain on the development shop.",
)
@click.option("--out", type=click.Path(file_okay=False), default="runs/generate", show_default=True)
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
    guidance,
    interest_guidance,
    out,
) -> None:
    """Generate the personalized version of an item for a user, and record every step.

    Writes OUT/USER__ITEM__METHOD/image_K.png and record.json (the user's interest tags, the
    rewritten text, the retrieved text and image neighbours with scores, the seed, the time each
    stage took and the hashes of every checkpoint), OUT/records.jsonl and OUT/manifest.json.

    \b
    Example:
      tailorgen generate runs/demo/shop --user u007 --item i0042 --n 4
      tailorgen generate runs/demo/shop --requests pairs.csv --n 2
    """
    from tailorgen.common.manifest import write_run_manifest
    from tailorgen.generation.iamg import IAMGGenerator, save_generations
    from tailorgen.interests.rewrite import make_rewriter

    if requests_csv:
        if user_id or item_id:
            raise click.UsageError("give either --requests or --user/--item, not both")
        pairs = _read_pairs(requests_csv)
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
        interest_guidance_scale=interest_guidance,
        num_inference_steps=steps,
        progress=True,
    )
    for u, i in pairs:
        if u not in gen.context.histories:
            raise click.BadParameter(f"user '{u}' has no interactions in {dataset_dir}", param_hint="--user")
        if i not in gen.context.texts:
            raise click.BadParameter(f"item '{i}' is not in {dataset_dir}", param_hint="--item")
    results = gen.generate_batch(pairs, n=n, seed=seed, method=method)
    records = save_generations(results, out, gen.checkpoints())
    config = {"method": method, "n": n, "steps": steps, "guidance": guidance, "rewriter": rewriter}
    config["interest_guidance"] = interest_guidance
    config |= {"settings": dataclasses.asdict(gen.context.settings), "pairs": len(pairs)}
    write_run_manifest(out, "tailorgen generate", config, seed, {"records": Path(out) / "records.jsonl"})
    for r in records:
        click.echo(f"{r['user_id']} x {r['item_id']}: tags {r['user_tags']} -> {r['rewrite']['text']!r}")
        click.echo(f"  wrote {len(r['images'])} images to {Path(out) / Path(r['images'][0]).parent}")

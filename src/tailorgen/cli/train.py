"""`tailorgen train ...`: train the embedded models on the simulated shop."""

from __future__ import annotations

import json

import click

from tailorgen.cli import main
from tailorgen.cli.config_options import ConfigCommand


@main.group()
def train() -> None:
    """Train tailorgen's embedded models (each writes save_pretrained weights and a training report)."""


def _work_dir_option(fn):
    return click.option(
        "--work-dir",
        type=click.Path(file_okay=False),
        default="runs/work",
        show_default=True,
        help="Where the training and held-out shops are built (reused across runs).",
    )(fn)


def _run(trainer, cfg, out, work_dir, device, checkpoint_every) -> dict:
    from tailorgen.training import TrainingError

    try:
        return trainer(cfg, out, work_dir, device=device, checkpoint_every=checkpoint_every)
    except TrainingError as e:  # a device this machine lacks, a checkpoint of another config in --out
        raise click.ClickException(str(e)) from e


@train.command(
    "encoder",
    cls=ConfigCommand,
    config="tailorgen.encoders.train:EncoderTrainConfig",
    aliases={"train_items": ["--items"]},
)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Checkpoint folder to write.")
@_work_dir_option
def train_encoder(out, work_dir, device, checkpoint_every, cfg) -> None:
    """Train the embedded image encoder into the frozen MiniLM text space (contrastive, locked text).

    Prints zero-shot accuracy per attribute and image-to-image precision@10 on held-out items.
    The checkpoint that ships with tailorgen was made with the defaults:
    `tailorgen train encoder --out src/tailorgen/assets/image_encoder`.
    """
    from tailorgen.encoders.train import train_image_encoder

    report = _run(train_image_encoder, cfg, out, work_dir, device, checkpoint_every)
    click.echo(json.dumps({k: report[k] for k in ("train_seconds", "final_loss", "metrics")}, indent=2))


@train.command(
    "judge",
    cls=ConfigCommand,
    config="tailorgen.evaluation.judge:JudgeTrainConfig",
    aliases={"train_items": ["--items"]},
)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Checkpoint folder to write.")
@_work_dir_option
def train_judge_cmd(out, work_dir, device, checkpoint_every, cfg) -> None:
    """Train the judge (evaluation only) on its own shop and report held-out accuracy per attribute.

    The shipped judge: `tailorgen train judge --out src/tailorgen/assets/judge`.
    """
    from tailorgen.evaluation.judge import train_judge

    report = _run(train_judge, cfg, out, work_dir, device, checkpoint_every)
    click.echo(json.dumps({k: report[k] for k in ("train_seconds", "held_out")}, indent=2))


@train.command("generator")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Pipeline folder to write.")
@click.option("--work-dir", type=click.Path(file_okay=False), default="runs/work", show_default=True)
@click.option("--steps", type=int, default=None, help="Optimizer steps (default: the config's).")
@click.option("--batch-size", type=int, default=None, help="Images per step (default: the config's).")
@click.option("--examples", type=int, default=None, help="Training examples to precompute (default: the config's).")
@click.option(
    "--target-look",
    type=click.Choice(["history", "next_item"]),
    default="history",
    show_default=True,
    help="Look of a personalize example's target: the one the user's history shows most "
    "(recency-weighted), or that of the item the user chose next.",
)
@click.option(
    "--history-images",
    type=click.IntRange(min=0),
    default=None,
    help="How many of the user's most recent history images the interest attention reads from their "
    "pixels (default: the config's; 0: none, as in the paper).",
)
@click.option(
    "--history-tokens/--no-history-tokens",
    default=None,
    help="Put the history images' tokens in the interest segment too, so the UNet attends to each of "
    "them and not only to the fusion's outputs (default: the config's, off).",
)
@click.option(
    "--history-accent/--no-history-accent",
    default=None,
    help="Give the interest segment one more token: the accent (second) colour the user's whole history "
    "shows most, read from the items' pixels without labels (default: the config's, off).",
)
@click.option(
    "--accent-film/--no-accent-film",
    default=None,
    help="Let the UNet read that history accent in its ResNet blocks, through its class embedding "
    "(default: the config's, off).",
)
@click.option(
    "--accent-pixel-weight",
    type=float,
    default=None,
    help="Extra weight of the denoising loss on the target's accent pixels (default: the config's, 0).",
)
@click.option(
    "--reference-image/--no-reference-image",
    default=None,
    help="Let the UNet read, with the interest segment, the pixels of the user's most typical recent "
    "item (default: the config's, off).",
)
@click.option(
    "--look-loss-weight",
    type=click.FloatRange(min=0),
    default=None,
    help="Weight of the auxiliary loss that makes the interest tokens predict the target's colour "
    "histogram (default: the config's; 0: off).",
)
@click.option(
    "--accent-loss-weight",
    type=click.FloatRange(min=0),
    default=None,
    help="Weight of the auxiliary loss that makes the conditioner say each history image's and the "
    "target's main and accent colour, read from the pixels without labels (default: the config's; 0: off).",
)
@click.option(
    "--init-from",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Fine-tune this saved generator instead of training from scratch (it must read as many "
    "history images as --history-images says).",
)
@click.option("--lr", type=float, default=None, help="Peak learning rate (default: the config's).")
@click.option(
    "--p-plain-text",
    type=click.FloatRange(0, 1),
    default=None,
    help="Share of personalize examples conditioned on the item's plain text, so that only the "
    "interest tokens carry the user (default: the config's).",
)
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda: training is slow on a CPU.")
@click.option("--seed", type=int, default=0, show_default=True)
def train_generator_cmd(
    out,
    work_dir,
    steps,
    batch_size,
    examples,
    target_look,
    history_images,
    history_tokens,
    history_accent,
    accent_film,
    accent_pixel_weight,
    reference_image,
    look_loss_weight,
    accent_loss_weight,
    init_from,
    lr,
    p_plain_text,
    device,
    seed,
) -> None:
    """Train the personalized generator (pixel UNet + interest-attention conditioner) on its own shop.

    Examples come from users' histories: "personalize" (another item of the chosen item's category,
    rewritten with the user's tags, must take on the look the user's history shows) and
    "reconstruct" (an item with no user information must stay itself). The generator reads the
    item's pixels too, so it keeps the garment's shape. The defaults train in about an hour on 2 CPU
    cores. The generator that ships with tailorgen reads 8 history images and trained 25 times
    longer, on a GPU: about `--history-images 8 --steps 9500 --batch-size 256 --device cuda`
    (its exact recipe, scripts/device_train.py, is in docs/benchmarks.md).
    """
    from tailorgen.generation.train import GeneratorTrainConfig, train_generator

    given = {
        "steps": steps,
        "batch_size": batch_size,
        "examples": examples,
        "history_images": history_images,
        "history_tokens": history_tokens,
        "history_accent": history_accent,
        "accent_film": accent_film,
        "accent_pixel_weight": accent_pixel_weight,
        "reference_image": reference_image,
        "look_loss_weight": look_loss_weight,
        "accent_loss_weight": accent_loss_weight,
        "init_from": init_from,
        "lr": lr,
        "p_plain_text": p_plain_text,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    cfg = GeneratorTrainConfig(seed=seed, target_look=target_look, **overrides)
    report = train_generator(cfg, out, work_dir, device=device)
    keys = ("examples", "personalize_examples", "prep_seconds", "train_seconds", "parameters")
    click.echo(json.dumps({k: report[k] for k in keys} | {"final_loss": report["loss_curve"][-1]}, indent=2))

"""`tailorgen train ...`: train the embedded models on the simulated shop."""

from __future__ import annotations

import json

import click

from tailorgen.cli import main


@main.group()
def train() -> None:
    """Train tailorgen's embedded models (each writes save_pretrained weights and a training report)."""


@train.command("encoder")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Checkpoint folder to write.")
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False),
    default="runs/work",
    show_default=True,
    help="Where the training and held-out shops are built (reused across runs).",
)
@click.option("--items", "train_items", type=int, default=20_000, show_default=True, help="Training shop size.")
@click.option("--epochs", type=int, default=12, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def train_encoder(out, work_dir, train_items, epochs, seed) -> None:
    """Train the embedded image encoder into the frozen MiniLM text space (contrastive, locked text).

    Prints zero-shot accuracy per attribute and image-to-image precision@10 on held-out items.
    The checkpoint that ships with tailorgen was made with the defaults:
    `tailorgen train encoder --out src/tailorgen/assets/image_encoder`.
    """
    from tailorgen.encoders.train import EncoderTrainConfig, train_image_encoder

    cfg = EncoderTrainConfig(train_items=train_items, epochs=epochs, seed=seed)
    report = train_image_encoder(cfg, out, work_dir)
    click.echo(json.dumps({k: report[k] for k in ("train_seconds", "final_loss", "metrics")}, indent=2))


@train.command("judge")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Checkpoint folder to write.")
@click.option("--work-dir", type=click.Path(file_okay=False), default="runs/work", show_default=True)
@click.option("--items", "train_items", type=int, default=30_000, show_default=True)
@click.option("--epochs", type=int, default=8, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
def train_judge_cmd(out, work_dir, train_items, epochs, seed) -> None:
    """Train the judge (evaluation only) on its own shop and report held-out accuracy per attribute.

    The shipped judge: `tailorgen train judge --out src/tailorgen/assets/judge`.
    """
    from tailorgen.evaluation.judge import JudgeTrainConfig, train_judge

    report = train_judge(JudgeTrainConfig(train_items=train_items, epochs=epochs, seed=seed), out, work_dir)
    click.echo(json.dumps({k: report[k] for k in ("train_seconds", "held_out")}, indent=2))

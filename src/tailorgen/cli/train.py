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
    # A TrainingError (a device this machine lacks, a checkpoint of another config in --out) is a
    # ValueError: the CLI-wide handler makes it one `error:` line and exit code 2.
    return trainer(cfg, out, work_dir, device=device, checkpoint_every=checkpoint_every)


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


@train.command("generator", cls=ConfigCommand, config="tailorgen.generation.train:GeneratorTrainConfig")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Pipeline folder to write.")
@_work_dir_option
def train_generator_cmd(out, work_dir, device, checkpoint_every, cfg) -> None:
    """Train the personalized generator (pixel UNet + conditioner with interest attention).

    The defaults are the shipped generator's recipe: a first phase from scratch reading the
    item, the rewritten text, the neighbours and the user's last 8 history images, then a
    fine-tune where the history accent joins (token and UNet class embedding). At batch 256 that
    is GPU work: `tailorgen train generator --out DIR --device cuda` runs the shipped generator's
    recipe (its two phases took 9 min on an H200 and 4 on an H100). On 2 CPU cores,
    `--config configs/generator-cpu.toml` is the one-hour recipe. `--init-from DIR --steps 0`
    fine-tunes a saved generator. `--backend sd15 --pretrained SD_DIR --no-accent-film` trains
    the conditioner against a frozen Stable Diffusion 1.5 UNet instead. A killed run, started
    again with the same options and --out, resumes from its last checkpoint.
    """
    from tailorgen.generation.train import train_generator

    report = _run(train_generator, cfg, out, work_dir, device, checkpoint_every)
    keys = ("examples", "renders", "personalize_examples", "prep_seconds", "train_seconds", "parameters")
    click.echo(json.dumps({k: report[k] for k in keys} | {"final_loss": report["loss_curve"][-1]}, indent=2))


@train.command("unimp", cls=ConfigCommand, config="tailorgen.unified.train:UniMPTrainConfig")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Model folder to write.")
def train_unimp_cmd(dataset, out, device, checkpoint_every, cfg) -> None:
    """Train the unified model (UniMP) on DATASET: multi-task SFT over the interleaved history.

    Every task's examples are pooled (mixed in proportion to their size); the loss reads only the
    answers (the task's and every history item's id, rating and review), with task weights and a
    focal term. Each user's last interaction and last query are held out (--holdout last), as the
    benchmark tests them. One task (--tasks rating) trains the specialized model. The model for
    the demo shop ships with tailorgen:
    `tailorgen train unimp runs/demo/shop --out src/tailorgen/assets/unimp`.
    """
    from tailorgen.unified.train import train_unimp

    report = train_unimp(cfg, dataset, out, device=device, checkpoint_every=checkpoint_every)
    click.echo(json.dumps({k: report[k] for k in ("train_seconds", "parameters", "examples")}, indent=2))


@train.command(
    "vq", cls=ConfigCommand, config="tailorgen.unified.vq_train:VQTrainConfig", aliases={"train_items": ["--items"]}
)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Tokenizer folder to write.")
@_work_dir_option
@click.option("--dataset", type=click.Path(exists=True, file_okay=False), default=None,
              help="Train on this dataset's item images instead of the tokenizer's own shop.")  # fmt: skip
def train_vq_cmd(out, work_dir, dataset, device, checkpoint_every, cfg) -> None:
    """Train the VQ image tokenizer (diffusers VQModel): 32x32 images <-> 16x16 grids of 1,024 codes.

    Reconstruction (L1) + commitment loss on a shop of its own seed (7001); held-out PSNR and
    code use in the report. The shipped tokenizer: `tailorgen train vq --out src/tailorgen/assets/vq`
    (2,000 steps of batch 64, about 26 min on 2 CPU cores). `tailorgen bench vq` measures it with the judge.
    """
    from tailorgen.unified.vq_train import train_vq

    report = train_vq(cfg, out, work_dir, device=device, checkpoint_every=checkpoint_every, dataset=dataset)
    keys = ("train_seconds", "parameters", "tokens_per_image", "codebook_size", "final_loss", "held_out")
    click.echo(json.dumps({k: report[k] for k in keys}, indent=2))


@train.command("reward", cls=ConfigCommand, config="tailorgen.unified.reward:RewardTrainConfig")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Reward folder to write.")
def train_reward_cmd(dataset, out, device, checkpoint_every, cfg) -> None:
    """Train the preference reward of Generate, Not Recommend on DATASET's interactions.

    A small transformer over the image embeddings of the user's last items scores a candidate
    image: the item the user chose next against catalog items drawn at random. Each user's last
    interaction and a share of the users (--held-out-users) are never trained on; the report ranks
    their choices among 99 random items, beside a popularity baseline. With --vq DIR every
    candidate is read through that VQ tokenizer's reconstruction, as the generator writes images.
    """
    from tailorgen.unified.reward import train_reward

    report = train_reward(cfg, dataset, out, device=device, checkpoint_every=checkpoint_every)
    keys = ("train_seconds", "parameters", "train_examples", "held_out_users", "final_loss", "held_out")
    click.echo(json.dumps({k: report[k] for k in keys}, indent=2))


@train.command("gnr", cls=ConfigCommand, config="tailorgen.unified.gnr:GNRTrainConfig", aliases={"unimp": ["--from"]})
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder for OUT/sft and OUT/rl.")
def train_gnr_cmd(dataset, out, device, checkpoint_every, cfg) -> None:
    """Generate, Not Recommend on DATASET: the unified model learns to draw and name the user's next item.

    First supervised fine-tuning on the real next items, from a UniMP model that draws (--from, from
    `tailorgen train unimp`), into OUT/sft; then online RL (GRPO: groups of images per user,
    advantages within the group, a clipped ratio, a KL penalty against the SFT model) against the
    learned preference reward (--reward, from `tailorgen train reward`), into OUT/rl. RL trains on
    the users the reward trained on and keeps the policy that the reward scores best on the users it
    never saw, stopping after --patience evaluations without a gain. Rerun the same command to resume.
    """
    from tailorgen.unified.gnr import train_gnr

    report = train_gnr(cfg, dataset, out, device=device, checkpoint_every=checkpoint_every)
    keys = ("train_seconds", "seconds_total", "best_step", "stopped_at", "evaluations")
    click.echo(json.dumps({k: report[k] for k in keys}, indent=2))

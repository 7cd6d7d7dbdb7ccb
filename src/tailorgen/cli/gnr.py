"""`tailorgen gnr generate`: the user's next item, drawn and named by a Generate, Not Recommend model."""

from __future__ import annotations

import json

import click

from tailorgen.cli import main
from tailorgen.cli.options import device_option


@main.group()
def gnr() -> None:
    """Generate, Not Recommend: a model that draws the user's next item instead of picking one."""


@gnr.command("generate")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--user", required=True, help="User id (as in interactions.parquet).")
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="A folder from `tailorgen train gnr` (its rl/ model, else its sft/).")  # fmt: skip
@click.option("-n", "--n", "n", type=click.IntRange(1, 64), default=4, show_default=True, help="Items to draw.")
@click.option(
    "--best-of",
    type=click.IntRange(1, 256),
    default=None,
    help="Draw this many (>= N) and keep the N the model's preference reward rates highest for the user.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="runs/gnr", show_default=True,
              help="Folder for the PNGs and gnr.json (titles, codes, seed, model).")  # fmt: skip
@device_option()
def generate_cmd(dataset, user, model_dir, n, best_of, seed, out, device) -> None:
    """Draw N next items for USER (images and names) from their whole history."""
    from pathlib import Path

    from tailorgen.common.manifest import write_json
    from tailorgen.data import Dataset, UnknownIdError
    from tailorgen.data.ids import id_file_stem
    from tailorgen.unified.gnr import GNR
    from tailorgen.unified.records import generated_record

    if best_of is not None and best_of < n:
        raise click.BadParameter(f"must be at least -n ({n}), got {best_of}", param_hint="--best-of")
    model = GNR(Dataset.load(dataset), model_dir, device=device)
    if user not in model.histories:
        raise UnknownIdError("user", user, str(Path(dataset) / "interactions.parquet"), sorted(model.histories)[:5])
    [made] = model.generate([user], n, seed, best_of=best_of)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for j, im in enumerate(made["images"]):
        paths.append(str(out / f"gnr-{id_file_stem(user)}-{seed}-{j}.png"))  # ids may hold any text
        im.save(paths[-1])
    record = generated_record(user, seed, made, paths, model.folder) | {"best_of": best_of or n}
    write_json(out / "gnr.json", record)
    click.echo(json.dumps({k: v for k, v in record.items() if k != "codes"}, indent=2))

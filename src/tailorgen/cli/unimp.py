"""`tailorgen unimp ...`: ask a trained unified model (UniMP) to recommend, search, rate, explain and imagine."""

from __future__ import annotations

import json

import click

from tailorgen.cli import main
from tailorgen.cli.options import device_option


@main.group()
def unimp() -> None:
    """One unified model over a user's interleaved image+text history recommends, searches, rates,
    explains, and draws images for the user (imagine).

    --model is a folder from `tailorgen train unimp` (default: the model shipped for the demo shop,
    which answers only for that shop's catalog).
    """


def _common(fn):
    fn = click.argument("dataset", type=click.Path(exists=True, file_okay=False))(fn)
    fn = click.option("--user", required=True, help="User id (as in interactions.parquet).")(fn)
    fn = click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False), default=None,
                      help="Unified model folder (default: the shipped one).")(fn)  # fmt: skip
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")(fn)
    return device_option()(fn)


def _load(dataset, model_dir, device):
    from tailorgen.data import Dataset
    from tailorgen.unified import UniMP

    return UniMP(Dataset.load(dataset), model_dir, device=device)


def _print_ranked(ranked, titles, record) -> None:
    if record is not None:
        click.echo(json.dumps(record, indent=2))
        return
    for rank, (item, score) in enumerate(ranked, 1):
        click.echo(f"{rank:>2}. {item}  log-prob {score:8.3f}  {titles.get(item, '')}")


def _titles(model) -> dict:
    return dict(zip(*(model.dataset.items.column(c).to_pylist() for c in ("item_id", "title")), strict=True))


@unimp.command("recommend")
@_common
@click.option("-k", "--top", "k", type=click.IntRange(1, 1000), default=10, show_default=True, help="How many items.")
def recommend_cmd(dataset, user, model_dir, as_json, device, k) -> None:
    """The next items for USER (from the whole catalog, their history left out), best first."""
    from tailorgen.unified.records import recommendation_record

    model = _load(dataset, model_dir, device)
    ranked, titles = model.recommend([user], k)[0], _titles(model)
    _print_ranked(ranked, titles, recommendation_record(user, ranked, titles) if as_json else None)


@unimp.command("search")
@_common
@click.option("--query", required=True, help="What the user types, e.g. 'red striped dress'.")
@click.option("-k", "--top", "k", type=click.IntRange(1, 1000), default=10, show_default=True, help="How many items.")
def search_cmd(dataset, user, model_dir, as_json, device, query, k) -> None:
    """Items for USER's QUERY, read in the light of their history."""
    from tailorgen.unified.records import search_record

    model = _load(dataset, model_dir, device)
    ranked, titles = model.search(user, query, k), _titles(model)
    _print_ranked(ranked, titles, search_record(user, query, ranked, titles) if as_json else None)


@unimp.command("rate")
@_common
@click.option("--item", required=True, help="Item id to rate.")
def rate_cmd(dataset, user, model_dir, as_json, device, item) -> None:
    """USER's predicted rating of ITEM: the expected value of the model's distribution over 1..5."""
    from tailorgen.unified.records import rating_record

    model = _load(dataset, model_dir, device)
    expected, dist = model.rate(user, item)
    record = rating_record(user, item, expected, dist)
    click.echo(
        json.dumps(record, indent=2)
        if as_json
        else f"{expected:.2f}  (P(1..5) = {', '.join(f'{p:.2f}' for p in dist)})"
    )


@unimp.command("explain")
@_common
@click.option("--item", required=True, help="Item id to explain.")
def explain_cmd(dataset, user, model_dir, as_json, device, item) -> None:
    """What USER would say about ITEM, written by the model (a review-like explanation)."""
    from tailorgen.unified.records import explanation_record

    model = _load(dataset, model_dir, device)
    text = model.explain(user, item)
    click.echo(json.dumps(explanation_record(user, item, text), indent=2) if as_json else text)


@unimp.command("imagine")
@_common
@click.option("--keywords", default="", show_default=False,
              help="What the item should be, e.g. 'dress red stripes' (the shop's words: category, colour, "
                   "pattern, style, brand). Empty: drawn from the history alone.")  # fmt: skip
@click.option("-n", "--n", "n", type=click.IntRange(1, 64), default=4, show_default=True, help="Images to draw.")
@click.option("--out", type=click.Path(file_okay=False), default="runs/imagine", show_default=True,
              help="Folder for the PNGs and imagine.json (tokens, settings, seed, checkpoints).")  # fmt: skip
@click.option("--guidance", type=click.FloatRange(0), default=3.0, show_default=True,
              help="Classifier-free guidance against no history and no keywords (1: none).")  # fmt: skip
@click.option("--temperature", type=click.FloatRange(0.01), default=1.0, show_default=True,
              help="Sampling temperature (>= 0.01; lower is closer to greedy).")  # fmt: skip
@click.option("--top-k", type=click.IntRange(0), default=256, show_default=True, help="Codes kept per step (0: all).")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def imagine_cmd(dataset, user, model_dir, as_json, device, keywords, n, out, guidance, temperature, top_k, top_p,
                seed) -> None:  # fmt: skip
    """Draw N images of an item for USER that fits KEYWORDS: the model writes each image as VQ codes,
    guided by USER's history, and the VQ decoder turns them into pixels. Writes OUT/imagine-*.png,
    a grid and OUT/imagine.json."""
    from pathlib import Path

    from tailorgen.common.manifest import write_json
    from tailorgen.data.ids import id_file_stem
    from tailorgen.unified.records import imagined_record
    from tailorgen.unified.sample import SamplingSettings

    model = _load(dataset, model_dir, device)
    settings = SamplingSettings(guidance=guidance, temperature=temperature, top_k=top_k, top_p=top_p)
    made = model.imagine(user, keywords, n, settings, seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    safe = id_file_stem(user)  # ids may hold any text (docs/data.md); a file name must not
    paths = []
    for j, im in enumerate(made.images):
        path = out / f"imagine-{safe}-{seed}-{j}.png"
        im.save(path)
        paths.append(str(path))
    _grid(made.images).save(out / f"imagine-{safe}-{seed}-grid.png")
    record = imagined_record(user, keywords, made, paths, model.model_dir)
    write_json(out / "imagine.json", record)
    if as_json:
        click.echo(json.dumps({k: v for k, v in record.items() if k != "tokens"}, indent=2))
    else:
        click.echo(f"{n} images for {user} ({keywords or 'no keywords'}): {out}/imagine-{safe}-{seed}-*.png")


def _grid(images, scale: int = 4):
    from PIL import Image

    w, h = images[0].size
    grid = Image.new("RGB", (w * len(images), h), "white")
    for j, im in enumerate(images):
        grid.paste(im, (j * w, 0))
    return grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)

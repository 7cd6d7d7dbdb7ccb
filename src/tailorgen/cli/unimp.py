"""`tailorgen unimp ...`: ask a trained unified model (UniMP) to recommend, search, rate and explain."""

from __future__ import annotations

import json

import click

from tailorgen.cli import main
from tailorgen.cli.options import device_option


@main.group()
def unimp() -> None:
    """One unified model over a user's interleaved image+text history answers four tasks.

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


def _print_ranked(ranked, titles, as_json) -> None:
    if as_json:
        click.echo(
            json.dumps([{"item_id": i, "log_prob": round(s, 4), "title": titles.get(i)} for i, s in ranked], indent=2)
        )
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
    model = _load(dataset, model_dir, device)
    _print_ranked(model.recommend([user], k)[0], _titles(model), as_json)


@unimp.command("search")
@_common
@click.option("--query", required=True, help="What the user types, e.g. 'red striped dress'.")
@click.option("-k", "--top", "k", type=click.IntRange(1, 1000), default=10, show_default=True, help="How many items.")
def search_cmd(dataset, user, model_dir, as_json, device, query, k) -> None:
    """Items for USER's QUERY, read in the light of their history."""
    model = _load(dataset, model_dir, device)
    _print_ranked(model.search(user, query, k), _titles(model), as_json)


@unimp.command("rate")
@_common
@click.option("--item", required=True, help="Item id to rate.")
def rate_cmd(dataset, user, model_dir, as_json, device, item) -> None:
    """USER's predicted rating of ITEM: the expected value of the model's distribution over 1..5."""
    model = _load(dataset, model_dir, device)
    expected, dist = model.rate(user, item)
    record = {
        "user": user,
        "item": item,
        "rating": round(expected, 3),
        "distribution": [round(float(p), 4) for p in dist],
    }
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
    model = _load(dataset, model_dir, device)
    text = model.explain(user, item)
    click.echo(json.dumps({"user": user, "item": item, "explanation": text}, indent=2) if as_json else text)

"""`tailorgen forget`: remove a user from a dataset and from what was made from it."""

from __future__ import annotations

import json

import click

from tailorgen.cli import main


@main.command()
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--user", required=True, help="The user id to forget.")
@click.option("--outputs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A `tailorgen serve` outputs folder: request folders naming the user go (repeatable).")  # fmt: skip
@click.option("--study", "studies", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A study folder: the user's pairs, images and votes go (repeatable).")  # fmt: skip
@click.option("--models", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Folders searched for trained models whose reports show the user's data (repeatable).")  # fmt: skip
def forget(dataset, user, outputs, studies, models) -> None:
    """Forget USER: their interactions (ratings, reviews), queries and a shop's hidden taste leave
    DATASET (rebuilt beside it and swapped in whole; its splits are dropped, to be made again);
    outputs and study votes naming them are deleted; prints what was removed and the trained
    models that saw the user, to be retrained (a deletion cannot make a model unlearn).

    \b
    Example:
      tailorgen forget runs/demo/shop --user u007 --outputs runs/serve --models runs/models
    """
    from tailorgen.service.forget import forget_user

    click.echo(json.dumps(forget_user(dataset, user, outputs, studies, models), indent=2))

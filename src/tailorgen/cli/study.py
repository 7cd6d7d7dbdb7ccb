"""`tailorgen study`: prepare a human preference study (run it with `tailorgen serve --study`)."""

from __future__ import annotations

import json

import click

from tailorgen.cli import main
from tailorgen.cli.options import model_folder_options


@main.group()
def study() -> None:
    """Human preference studies: participants pick the better of two outputs for a shopper.

    \b
    1. Write a study file (TOML), e.g.
         id = "iamg-vs-plain"
         question = "Which would this shopper rather buy?"
         users = 12                      # drawn from the dataset (or a list of user ids)
         participants = ["p01", "p02"]
         pairs = [["personalized", "plain"], ["recommended", "personalized"]]
         [[arms]]
         name = "personalized"
         kind = "iamg"                   # iamg (with method = full|rewrite|retrieval|plain), recommend, generate
         [[arms]]
         name = "plain"
         kind = "iamg"
         method = "plain"
         [[arms]]
         name = "recommended"
         kind = "recommend"
    2. tailorgen study prepare STUDY.toml DATASET --out runs/study
    3. tailorgen serve DATASET --study runs/study, and send each participant their link from
       runs/study/participants.csv; results at /study/ID/results.
    """


@study.command("prepare")
@click.argument("definition", type=click.Path(exists=True, dir_okay=False))
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True, help="The study folder to write.")
@click.option("--overwrite", is_flag=True, help="Replace OUT (its votes too).")
@model_folder_options(
    generator="I-AM-G generator (default: the shipped one).",
    unimp="Unified model for 'recommend' arms (default: the shipped one).",
    gnr="GNR model for 'generate' arms.",
)
def prepare_cmd(definition, dataset, out, overwrite, generator, unimp, gnr) -> None:
    """Make every image the study DEFINITION shows for DATASET's users, the database and the
    participants' links (OUT/participants.csv holds their tokens: send each their own)."""
    from tailorgen.service.study import StudyDefinition
    from tailorgen.service.study_prepare import prepare_study

    summary = prepare_study(StudyDefinition.read(definition), dataset, out, generator, unimp, gnr, overwrite)
    click.echo(json.dumps(summary, indent=2))

"""`tailorgen serve`: the HTTP API and the web page over one dataset."""

from __future__ import annotations

from pathlib import Path

import click

from tailorgen.cli import main
from tailorgen.cli.options import device_option, model_folder_options


@main.command()
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (127.0.0.1: this machine only; 0.0.0.0 opens it to the network).")  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--outputs", type=click.Path(file_okay=False), default="runs/serve", show_default=True,
              help="Where generated images and their records go, one folder per request.")  # fmt: skip
@click.option("--keep-outputs", type=click.IntRange(1), default=5000, show_default=True,
              help="Request folders kept in --outputs; the oldest are removed past that.")  # fmt: skip
@model_folder_options(
    generator="I-AM-G generator folder (default: the shipped one).",
    unimp="Unified model folder (default: the shipped one, which answers for the demo shop).",
    gnr="A Generate, Not Recommend model (tailorgen train gnr); else that endpoint says none.",
)
@click.option("--engines", default="iamg,unimp,gnr", show_default=True, help="Which models to load.")
@click.option("--image-queue", type=click.IntRange(0), default=8, show_default=True,
              help="Generation requests that may wait behind the running one; more get 503, Retry-After.")  # fmt: skip
@click.option("--answer-queue", type=click.IntRange(0), default=64, show_default=True,
              help="Recommend/search/rate/explain requests that may wait; more get 503 and Retry-After.")  # fmt: skip
@click.option("--study", "studies", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A study folder (tailorgen study prepare) to run at /study/ID (repeatable).")  # fmt: skip
@click.option("--token", envvar="TAILORGEN_API_TOKEN", default=None, show_envvar=True,
              help="API token (16+ characters) for the endpoints that change data (DELETE /api/users/ID); "
                   "without one they are refused.")  # fmt: skip
@device_option()
def serve(dataset, host, port, engines, studies, **settings) -> None:
    """Serve DATASET over HTTP: the API (OpenAPI at /docs), health (/health) and readiness (/ready),
    and a web page at / to pick a user and see their history, interests, recommendations, a search,
    personalized images of an item, images drawn from keywords and generated next items.

    With --study, participants vote at /study/ID?participant=P&token=T (links in the study's
    participants.csv) and the results are at /study/ID/results.

    The models load once, in the background (/ready says when). One generation runs at a time (it
    uses both cores); a bounded queue waits behind it.

    \b
    Example:
      tailorgen serve runs/demo/shop            # then open http://127.0.0.1:8000/
    """
    import uvicorn

    from tailorgen.service import ServiceSettings, create_app

    folders = {k: Path(v) if v else None for k, v in settings.items() if k in ("outputs", "generator", "unimp", "gnr")}
    settings = ServiceSettings(
        dataset=Path(dataset),
        engines=tuple(e.strip() for e in engines.split(",") if e.strip()),
        studies=tuple(Path(s) for s in studies),
        **(settings | folders),
    )
    click.echo(f"serving {dataset} on http://{host}:{port}/ (API docs: /docs)")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")

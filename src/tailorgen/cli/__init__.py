"""The `tailorgen` command. Thin: every subcommand parses arguments and calls the library."""

from __future__ import annotations

import click

from tailorgen import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tailorgen")
def main() -> None:
    """Personalized multimodal generation for recommender systems and e-commerce.

    \b
    Start with the simulated shop:
      tailorgen world build --items 2000 --users 300 --seed 0 --out runs/shop
      tailorgen data stats runs/shop
    or import a public dataset:
      tailorgen data import movielens-100k path/to/ml-100k --out runs/ml100k
    """


def _register() -> None:
    # Subcommand modules attach themselves to `main` on import.
    from tailorgen.cli import bench, data, demo, encode, generate, search, train, world  # noqa: F401


_register()

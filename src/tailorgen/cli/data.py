"""`tailorgen data ...`: import public datasets, fetch images, filter and split, print stats."""

from __future__ import annotations

from tailorgen.cli import main


@main.group()
def data() -> None:
    """Import datasets into tailorgen's schema, fetch their images, split them, describe them."""


def _register() -> None:
    from tailorgen.cli import data_import, data_tools  # noqa: F401


_register()

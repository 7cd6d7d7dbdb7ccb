"""Option types the commands share, checked while the arguments are parsed (before any model loads)."""

from __future__ import annotations

import click

from tailorgen.common.devices import DEVICES, check_device


class DeviceType(click.ParamType):
    """A torch device this machine has (``common.devices``): cpu, cuda, cuda:N or auto; else a usage error."""

    name = "device"

    def convert(self, value, param, ctx) -> str:
        try:
            return check_device(value, resolve_auto=False)
        except ValueError as e:
            self.fail(str(e).removeprefix("device: "), param, ctx)


DEVICE = DeviceType()


def device_option(**kwargs):
    """``--device`` with the checks of ``DeviceType``; ``default`` and ``help`` may be overridden."""
    kwargs = {"type": DEVICE, "default": "cpu", "show_default": True, "help": f"{DEVICES}."} | kwargs
    return click.option("--device", **kwargs)


def model_folder_options(generator: str, unimp: str, gnr: str):
    """``--generator``, ``--unimp`` and ``--gnr``: existing model folders (None: the shipped one; no GNR
    ships), each with the help that says what the command uses it for."""
    helps = {"--generator": generator, "--unimp": unimp, "--gnr": gnr}

    def decorate(fn):
        for name in reversed(helps):
            fn = click.option(name, type=click.Path(exists=True, file_okay=False), default=None, help=helps[name])(fn)
        return fn

    return decorate

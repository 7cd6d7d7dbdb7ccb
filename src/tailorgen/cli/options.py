"""Option types the commands share, checked while the arguments are parsed (before any model loads)."""

from __future__ import annotations

import click

DEVICES = "cpu, cuda, cuda:N (N a GPU index) or auto (cuda if there is one, else cpu)"


class DeviceType(click.ParamType):
    """A torch device this machine has: cpu, cuda, cuda:N or auto; an absent GPU is a usage error."""

    name = "device"

    def convert(self, value, param, ctx) -> str:
        name = str(value).strip().lower()
        if name in ("cpu", "auto"):
            return name
        kind, _, index = name.partition(":")
        if kind != "cuda" or (index and not index.isdigit()):
            self.fail(f"{value!r} is not a device; allowed: {DEVICES}", param, ctx)
        import torch  # only when a GPU is asked for: importing torch takes a second

        if not torch.cuda.is_available():
            self.fail(f"{value!r} asked for, but this machine has no CUDA GPU; use cpu or auto", param, ctx)
        if index and int(index) >= torch.cuda.device_count():
            self.fail(f"{value!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)", param, ctx)
        return name


DEVICE = DeviceType()


def device_option(**kwargs):
    """``--device`` with the checks of ``DeviceType``; ``default`` and ``help`` may be overridden."""
    kwargs = {"type": DEVICE, "default": "cpu", "show_default": True, "help": f"{DEVICES}."} | kwargs
    return click.option("--device", **kwargs)

"""Command-line options made from a config dataclass: ``--KEY`` per field, ``--config FILE`` and ``--set KEY=VALUE``.

A field is written once, in its dataclass (``tailorgen.training.setting`` gives it help text);
``ConfigCommand`` turns the fields into options, builds the config with the library's
``config_from`` (defaults, then the file, then the options, then ``--set``) and hands the
command a ready ``cfg``. The dataclass lives beside its trainer, which imports torch, so it is
imported only when the command runs or shows its help: ``tailorgen --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from typing import Any, Literal

import click


class ConfigCommand(click.Command):
    """A command whose options come from the dataclass ``config`` ("module:Name", or the class itself).

    The callback gets ``cfg`` (the built config) instead of one argument per field, and, with
    ``run_options``, ``device`` and ``checkpoint_every``. ``aliases`` maps a field to extra option
    names (e.g. ``{"train_items": ["--items"]}``).
    """

    def __init__(
        self,
        *args: Any,
        config: str | type,
        aliases: dict[str, list[str]] | None = None,
        run_options: bool = True,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.config, self.aliases, self.run_options = config, aliases or {}, run_options
        self._fields: list[str] | None = None

    def config_class(self) -> type:
        if isinstance(self.config, str):
            module, _, name = self.config.partition(":")
            self.config = getattr(importlib.import_module(module), name)
        return self.config

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if self._fields is None:
            cls = self.config_class()
            self.params += run_options() if self.run_options else []
            self.params += config_options(cls, self.aliases)
            self._fields = [f.name for f in dataclasses.fields(cls) if f.init]
        return super().get_params(ctx)

    def invoke(self, ctx: click.Context) -> Any:
        from tailorgen.training import ConfigError, config_from

        given = {name: ctx.params.pop(name, None) for name in self._fields or ()}
        file, overrides = ctx.params.pop("config_file", None), ctx.params.pop("overrides", ())
        try:
            ctx.params["cfg"] = config_from(
                self.config_class(), file, overrides, **{k: v for k, v in given.items() if v is not None}
            )
        except ConfigError as e:
            raise click.UsageError(str(e), ctx) from e
        return super().invoke(ctx)


def run_options() -> list[click.Option]:
    """``--device`` and ``--checkpoint-every``: how a run goes, not what it trains (not in the config's hash)."""
    from tailorgen.common.devices import DEVICES
    from tailorgen.training import CHECKPOINT_EVERY

    return [
        click.Option(["--device"], default="cpu", show_default=True, help=f"Where to train: {DEVICES}."),
        click.Option(
            ["--checkpoint-every"],
            type=click.IntRange(min=0),
            default=CHECKPOINT_EVERY,
            show_default=True,
            help="Save a checkpoint to OUT/checkpoints every N steps (0: never). A run killed on the way, "
            "started again with the same config and --out, goes on from the last one.",
        ),
    ]


def config_options(cls: type, aliases: dict[str, list[str]] | None = None) -> list[click.Option]:
    """``--config``, ``--set`` and one option per field of the dataclass ``cls`` (default None: not given)."""
    from tailorgen.training.config import field_types

    aliases = aliases or {}
    types = field_types(cls)
    options = [
        click.Option(
            ["--config", "config_file"],
            type=click.Path(exists=True, dir_okay=False),
            help="A .json, .toml or .yaml file of KEY = VALUE (or a training_report.json written by this "
            "version, whose config is used); the options below and --set override it.",
        ),
        click.Option(
            ["--set", "overrides"],
            multiple=True,
            metavar="KEY=VALUE",
            help="Set any config key, e.g. --set seed=1 (repeatable; applied last).",
        ),
    ]
    for f in dataclasses.fields(cls):
        if f.init:
            options.append(_field_option(f, types[f.name], aliases.get(f.name, [])))
    return options


def _field_option(f: dataclasses.Field, hint: Any, aliases: list[str]) -> click.Option:
    from tailorgen.training.config import describe

    flag = "--" + f.name.replace("_", "-")
    help_text = f.metadata.get("help") or describe(hint).capitalize() + "."
    default = f.default if f.default is not dataclasses.MISSING else None
    if isinstance(default, bool):
        help_text += f"  [default: {str(default).lower()}]"
    elif isinstance(default, tuple | list):
        help_text += f"  [default: {','.join(map(str, default))}]"
    elif default is not None:
        help_text += f"  [default: {default}]"
    if hint is bool:
        return click.Option([f"{flag}/--no-{flag[2:]}", *aliases, f.name], default=None, help=help_text)
    if typing.get_origin(hint) is Literal:
        choices = [str(a) for a in typing.get_args(hint)]
        return click.Option([flag, *aliases, f.name], type=click.Choice(choices), default=None, help=help_text)
    click_type = {int: click.INT, float: click.FLOAT}.get(hint, click.STRING)
    metavar = "A,B,..." if typing.get_origin(hint) in (tuple, list) else None
    return click.Option([flag, *aliases, f.name], type=click_type, default=None, metavar=metavar, help=help_text)

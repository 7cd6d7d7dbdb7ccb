"""Training configs as dataclasses: defaults, then a file, then ``key=value`` overrides, each value checked.

A config dataclass is the one place an option is written: its fields give the CLI its options
(``tailorgen.cli.config_options``) and help (``setting``'s text), ``config_from`` builds it from
a JSON/TOML/YAML file and overrides, and ``config_hash`` ties a checkpoint to it.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from tailorgen.common import hash_bytes
from tailorgen.training.errors import ConfigError

T = TypeVar("T")

_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
_NONE = {"none", "null"}


def setting(default: Any, help: str) -> Any:
    """A dataclass field with a default and the help text the CLI shows for it."""
    return dataclasses.field(default=default, metadata={"help": help})


def require(ok: bool, name: str, value: Any, allowed: str) -> None:
    """A config's own check (in ``__post_init__``): ConfigError naming the field, its value and what it allows."""
    if not ok:
        raise ConfigError(f"{name}: {value!r} is not allowed; allowed: {allowed}")


def field_types(cls: type) -> dict[str, Any]:
    """Each field's type, resolved (configs use ``from __future__ import annotations``, so they are strings)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def config_from(cls: type[T], file: str | Path | None = None, overrides: typing.Iterable[str] = (), **given: Any) -> T:
    """``cls`` from its defaults, then ``file``, then ``given`` (e.g. the CLI's options), then ``overrides``.

    ``overrides`` are ``"key=value"`` strings (the CLI's ``--set``). A JSON file may also be a
    training report: its ``config`` is used, so a shipped model's recipe can be rerun as recorded.
    Raises ``ConfigError`` naming the source, the key and what it allows.
    """
    types_ = field_types(cls)
    values: dict[str, Any] = {}
    if file is not None:
        for key, value in read_config_file(file, cls).items():
            values[key] = convert(value, types_[_known(key, types_, cls, str(file))], f"{file}: {key}")
    for key, value in given.items():
        values[key] = convert(value, types_[_known(key, types_, cls, "options")], key)
    for item in overrides:
        key, sep, text = item.partition("=")
        source = f"--set {item}"
        if not sep or not key.strip():
            raise ConfigError(f"{source}: write each override as key=value, e.g. --set seed=1")
        key = key.strip().replace("-", "_")
        values[key] = convert(text.strip(), types_[_known(key, types_, cls, source)], f"{source}: {key}")
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:  # the dataclass's own checks (__post_init__)
        raise ConfigError(f"{cls.__name__}: {e}") from e


def config_hash(config: Any) -> str:
    """A hash of a config dataclass's values: a checkpoint resumes only a run of the same config."""
    return hash_bytes(json.dumps(dataclasses.asdict(config), sort_keys=True, default=str).encode())


def config_as_json(config: Any) -> dict:
    """A config dataclass as its training report stores it (tuples as lists): compare a report's config with it."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def read_config_file(path: str | Path, cls: type | None = None) -> dict[str, Any]:
    """The key -> value table of a .json, .toml or .yaml/.yml file (a training report's ``config``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    text = path.read_text(encoding="utf-8")
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml  # PyYAML comes with huggingface_hub, which tailorgen needs anyway

            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{path}: unknown config format {suffix!r}; allowed: .json, .toml, .yaml, .yml")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: not valid {suffix[1:].upper()} ({e})") from e
    except Exception as e:  # yaml.YAMLError; imported lazily, so named here by its base class
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file holds a table of key = value, not a {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)} if cls else set()
    if isinstance(data.get("config"), dict) and "config" not in names:  # a training report
        data = data["config"]
    return data


def _known(key: str, types_: dict[str, Any], cls: type, source: str) -> str:
    if key in types_:
        return key
    near = difflib.get_close_matches(key, types_, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise ConfigError(f"{source}: {cls.__name__} has no key {key!r}{hint}; allowed: {', '.join(sorted(types_))}")


def describe(hint: Any) -> str:
    """A type in words, for error messages and the CLI's help."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join("none" if a is type(None) else describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (tuple, list):
        plural = {int: "integers", float: "numbers", str: "texts"}.get(args[0] if args else None, "values")
        return f"comma-separated {plural}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "text"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def convert(value: Any, hint: Any, where: str) -> Any:
    """``value`` (a string from the command line, or a file's value) as the type ``hint`` says, else ConfigError."""
    try:
        return _convert(value, hint)
    except (ValueError, TypeError):
        raise ConfigError(f"{where} must be {describe(hint)}, got {value!r}") from None


def _convert(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str) and value.strip().lower() in _NONE)):
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option)
            except (ValueError, TypeError):
                continue
        raise ValueError(value)
    if origin is Literal:
        for option in args:
            if value == option or (isinstance(value, str) and value == str(option)):
                return option
        raise ValueError(value)
    if origin in (tuple, list):
        if isinstance(value, str):
            text = value.strip().strip("()[]")
            value = [v.strip() for v in text.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise TypeError(value)
        fixed = origin is tuple and args and args[-1] is not Ellipsis
        if fixed and len(value) != len(args):
            raise ValueError(value)
        items = [_convert(v, args[k] if fixed else (args[0] if args else Any)) for k, v in enumerate(value)]
        return origin(items)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(value)
    if hint is int:
        if isinstance(value, bool | float):
            raise TypeError(value)
        return int(value)  # "20_000" reads too
    if hint is float:
        if isinstance(value, bool):
            raise TypeError(value)
        number = float(value)
        if not math.isfinite(number):  # NaN or infinity is no learning rate, decay or weight
            raise ValueError(value)
        return number
    if hint is str:
        if not isinstance(value, str):
            raise TypeError(value)
        return value
    if hint is Path:
        return Path(value)
    raise TypeError(f"fields of type {hint} cannot be set from text")

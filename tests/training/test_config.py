"""config_from (defaults, a file, options, --set) and the CLI options made from a config dataclass."""

import json
from dataclasses import dataclass
from typing import Literal

import click
import pytest
from click.testing import CliRunner

from tailorgen.cli import main
from tailorgen.cli.config_options import ConfigCommand
from tailorgen.training import ConfigError, config_from, config_hash, require, setting


@dataclass
class Recipe:
    epochs: int = setting(12, "Passes over the data.")
    lr: float = setting(2e-3, "Peak learning rate.")
    channels: tuple[int, ...] = setting((32, 64), "CNN channels.")
    ema: bool = setting(True, "Keep an EMA copy.")
    init_from: str | None = None
    target: Literal["history", "next_item"] = "history"

    def __post_init__(self):
        require(self.epochs >= 1, "epochs", self.epochs, "an integer >= 1")


def test_defaults_then_file_then_options_then_set(tmp_path):
    assert config_from(Recipe) == Recipe()
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"epochs": 3, "lr": 1, "channels": [8, 16], "init_from": "runs/gen"}))
    cfg = config_from(Recipe, path)
    assert cfg == Recipe(epochs=3, lr=1.0, channels=(8, 16), init_from="runs/gen")
    cfg = config_from(Recipe, path, ["epochs=5", "init_from=none", "ema=false"], epochs=4, target="next_item")
    assert cfg == Recipe(epochs=5, lr=1.0, channels=(8, 16), ema=False, init_from=None, target="next_item")
    assert config_from(Recipe, overrides=["channels=4,8,16", "epochs=20_000", "lr=3e-4"]) == Recipe(
        epochs=20_000, lr=3e-4, channels=(4, 8, 16)
    )


def test_toml_yaml_and_a_training_report_are_config_files(tmp_path):
    (tmp_path / "r.toml").write_text("epochs = 2\nchannels = [4, 8]\nema = false\n")
    (tmp_path / "r.yaml").write_text("epochs: 2\nchannels: [4, 8]\nema: no\n")
    report = {"what": "a model", "config": {"epochs": 2, "channels": [4, 8], "ema": False}, "seed": 0}
    (tmp_path / "training_report.json").write_text(json.dumps(report))
    for name in ("r.toml", "r.yaml", "training_report.json"):
        assert config_from(Recipe, tmp_path / name) == Recipe(epochs=2, channels=(4, 8), ema=False), name


@pytest.mark.parametrize(
    ("file_text", "overrides", "message"),
    [
        (None, ["epoch=3"], "--set epoch=3: Recipe has no key 'epoch' (did you mean 'epochs'?); allowed: channels,"),
        (None, ["epochs=three"], "--set epochs=three: epochs must be an integer, got 'three'"),
        (None, ["epochs=2.5"], "epochs must be an integer, got '2.5'"),
        (None, ["ema=maybe"], "ema must be true or false, got 'maybe'"),
        (None, ["target=tomorrow"], "target must be one of history, next_item, got 'tomorrow'"),
        (None, ["channels=8,x"], "channels must be comma-separated integers, got '8,x'"),
        (None, ["epochs"], "--set epochs: write each override as key=value"),
        (None, ["epochs=0"], "epochs: 0 is not allowed; allowed: an integer >= 1"),
        ('{"epochs": "many"}', [], "r.json: epochs must be an integer, got 'many'"),
        ('{"epochs": 3.0}', [], "r.json: epochs must be an integer, got 3.0"),
        ('{"lr": true}', [], "r.json: lr must be a number, got True"),
        (None, ["lr=nan"], "lr must be a number, got 'nan'"),
        (None, ["lr=inf"], "lr must be a number, got 'inf'"),
        ('{"nope": 1}', [], "r.json: Recipe has no key 'nope'; allowed: channels, ema, epochs, init_from, lr, target"),
        ("{epochs: 3", [], "r.json: not valid JSON"),
        ("[1, 2]", [], "r.json: a config file holds a table of key = value, not a list"),
    ],
)
def test_bad_keys_and_values_raise_config_errors_that_name_them(tmp_path, file_text, overrides, message):
    path = None
    if file_text is not None:
        path = tmp_path / "r.json"
        path.write_text(file_text)
    with pytest.raises(ConfigError) as e:
        config_from(Recipe, path, overrides)
    assert message in str(e.value)
    assert isinstance(e.value, ValueError)


def test_config_files_must_exist_and_have_a_known_format(tmp_path):
    (tmp_path / "r.ini").write_text("epochs=3")
    with pytest.raises(ConfigError, match=r"r.ini: unknown config format '.ini'; allowed: .json, .toml, .yaml"):
        config_from(Recipe, tmp_path / "r.ini")
    with pytest.raises(ConfigError, match="no such config file"):
        config_from(Recipe, tmp_path / "missing.toml")


def test_the_config_hash_changes_with_any_value():
    assert config_hash(Recipe()) == config_hash(Recipe())
    assert config_hash(Recipe()) != config_hash(Recipe(lr=1e-3))


@click.command(cls=ConfigCommand, config=Recipe, run_options=False)
@click.option("--out", required=True)
def recipe_command(out, cfg):
    click.echo(json.dumps({"out": out, **cfg.__dict__}))


def test_a_config_command_has_one_option_per_field_with_its_help_and_default():
    res = CliRunner().invoke(recipe_command, ["--help"], terminal_width=200)
    assert res.exit_code == 0
    for text in (
        "--epochs INTEGER",
        "Passes over the data.  [default: 12]",
        "--channels A,B,...",
        "[default: 32,64]",
        "--ema / --no-ema",
        "[default: true]",
        "--target [history|next_item]",
        "--config FILE",
        "--set KEY=VALUE",
    ):
        assert text in res.output, text


def test_a_config_command_builds_the_config_from_file_options_and_set(tmp_path):
    (tmp_path / "r.toml").write_text("epochs = 2\nlr = 0.5\n")
    args = ["--out", "x", "--config", str(tmp_path / "r.toml"), "--epochs", "3", "--no-ema", "--set", "lr=0.25"]
    res = CliRunner().invoke(recipe_command, [*args, "--channels", "1,2"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {
        "out": "x",
        "epochs": 3,
        "lr": 0.25,
        "channels": [1, 2],
        "ema": False,
        "init_from": None,
        "target": "history",
    }
    res = CliRunner().invoke(recipe_command, ["--out", "x", "--set", "channels=big"])
    assert res.exit_code == 2 and "--set channels=big: channels must be comma-separated integers" in res.output


def test_the_train_commands_show_config_and_run_options():
    for command, field in (("encoder", "--warmup-steps"), ("judge", "--width")):
        res = CliRunner().invoke(main, ["train", command, "--help"], terminal_width=200)
        assert res.exit_code == 0
        for option in ("--config FILE", "--set KEY=VALUE", "--device", "--checkpoint-every", "--items", field):
            assert option in res.output, (command, option)

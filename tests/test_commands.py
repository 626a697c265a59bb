"""The CLI's shape: one module per command, options built from the config dataclasses."""

import argparse
import ast
from pathlib import Path

import pytest

from simulpo.cli import build_parser
from simulpo.commands import COMMANDS
from simulpo.config import (
    add_config_arguments,
    config_fields,
    config_overrides,
    load_config,
    option,
)

SRC = Path(__file__).parents[1] / "src" / "simulpo"


def _subparser(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize(
    "path, config",
    [
        (("train", "sft"), "simulpo.train.sft:SFTConfig"),
        (("train", "rl"), "simulpo.train.rl:RLConfig"),
        (("demo",), "simulpo.recipes.text:TextRecipe"),
        (("demo",), "simulpo.recipes.speech:SpeechRecipe"),
        (("experiment",), "simulpo.recipes.text:TextRecipe"),
    ],
)
def test_help_shows_every_config_field_with_its_default(path, config):
    import importlib

    module, name = config.split(":")
    cls = getattr(importlib.import_module(module), name)
    text = _subparser(build_parser(), *path).format_help()
    flat = " ".join(text.split())  # the help wraps lines
    for key, _, _, _ in config_fields(cls):
        assert f"--{key.replace('_', '-')} " in flat, key
    assert "(default: " in flat


def test_text_and_speech_recipe_fields_all_have_help():
    from simulpo.recipes.speech import SpeechRecipe
    from simulpo.recipes.text import TextRecipe

    for cls in (TextRecipe, SpeechRecipe):
        missing = [k for k, _, help, _ in config_fields(cls) if not help]
        # grpo.* get theirs from the hardening work on train/grpo.py
        assert [k for k in missing if ".grpo." not in k] == [], missing


def test_config_options_override_after_set_and_are_checked():
    from dataclasses import dataclass

    @dataclass
    class Inner:
        lr: float = option(1.0, "learning rate")
        ks: list[int] = option([1, 3], "some ks")

    @dataclass
    class Outer:
        max_len: int = option(4, "longest")
        inner: Inner = option(Inner, "a section")

    assert Outer().inner.ks is not Outer().inner.ks  # a fresh list each time
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", action="append", default=[])
    add_config_arguments(parser, Outer, title="config")
    help_text = " ".join(parser.format_help().split())
    assert "--inner.lr FLOAT learning rate (default: 1.0)" in help_text
    assert "--inner.ks LIST some ks (default: [1, 3])" in help_text
    args = parser.parse_args(["--set", "max_len=9", "--max-len", "5", "--inner.ks", "[2]"])
    overrides = config_overrides(args)
    assert overrides == ["max_len=9", "max_len=5", "inner.ks=[2]"]
    cfg = load_config(Outer, None, overrides)
    assert (cfg.max_len, cfg.inner.ks, cfg.inner.lr) == (5, [2], 1.0)
    bad = config_overrides(parser.parse_args(["--inner.lr", "fast"]))
    with pytest.raises(Exception, match="inner.lr"):
        load_config(Outer, None, bad)


def test_demo_config_options_reach_the_recipe(tmp_path, monkeypatch):
    """``simulpo demo --sft.epochs 3 --rl.reward.lam 1`` is ``--set`` with the same keys."""
    import simulpo.recipes.demo
    from simulpo.cli import main

    seen = {}

    def fake_demo(out, quick, progress, config, overrides):
        seen["overrides"] = overrides
        return []

    monkeypatch.setattr(simulpo.recipes.demo, "run_demo", fake_demo)
    assert main(["demo", "--output", str(tmp_path), "--set", "data.train=5",
                 "--sft.epochs", "3", "--rl.reward.lam", "1"]) == 0  # fmt: skip
    assert seen["overrides"] == ["data.train=5", "sft.epochs=3", "rl.reward.lam=1"]


def test_every_command_is_a_module_and_cli_only_dispatches():
    for name in COMMANDS:
        tree = ast.parse((SRC / "commands" / f"{name}.py").read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert {"add_parser", "run"} <= defined, name
    cli = ast.parse((SRC / "cli.py").read_text())
    functions = [n.name for n in cli.body if isinstance(n, ast.FunctionDef)]
    assert functions == ["_module", "build_parser", "_command", "main"]
    assert len((SRC / "cli.py").read_text().splitlines()) < 90


def test_help_of_a_light_command_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys; from simulpo.cli import main\n"
        "try: main(['score', '--help'])\n"
        "except SystemExit: pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"

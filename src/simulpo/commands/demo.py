"""``simulpo demo``: the main job on the embedded default (text, or ``--speech``)."""

from __future__ import annotations

import argparse

from simulpo.commands import add_run_args, print_rows

NAME = "demo"
HELP = "the main job: data, baselines, report and plot on the embedded default"


def add_parser(subparsers) -> argparse.ArgumentParser:
    from simulpo.config import add_config_arguments
    from simulpo.recipes.speech import SpeechRecipe
    from simulpo.recipes.text import TextRecipe

    p = subparsers.add_parser(NAME, help=HELP)
    p.add_argument(
        "--output", help="output directory (default runs/demo, or runs/demo-speech with --speech)"
    )
    p.add_argument(
        "--speech",
        action="store_true",
        help="the speech demo (configs/demo-speech.yaml); starts from runs/demo's SFT policy",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny data, model and test sets: a smoke run of every step",
    )
    p.add_argument(
        "--config",
        help="recipe YAML (default: the embedded one, = configs/demo-text.yaml or demo-speech.yaml)",
    )
    add_run_args(p, "override a recipe field, e.g. --set sft.epochs=2")
    add_config_arguments(
        p,
        TextRecipe,
        SpeechRecipe,
        title="recipe (YAML keys of --config; defaults of the text recipe, then of the speech "
        "recipe's own keys)",
    )
    return p


def run(args: argparse.Namespace) -> None:
    from simulpo.config import config_overrides
    from simulpo.recipes.demo import run_demo, run_speech_demo

    rows = (run_speech_demo if args.speech else run_demo)(
        args.output or ("runs/demo-speech" if args.speech else "runs/demo"),
        quick=args.quick,
        progress=not args.no_progress,
        config=args.config,
        overrides=config_overrides(args),
    )
    print_rows(rows)

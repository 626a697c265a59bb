"""``simulpo experiment NAME``: an RL experiment of the papers over a finished text run."""

from __future__ import annotations

import argparse

from simulpo.commands import add_run_args, print_rows

NAME = "experiment"
HELP = "an RL experiment of the papers over a finished text run (docs/experiments.md)"


def add_parser(subparsers) -> argparse.ArgumentParser:
    from simulpo.config import add_config_arguments
    from simulpo.recipes.experiments import EXPERIMENTS
    from simulpo.recipes.text import TextRecipe

    p = subparsers.add_parser(NAME, help=HELP)
    p.add_argument("name", choices=list(EXPERIMENTS), help="which experiment")
    p.add_argument("--run", default="runs/demo", help="a finished `simulpo demo` output dir")
    p.add_argument("--config", help="the run's text recipe YAML (default: the embedded one)")
    add_run_args(p, "override a recipe field for every variant, e.g. --set rl.steps=30")
    add_config_arguments(p, TextRecipe, title="text recipe (YAML keys of --config)")
    return p


def run(args: argparse.Namespace) -> None:
    from simulpo.config import config_overrides
    from simulpo.recipes.experiments import run_experiment

    rows = run_experiment(
        args.name,
        args.run,
        config=args.config,
        overrides=config_overrides(args),
        progress=not args.no_progress,
    )
    print_rows(rows)

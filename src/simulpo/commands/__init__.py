"""The ``simulpo`` subcommands, one module each.

Every module names its command (``NAME``, ``HELP``) and exposes ``add_parser(subparsers)``
(its options) and ``run(args)`` (a few lines calling the library). Modules import only
``argparse`` at the top, so ``simulpo --help`` and light commands start fast; each
``run`` imports what it needs.
"""

from __future__ import annotations

#: the commands, in the order ``simulpo --help`` lists them
COMMANDS = (
    "score", "eval", "plot", "data", "train", "demo", "experiment", "serve", "stream", "models",
)  # fmt: skip


def print_rows(rows: list[dict]) -> None:
    """Print report rows as the table every command shows."""
    from simulpo.eval.report import format_rows_table

    print(format_rows_table(rows))


def add_unit_args(p) -> None:
    """``--latency-unit`` and ``--target-lang``, shared by ``score`` and ``eval``."""
    p.add_argument(
        "--latency-unit",
        choices=["word", "char"],
        help="target latency unit (default: char for zh/ja, else word)",
    )
    p.add_argument(
        "--target-lang", help="target language code, picks the BLEU tokenizer (zh, ja, ...)"
    )


def add_run_args(p, set_help: str) -> None:
    """``--set KEY=VALUE`` (repeatable) and ``--no-progress``."""
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")

"""The ``simulpo`` command: one entry point, one subcommand per job.

This module only dispatches: each subcommand is a module of :mod:`simulpo.commands`
with ``add_parser(subparsers)`` and ``run(args)``. Only the chosen command's options are
built (its config classes can be slow to import), so ``simulpo --help`` starts fast.

User errors (:class:`~simulpo.errors.SimulpoError`, bad values) print one line and exit
with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from simulpo import __version__
from simulpo.commands import COMMANDS
from simulpo.errors import SimulpoError


def _module(name: str):
    return importlib.import_module(f"simulpo.commands.{name}")


def build_parser(full: Sequence[str] = COMMANDS) -> argparse.ArgumentParser:
    """The parser; only the subcommands in ``full`` get their options (the others: a name
    and a help line)."""
    parser = argparse.ArgumentParser(prog="simulpo", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"simulpo {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = _module(name)
        if name in full:
            module.add_parser(sub).set_defaults(func=module.run)
        else:
            sub.add_parser(name, help=module.HELP)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (its first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = _command(argv)
    args = build_parser([command] if command in COMMANDS else []).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s")
    try:
        args.func(args)
        sys.stdout.flush()  # here, so that a closed pipe (| head) is caught below
    except BrokenPipeError:
        # the reader left (simulpo score ... | head): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE
    except SimulpoError as e:
        if args.debug:
            raise
        print(f"simulpo: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("simulpo: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

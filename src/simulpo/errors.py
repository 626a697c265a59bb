"""User-facing errors: the CLI prints these as one line, without a traceback."""

from __future__ import annotations

from pathlib import Path


class SimulpoError(Exception):
    """An error caused by the user's input or environment, with a message they can act on."""


class InputError(SimulpoError):
    """Bad content in an input file; the message names the file and, when known, the line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


class ConfigError(SimulpoError, ValueError):
    """A bad option value (unknown policy, k < 1, ...): a ValueError the CLI shows as one line."""

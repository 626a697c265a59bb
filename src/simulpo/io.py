"""Small file helpers shared by every reader and writer.

Writes are atomic (temporary file in the same folder, then a rename) so a killed run
never leaves a torn file; reads of line-based files report bad encodings by line.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from simulpo.errors import InputError, SimulpoError


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` through a temporary file and a rename.

    The file keeps the permissions of the file it replaces (0644 for a new one), not the
    private mode of the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented UTF-8 JSON, atomically."""
    return atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file (without line ends).

    A missing file is a :class:`SimulpoError`; bytes that are not UTF-8 an
    :class:`InputError` naming the line and column.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SimulpoError(f"{path}: no such file") from None
    except OSError as err:
        raise InputError(path, f"cannot read the file ({err.strerror})") from err
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for number, raw in enumerate(lines, 1):
        try:
            out.append(raw.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as err:
            raise InputError(
                path, f"invalid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})", number
            ) from None
    return out

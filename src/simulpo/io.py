"""Small file helpers shared by every reader and writer.

Writes are atomic (temporary file in the same folder, then a rename) so a killed run
never leaves a torn file, only a hidden temporary one that :func:`remove_partial_writes`
deletes when the run starts again; reads of text files strip a UTF-8 byte-order mark and
report bad encodings by line.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from simulpo.errors import InputError, SimulpoError

log = logging.getLogger(__name__)


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


def read_text(path: str | Path) -> str:
    """The text of a UTF-8 file, without the byte-order mark some editors put first (it
    would otherwise stick to the first word, or break a JSON or YAML parser)."""
    return Path(path).read_text(encoding="utf-8-sig")


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file (without line ends or a leading byte-order mark).

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
    lines = data.removeprefix(codecs.BOM_UTF8).split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for number, raw in enumerate(lines, 1):
        try:
            out.append(raw.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as err:
            raise InputError(
                path,
                f"invalid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})",
                number,
            ) from None
    return out


def remove_partial_writes(root: str | Path) -> list[Path]:
    """Delete what killed atomic writes left under ``root`` (at any depth); return it.

    These are the hidden temporaries of :func:`atomic_write_text` (``.NAME.*.tmp`` files)
    and of :func:`simulpo.models.lm.atomic_write_dir` (``.NAME.tmp-*`` folders, and
    ``.NAME.old-*`` ones holding a replaced version: put back when ``NAME`` is missing, as
    a kill between its two renames leaves it). Call it before a run writes anything.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    removed = []
    for path in sorted(root.rglob(".*"), key=lambda p: len(p.parts), reverse=True):
        name = path.name
        if path.is_file() and name.endswith(".tmp") and name.count(".") >= 3:
            path.unlink(missing_ok=True)
        elif path.is_dir() and ".old-" in name:
            kept = path / name[1:].rsplit(".old-", 1)[0]
            if kept.exists() and not (path.parent / kept.name).exists():
                os.rename(kept, path.parent / kept.name)
                log.warning("put back %s, left aside by an interrupted write", kept.name)
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_dir() and ".tmp-" in name:
            shutil.rmtree(path, ignore_errors=True)
        else:
            continue
        removed.append(path)
    if removed:
        log.info("removed %d temporary files of an interrupted run under %s", len(removed), root)
    return removed


#: the file a finished step (of a recipe, or a training run) writes last, with its result
RESULT_FILE = "result.json"


def write_result(out_dir: str | Path, result: dict) -> Path:
    """Mark ``out_dir`` finished: its result, atomically, as the last file written."""
    return atomic_write_json(Path(out_dir) / RESULT_FILE, result)


def read_result(out_dir: str | Path) -> dict | None:
    """What a finished ``out_dir`` returned (None if it did not finish)."""
    path = Path(out_dir) / RESULT_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

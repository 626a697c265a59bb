"""The metrics log in simulstream's JSONL format, and a reader that turns it into episodes.

Lines, as simulstream's server writes them: ``{"model_loading_time": s}`` once at start,
``{"id": n, "metadata": {...}}`` when a client sends ``metrics_metadata`` (simulstream's
clients send ``{"wav_name": path}``), then per processed chunk ``{"id": n,
"total_audio_processed": s, "computation_time": s, "generated_tokens": [...],
"deleted_tokens": [...]}`` (seconds; tokens are target units, joined by spaces, as
simulstream's ``simuleval`` detokenizer with ``latency_unit: word`` reads them). Every line
is written whole and flushed, so a killed server leaves a log that is valid up to its last
line; reopening the log drops a torn last line and goes on with fresh session ids.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulpo.errors import InputError
from simulpo.io import read_text
from simulpo.stream.units import join_pieces

if TYPE_CHECKING:
    from simulpo.serve.session import Pending, Session

LOG = logging.getLogger("simulpo.serve")


class MetricsLog:
    """Appends simulstream metrics lines to ``path`` (thread-safe, flushed per line)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.next_id = _repair(self.path)
        self._file = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def new_id(self) -> int:
        """A session id not used in this log before (also across restarts)."""
        with self._lock:
            self.next_id += 1
            return self.next_id - 1

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def chunk(self, session: Session, item: Pending, seconds: float, tokens: list[str]) -> None:
        """One processed chunk (speech: seconds of audio read so far; text: words)."""
        total = item.chunk.end / 1000 if session.mode == "speech" else item.chunk.end
        self.write(
            {
                "id": session.sid,
                "total_audio_processed": total,
                "computation_time": seconds,
                "generated_tokens": tokens,
                "deleted_tokens": [],
            }
        )

    def close(self) -> None:
        with self._lock:
            self._file.close()


def _repair(path: Path) -> int:
    """Drop a torn last line (a server killed mid-write); returns the next free session id."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        LOG.warning(
            "%s: dropped a torn last line (%d bytes) of a killed server", path, len(data) - cut
        )
        with path.open("r+b") as f:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
        data = data[:cut]
    ids = [r["id"] for r in map(json.loads, data.splitlines()) if isinstance(r.get("id"), int)]
    return max(ids, default=-1) + 1


def read_metrics_log(path: str | Path, target_lang: str | None = None) -> list[dict[str, Any]]:
    """The streams of a simulstream metrics log, in order of first output, as
    ``{"name", "prediction", "delays", "elapsed"}`` (delays in ms of audio read when each
    word was written; elapsed adds the computation time, simulstream's
    computation-aware delay). ``name`` is the ``wav_name`` stem of the stream's metadata;
    the tokens of ``prediction`` join as ``target_lang`` is written (spaces or none).

    Deleted tokens (re-translation) are taken back from the words written so far, as
    simulstream's reader does. A line that is not JSON is an error naming it, except a
    torn last line (a killed server), which is skipped.
    """
    names: dict[Any, str] = {}
    streams: OrderedDict[Any, dict[str, Any]] = OrderedDict()
    lines = read_text(path).splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                LOG.warning("%s:%d: skipped a torn last line", path, number)
                continue
            raise InputError(path, "not a JSON line of a simulstream metrics log", number)
        if "metadata" in record:
            names[record["id"]] = Path(str(record["metadata"].get("wav_name", record["id"]))).stem
        elif "generated_tokens" in record:
            sid = record["id"]
            if sid not in names:
                raise InputError(path, f"output of stream {sid} before its metadata line", number)
            out = streams.setdefault(
                sid, {"name": names[sid], "words": [], "delays": [], "elapsed": []}
            )
            deleted = len(record.get("deleted_tokens") or [])
            if deleted:
                for key in ("words", "delays", "elapsed"):
                    del out[key][len(out[key]) - deleted :]
            delay = record["total_audio_processed"] * 1000
            for token in record["generated_tokens"]:
                out["words"].append(token)
                out["delays"].append(delay)
                out["elapsed"].append(delay + record["computation_time"] * 1000)
    return [
        {
            "name": s["name"],
            "prediction": join_pieces(s["words"], target_lang),
            "delays": s["delays"],
            "elapsed": s["elapsed"],
        }
        for s in streams.values()
    ]


def is_metrics_log(path: str | Path) -> bool:
    """Whether ``path`` is a simulstream metrics log (its first line is one of its records)."""
    try:
        with Path(path).open(encoding="utf-8-sig") as f:  # as read_text: no byte-order mark
            first = next((line for line in f if line.strip()), "")
        record = json.loads(first)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(record, dict) and bool(
        record.keys() & {"model_loading_time", "generated_tokens", "metadata"}
    )


def as_hypotheses(path: str | Path, out_dir: str | Path, target_lang: str | None = None) -> Path:
    """``path`` itself, or for a simulstream metrics log the long-form hypothesis JSONL
    (``{source, prediction, delays, elapsed}`` per stream, in ms) written to
    ``out_dir/hypotheses.jsonl``: how ``simulpo score`` scores a served run."""
    if not is_metrics_log(path):
        return Path(path)
    streams = read_metrics_log(path, target_lang)
    if not streams:
        raise InputError(path, "a metrics log without any stream output")
    out = Path(out_dir) / "hypotheses.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {"source": s["name"], **{k: s[k] for k in ("prediction", "delays", "elapsed")}}
        for s in streams
    ]
    out.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    LOG.info("%s: a simulstream metrics log; its %d streams are in %s", path, len(rows), out)
    return out

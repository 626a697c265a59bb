"""``report.json``: a list of rows, one per (system, dataset), with every metric key.

Reports accumulate: evaluating a system again replaces its row, other rows stay.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from simulpo.errors import InputError
from simulpo.io import atomic_write_json, read_text

Row = dict[str, Any]


def read_report(path: str | Path) -> list[Row]:
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        rows = json.loads(read_text(path))
    except FileNotFoundError:
        raise InputError(path, "no such report")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, f"not a JSON report ({e})")
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "name" in r for r in rows):
        raise InputError(path, 'a report is a JSON list of objects, each with a "name"')
    return rows


def update_report(path: str | Path, rows: Iterable[Row]) -> list[Row]:
    """Add ``rows`` to the report at ``path``, replacing rows with the same name and dataset."""
    path = Path(path)
    old = read_report(path) if path.exists() else []
    new = list(rows)
    keys = {(r["name"], r.get("dataset")) for r in new}
    merged = [r for r in old if (r["name"], r.get("dataset")) not in keys] + new
    atomic_write_json(path, merged)
    return merged


#: Columns shown by :func:`format_rows_table`, in order, when present in some row.
TABLE_KEYS = (
    "BLEU", "chrF", "AL", "LAAL", "DAL", "AP", "ATD", "StartOffset", "EndOffset",
    "StreamLAAL", "StreamLAAL_CA", "LongYAAL", "LongYAAL_CA", "WER",
)  # fmt: skip


def format_rows_table(rows: list[Row]) -> str:
    """Report rows as an aligned plain-text table (dataset, system, then metrics)."""
    keys = [k for k in TABLE_KEYS if any(k in r for r in rows)]
    header = ["dataset", "system", *keys]
    body = [
        [str(r.get("dataset", "")), str(r["name"]), *(_cell(r.get(k)) for k in keys)] for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
             for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, (int, float)) else "-"

"""Reading test sets: a source and a reference file (one segment a line), or one JSONL
or TSV (``source<TAB>reference``) file.

Every problem is reported as an :class:`~simulpo.errors.InputError` naming the file and
the line, because a test set with one bad line should be fixed, not half evaluated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from simulpo.errors import InputError, SimulpoError
from simulpo.io import read_lines

#: Longest segment accepted, in whitespace words; longer lines are almost always a
#: missing line break or a binary file, and would make the quadratic baselines crawl.
MAX_WORDS = 1000


@dataclass(frozen=True)
class Sentence:
    id: str
    source: str
    reference: str | None


def _check_text(path: Path, number: int, text: str, what: str) -> str:
    text = text.strip()
    if not text:
        raise InputError(path, f"empty {what}; remove the line or fill it in", number)
    if len(text.split()) > MAX_WORDS:
        raise InputError(
            path, f"{what} has {len(text.split())} words, more than the {MAX_WORDS} allowed", number
        )
    return text


def load_text_pair(source_path: str | Path, reference_path: str | Path | None) -> list[Sentence]:
    """Segments from a source file and an optional reference file with the same line count."""
    source_path = Path(source_path)
    sources = read_lines(source_path)
    if not sources:
        raise InputError(source_path, "the file is empty")
    tabbed = next((i for i, line in enumerate(sources, 1) if "\t" in line), None)
    if tabbed is not None:
        raise InputError(
            source_path,
            "holds a tab: a TSV of source<TAB>reference? give it as --data FILE.tsv, or put "
            "sources and references in two files (--source, --reference)",
            tabbed,
        )
    refs: list[str | None] = [None] * len(sources)
    if reference_path is not None:
        reference_path = Path(reference_path)
        refs = read_lines(reference_path)  # type: ignore[assignment]
        if len(refs) != len(sources):
            raise InputError(
                reference_path,
                f"{len(refs)} reference lines but {len(sources)} source lines in {source_path}",
            )
    return [
        Sentence(
            str(i),
            _check_text(source_path, i, src, "source"),
            None if ref is None else _check_text(Path(reference_path), i, ref, "reference"),
        )
        for i, (src, ref) in enumerate(zip(sources, refs), 1)
    ]


def load_jsonl(path: str | Path) -> list[Sentence]:
    """Segments from JSON lines with ``source`` and ``reference`` (or ``target``), and an optional ``id``."""
    path = Path(path)
    segments = []
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(path, f"malformed JSON ({e.msg})", number)
        if not isinstance(obj, dict) or "source" not in obj:
            raise InputError(path, 'each line must be an object with a "source" field', number)
        ref = obj.get("reference", obj.get("target"))
        segments.append(
            Sentence(
                str(obj.get("id", number)),
                _check_text(path, number, str(obj["source"]), "source"),
                None if ref is None else _check_text(path, number, str(ref), "reference"),
            )
        )
    if not segments:
        raise InputError(path, "the file holds no segments")
    return segments


def load_tsv(path: str | Path) -> list[Sentence]:
    """Segments from lines of ``source<TAB>reference`` (a line without a tab: no reference)."""
    path = Path(path)
    segments = []
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) > 2:
            raise InputError(
                path, f"{len(fields)} tab-separated fields; a line is source<TAB>reference", number
            )
        ref = fields[1] if len(fields) == 2 else None
        segments.append(
            Sentence(
                str(number),
                _check_text(path, number, fields[0], "source"),
                None if ref is None else _check_text(path, number, ref, "reference"),
            )
        )
    if not segments:
        raise InputError(path, "the file holds no segments")
    return segments


def load_test_set(source: str | Path, reference: str | Path | None = None) -> list[Sentence]:
    """A test set from ``source`` (+ ``reference``) text files, or from one ``.jsonl`` or
    ``.tsv`` file holding both."""
    kind = Path(source).suffix
    if kind in (".jsonl", ".tsv"):
        if reference is not None:
            raise SimulpoError(f"a {kind} test set holds its references; drop --reference")
        return load_jsonl(source) if kind == ".jsonl" else load_tsv(source)
    return load_text_pair(source, reference)


def require_references(segments: list[Sentence], source: str | Path) -> None:
    """Refuse a test set without references, saying how to give them."""
    missing = next((s for s in segments if s.reference is None), None)
    if missing is None:
        return
    if Path(source).suffix in (".jsonl", ".tsv"):
        field = '"reference" field' if Path(source).suffix == ".jsonl" else "second column"
        raise InputError(
            source,
            f"segment {missing.id} has no reference (a {field}); "
            "scoring needs one for every segment",
        )
    raise SimulpoError(
        f"{source} holds sources only: give the references with --reference FILE (one a "
        "line), or use --data FILE.jsonl / FILE.tsv holding both"
    )

"""``simulpo data build``: the bundled corpora written as plain files, reproducibly.

Layout under the output directory::

    synthetic/{train,dev,test}.src|.tgt|.jsonl   the synthetic pair (JSONL adds gold alignments)
    bible/{train,dev,test}.en|.es|.jsonl         English→Spanish Bible verses, split by book
    manifest.json                                 what was built, with sizes and settings

Text files hold one segment a line; JSONL lines are ``{"id", "source", "reference", ...}``,
which ``simulpo eval --data`` reads directly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from simulpo.data.synthetic import DEFAULT_REORDER, DEFAULT_SPLITS, generate_splits
from simulpo.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


def write_split(folder: Path, split: str, records: Iterable[dict], langs: tuple[str, str]) -> list[Path]:
    """Write one split as ``split.<src>``, ``split.<tgt>`` (one segment a line) and ``split.jsonl``."""
    records = list(records)
    src, tgt = langs
    return [
        atomic_write_text(folder / f"{split}.{src}", "".join(r["source"] + "\n" for r in records)),
        atomic_write_text(folder / f"{split}.{tgt}", "".join(r["reference"] + "\n" for r in records)),
        atomic_write_text(
            folder / f"{split}.jsonl",
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
        ),
    ]


def build_synthetic(
    out: Path, seed: int = 0, reorder: float = DEFAULT_REORDER, sizes: dict[str, int] | None = None
) -> tuple[list[Path], dict]:
    sizes = dict(DEFAULT_SPLITS if sizes is None else sizes)
    splits = generate_splits(seed, sizes, reorder=reorder)
    paths = [
        p
        for name, pairs in splits.items()
        for p in write_split(out / "synthetic", name, (pair.to_dict() for pair in pairs), ("src", "tgt"))
    ]
    return paths, {"seed": seed, "reorder": reorder, "sizes": {k: len(v) for k, v in splits.items()}}


def build_bible(out: Path) -> tuple[list[Path], dict]:
    from simulpo.data.bible import load_verse_pairs, split_by_book

    stats: dict[str, int] = {}
    splits = split_by_book(load_verse_pairs(stats=stats))
    paths = [
        p
        for name, pairs in splits.items()
        for p in write_split(
            out / "bible",
            name,
            ({"id": v.id, "source": v.english, "reference": v.spanish} for v in pairs),
            ("en", "es"),
        )
    ]
    books = {name: sorted({v.book for v in pairs}) for name, pairs in splits.items() if name != "train"}
    return paths, {"sizes": {k: len(v) for k, v in splits.items()}, "books": books, "filter": stats}


def build_all(
    out: str | Path,
    seed: int = 0,
    reorder: float = DEFAULT_REORDER,
    bible: bool = True,
    synthetic_sizes: dict[str, int] | None = None,
) -> list[Path]:
    """Build every bundled corpus under ``out``; returns the files written."""
    out = Path(out)
    paths, manifest = [], {}
    files, manifest["synthetic"] = build_synthetic(out, seed, reorder, synthetic_sizes)
    paths += files
    if bible:
        files, manifest["bible"] = build_bible(out)
        paths += files
    paths.append(atomic_write_json(out / "manifest.json", manifest))
    log.info("Built %s under %s.", ", ".join(manifest), out)
    return paths

"""Word alignment for SFT data synthesis: eflomal, symmetrization, monotonization, AER.

:func:`align` trains eflomal (Östling & Tiedemann, 2016: a Bayesian HMM + fertility
aligner fitted by Gibbs sampling) on the corpus it is given, in both directions, and
symmetrizes the two directional alignments itself (grow-diag-final-and by default). Align
the whole training corpus in one call: the aligner learns its word translation table from
the corpus, so a few hundred sentences align far worse than twenty thousand.

eflomal seeds its samplers from ``/dev/urandom`` and has no seed option, so two runs give
slightly different links; keep the alignments of a run (:func:`write_alignments`) when a
dataset must be rebuilt exactly.

:func:`monotonize` turns one alignment into the number of source words each target word
needs (the "ideal wait" oracle, SimulEval delays in form), and
:func:`alignment_scores` measures an alignment against gold links (precision, recall and
Och & Ney's alignment error rate).

Alignments are lists of ``(source_index, target_index)`` pairs, 0-based, as in the
Pharaoh ``i-j`` text format.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from simulpo.errors import InputError, SimulpoError
from simulpo.io import atomic_write_text, read_lines

__all__ = [
    "SYMMETRIZATIONS",
    "AlignmentScores",
    "CorpusError",
    "Link",
    "align",
    "alignment_error_rate",
    "alignment_scores",
    "check_parallel",
    "check_sentences",
    "monotonize",
    "parse_alignment",
    "read_alignments",
    "symmetrize",
    "write_alignments",
]

log = logging.getLogger(__name__)

Link = tuple[int, int]
SYMMETRIZATIONS = ("grow-diag-final-and", "grow-diag-final", "grow-diag", "intersection", "union")
_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


class CorpusError(SimulpoError, ValueError):
    """A parallel corpus that cannot be aligned or turned into dialogues (counts differ,
    an empty sentence, a link out of range); the message names the sentence."""


def check_sentences(sentences: Sequence[Sequence[str]], side: str = "source") -> None:
    """Raise :class:`CorpusError` unless every sentence is a non-empty list of tokens, each
    token non-empty and free of whitespace; ``side`` names the sentences in the message."""
    for k, sent in enumerate(sentences):
        if isinstance(sent, str):
            raise CorpusError(f"{side} sentence {k + 1} is a string; pass a list of words")
        if len(sent) == 0:
            raise CorpusError(f"{side} sentence {k + 1} is empty; drop it or fill it in")
        for w in sent:
            if not isinstance(w, str) or not w or w.split() != [w]:
                raise CorpusError(
                    f"{side} sentence {k + 1} has the token {w!r}; "
                    "tokens must be non-empty strings without whitespace"
                )


def check_parallel(
    sources: Sequence[Sequence[str]], targets: Sequence[Sequence[str]], target_name: str = "target"
) -> None:
    """Raise :class:`CorpusError` unless both sides have the same number of sentences and
    pass :func:`check_sentences`."""
    if len(sources) != len(targets):
        raise CorpusError(
            f"{len(sources)} source sentences but {len(targets)} {target_name} sentences; "
            "they must pair up one to one"
        )
    check_sentences(sources, "source")
    check_sentences(targets, target_name)


# ---------------------------------------------------------------------------- eflomal


def align(
    sources: Sequence[Sequence[str]],
    targets: Sequence[Sequence[str]],
    method: str = "grow-diag-final-and",
    model: int = 3,
    n_samplers: int = 3,
    rel_iterations: float = 1.0,
    null_prior: float = 0.2,
) -> list[list[Link]]:
    """Word-align a parallel corpus with eflomal; one sorted list of links per sentence.

    eflomal is trained on exactly these sentences, forward and reverse, and the two
    directional alignments are combined with ``method`` (see :func:`symmetrize`).
    ``model`` (1 IBM1, 2 HMM, 3 HMM + fertility), ``n_samplers``, ``rel_iterations`` and
    ``null_prior`` are eflomal's own settings. Sentences are lists of tokens, none empty.
    Not bit-reproducible: eflomal has no seed (see the module docstring).
    """
    if method not in SYMMETRIZATIONS:
        raise SimulpoError(
            f"unknown symmetrization {method!r}; use one of {', '.join(SYMMETRIZATIONS)}"
        )
    check_parallel(sources, targets)
    import eflomal  # imported here: only alignment needs the compiled aligner

    n = len(sources)
    log.info("aligning %d sentence pairs with eflomal (model %d, forward and reverse)", n, model)
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="simulpo-align-") as tmp:
        fwd_file, rev_file = Path(tmp, "fwd"), Path(tmp, "rev")
        aligner = eflomal.Aligner(
            model=model, n_samplers=n_samplers, rel_iterations=rel_iterations, null_prior=null_prior
        )
        aligner.align(
            [" ".join(s) for s in sources],
            [" ".join(t) for t in targets],
            links_filename_fwd=str(fwd_file),
            links_filename_rev=str(rev_file),
            quiet=not log.isEnabledFor(logging.DEBUG),
        )
        forward = [parse_alignment(x) for x in fwd_file.read_text(encoding="utf-8").splitlines()]
        reverse = [parse_alignment(x) for x in rev_file.read_text(encoding="utf-8").splitlines()]
    if len(forward) != n or len(reverse) != n:
        raise SimulpoError(
            f"eflomal returned {len(forward)} forward and {len(reverse)} reverse alignments "
            f"for {n} sentence pairs"
        )
    log.info("eflomal took %.1f s; symmetrizing with %s", time.perf_counter() - tic, method)
    out = [symmetrize(f, r, method) for f, r in zip(forward, reverse)]
    log.info("aligned %d sentence pairs in %.1f s", n, time.perf_counter() - tic)
    return out


# ---------------------------------------------------------------------------- symmetrization


def symmetrize(
    forward: Iterable[Link], reverse: Iterable[Link], method: str = "grow-diag-final-and"
) -> list[Link]:
    """Combine two directional alignments of one sentence (both as ``(src, tgt)`` links).

    ``intersection`` keeps the links both directions agree on (precise), ``union`` all of
    them (complete). ``grow-diag`` starts from the intersection and repeatedly adds union
    links next to (also diagonally) an existing link when one of their two words is not
    aligned yet; ``grow-diag-final`` then adds any union link whose source or target word
    is still unaligned, ``grow-diag-final-and`` (the Moses default) only those whose
    source *and* target words both are — the forward links first, then the reverse ones
    (Koehn et al., 2005).
    """
    fwd, rev = set(forward), set(reverse)
    if method == "intersection":
        return sorted(fwd & rev)
    if method == "union":
        return sorted(fwd | rev)
    if method not in SYMMETRIZATIONS:
        raise SimulpoError(
            f"unknown symmetrization {method!r}; use one of {', '.join(SYMMETRIZATIONS)}"
        )
    union = fwd | rev
    links = fwd & rev
    src_aligned = {i for i, _ in links}
    tgt_aligned = {j for _, j in links}

    def add(i: int, j: int) -> None:
        links.add((i, j))
        src_aligned.add(i)
        tgt_aligned.add(j)

    grown = True
    while grown:  # grow-diag: fill in neighbours until nothing changes
        grown = False
        for i, j in sorted(links):
            for di, dj in _NEIGHBOURS:
                p = (i + di, j + dj)
                if (
                    p in union
                    and p not in links
                    and (p[0] not in src_aligned or p[1] not in tgt_aligned)
                ):
                    add(*p)
                    grown = True
    if method != "grow-diag":
        both = method == "grow-diag-final-and"
        for direction in (fwd, rev):
            for i, j in sorted(direction):
                if (i, j) in links:
                    continue
                free_i, free_j = i not in src_aligned, j not in tgt_aligned
                if (free_i and free_j) if both else (free_i or free_j):
                    add(i, j)
    return sorted(links)


# ---------------------------------------------------------------------------- monotonize


def monotonize(alignment: Iterable[Link], tgt_len: int) -> list[int]:
    """The "ideal wait" oracle: for each target word, the source words that must be read
    before it can be written.

    Target word j needs ``1 + max`` of the source indices aligned to it; the values are
    then made non-decreasing (target words are written in order, so a word waits for
    everything its predecessors waited for), and at least 1 (nothing is written before
    the first source word). An unaligned target word takes its predecessor's value. The
    result has the form of SimulEval delays, so an oracle policy writing each word as early
    as the alignment allows has exactly these delays.
    """
    need = [0] * tgt_len
    for i, j in alignment:
        if not 0 <= j < tgt_len or i < 0:
            raise CorpusError(f"link {i}-{j} lies outside a target of {tgt_len} words")
        need[j] = max(need[j], i + 1)
    delays = []
    current = 1
    for x in need:
        current = max(current, x)
        delays.append(current)
    return delays


# ---------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class AlignmentScores:
    """Corpus-level alignment quality: precision, recall, AER and the counts behind them."""

    precision: float
    recall: float
    aer: float
    predicted: int
    sure: int


def alignment_scores(
    predicted: Sequence[Iterable[Link]],
    gold: Sequence[Iterable[Link]],
    possible: Sequence[Iterable[Link]] | None = None,
) -> AlignmentScores:
    """Precision, recall and alignment error rate of ``predicted`` against ``gold`` (sure
    links), one link list per sentence, counted over the whole corpus (Och & Ney, 2003)::

        precision = |A ∩ P| / |A|     recall = |A ∩ S| / |S|
        AER = 1 - (|A ∩ S| + |A ∩ P|) / (|A| + |S|)

    ``possible`` adds possible links: P is S plus them (so passing all of P works too).
    Without it P = S and AER = 1 - 2|A ∩ S| / (|A| + |S|) = 1 - F1. An empty prediction has
    precision 1 (no wrong link), an empty gold recall 1; both empty give AER 0.
    """
    if len(predicted) != len(gold):
        raise CorpusError(f"{len(predicted)} predicted alignments but {len(gold)} gold ones")
    if possible is not None and len(possible) != len(gold):
        raise CorpusError(f"{len(possible)} possible-link alignments but {len(gold)} gold ones")
    n_a = n_s = a_and_s = a_and_p = 0
    for k, (a, s) in enumerate(zip(predicted, gold)):
        a, s = set(a), set(s)
        p = s | set(possible[k]) if possible is not None else s
        n_a += len(a)
        n_s += len(s)
        a_and_s += len(a & s)
        a_and_p += len(a & p)
    return AlignmentScores(
        precision=a_and_p / n_a if n_a else 1.0,
        recall=a_and_s / n_s if n_s else 1.0,
        aer=1 - (a_and_s + a_and_p) / (n_a + n_s) if n_a + n_s else 0.0,
        predicted=n_a,
        sure=n_s,
    )


def alignment_error_rate(
    predicted: Sequence[Iterable[Link]],
    gold: Sequence[Iterable[Link]],
    possible: Sequence[Iterable[Link]] | None = None,
) -> float:
    """Och & Ney's AER over a corpus (0 perfect, 1 nothing right); see :func:`alignment_scores`."""
    return alignment_scores(predicted, gold, possible).aer


# ---------------------------------------------------------------------------- files


def parse_alignment(text: str) -> list[Link]:
    """Links from Pharaoh text (``"0-0 2-1 1-2"``), sorted; raises ``ValueError`` if malformed."""
    links = []
    for item in text.split():
        i, sep, j = item.partition("-")
        if not sep or not i.isdigit() or not j.isdigit():
            raise ValueError(f"{item!r} is not a link of the form i-j")
        links.append((int(i), int(j)))
    return sorted(links)


def write_alignments(path: str | Path, alignments: Iterable[Iterable[Link]]) -> Path:
    """Write one Pharaoh line (``i-j`` pairs) per sentence, atomically."""
    text = "".join(" ".join(f"{i}-{j}" for i, j in sorted(a)) + "\n" for a in alignments)
    return atomic_write_text(path, text)


def read_alignments(path: str | Path) -> list[list[Link]]:
    """Read a Pharaoh alignment file (one line per sentence; a blank line = no links)."""
    out = []
    for number, line in enumerate(read_lines(path), start=1):
        try:
            out.append(parse_alignment(line))
        except ValueError as err:
            raise InputError(path, str(err), number) from None
    return out

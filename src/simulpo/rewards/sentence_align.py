"""Sentence alignment for the HPO reward: hypothesis sentences to reference sentences.

HPO scores a long translation sentence by sentence, so it must first decide which
hypothesis sentences translate which reference sentences. The aligner here is a monotone
dynamic program in the manner of Gale–Church / Vecalign: it cuts both sides into *beads*
of up to ``max_merge`` consecutive sentences, each bead either aligned (hypothesis
sentences ``i..i+a`` with reference sentences ``j..j+b``) or one sentence left alone, and
maximizes

    sum over aligned beads of  sim(bead) - min_similarity - merge_penalty * (a + b - 2)

where ``sim`` is a chrF-like F1 of character n-grams (precision and recall weighted
alike). A lone sentence scores 0, so a bead is aligned only if its similarity clears
``min_similarity`` (plus a small price for merging, so that two good one-to-one beads win
over one two-to-two bead).

Why gibberish cannot game it, where an edit-distance re-segmenter (mWER, which HPO's
paper found hackable) can: mWER re-cuts the hypothesis *word stream* and must hand every
word to some reference sentence, so a stream of junk written early is carved into one
"translation" per reference, each with early delays, and nothing it wrote is ever left
over. Here

- the aligner only decides which whole sentences pair up; a bead's quality is always the
  metric's score of exactly those sentences, and the HPO gate gives a bead that fails the
  quality threshold the maximum latency, so early junk is late junk;
- every hypothesis sentence left over is one more entry with the worst quality and the
  maximum latency: writing many candidate sentences and letting the aligner pick the best
  one per reference costs more than it gains;
- the similarity is an F1 (precision counts as much as recall, unlike chrF's F2), so
  junk placed next to a good sentence lowers a merged bead's similarity and is left out
  as its own worst-scored entry rather than absorbed.

``min_similarity`` (0.1) is deliberately low: on short sentences character n-grams cannot
tell a loose paraphrase (0.2) from unrelated words of the same language (0.15–0.3); a
high bar would score real but free translations as missing. Unrelated text that clears
it is scored by the metric and the gate like any poor translation (repeated words and
junk with few letters in common stay below it).

Cost: the similarities of all runs of up to ``max_merge`` sentences on either side are
computed at once with numpy (count vectors over the n-grams); the dynamic program is then
``O(N * M * max_merge^2)`` look-ups for ``N`` hypothesis and ``M`` reference sentences.
One sentence: about a millisecond; ten against ten: about 50 ms. Streams of hundreds of
sentences would want a band around the diagonal (not done).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Bead", "align_sentences", "similarity", "split_sentences"]

#: characters that end a sentence, in word and character (zh/ja) targets.
SENTENCE_END = frozenset(".!?…。！？")
#: closing quotes and brackets that may follow a sentence end and belong to the sentence.
CLOSERS = frozenset("\"'”’»)]}」』）】")
#: character n-gram orders of the similarity (chrF's default).
NGRAM_ORDER = 6


@dataclass(frozen=True)
class Bead:
    """Hypothesis sentences ``hyp`` aligned with reference sentences ``ref`` (index ranges).

    One of the two is empty for a sentence left unaligned.
    """

    hyp: range
    ref: range

    @property
    def aligned(self) -> bool:
        return len(self.hyp) > 0 and len(self.ref) > 0


def split_sentences(units: Sequence[str], unit: str = "word") -> list[range]:
    """Cut a unit stream into sentences: ranges of unit indices, covering every unit.

    A sentence ends at a unit (a word, or a character for zh/ja) whose last character —
    ignoring closing quotes and brackets — is one of ``. ! ? … 。 ！ ？``; closers that
    follow a character-level sentence end stay with that sentence. Text after the last
    end is a sentence too (a translation cut short still counts).
    """
    out: list[range] = []
    start, pending = 0, False
    for i, u in enumerate(units):
        if pending and not (unit == "char" and u in CLOSERS):
            out.append(range(start, i))
            start, pending = i, False
        stripped = u.rstrip("".join(CLOSERS)) if unit == "word" else u
        if stripped and stripped[-1] in SENTENCE_END:
            pending = True
    if start < len(units):
        out.append(range(start, len(units)))
    return out


def _ngrams(text: str) -> list[Counter]:
    chars = "".join(text.split())
    return [
        Counter(chars[i : i + n] for i in range(len(chars) - n + 1))
        for n in range(1, NGRAM_ORDER + 1)
    ]


def _f1(hyp: list[Counter], ref: list[Counter]) -> float:
    precisions, recalls = [], []
    for h, r in zip(hyp, ref):
        h_total, r_total = h.total(), r.total()
        if h_total == 0 or r_total == 0:
            continue  # like chrF's effective order: orders longer than the text are skipped
        small, large = (h, r) if len(h) <= len(r) else (r, h)
        match = sum(min(c, large[g]) for g, c in small.items())
        precisions.append(match / h_total)
        recalls.append(match / r_total)
    if not precisions:
        return 0.0
    p = sum(precisions) / len(precisions)
    r = sum(recalls) / len(recalls)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def similarity(hypothesis: str, reference: str) -> float:
    """chrF-like F1 in [0, 1]: character 1..6-grams (whitespace removed), P and R averaged
    over the orders both texts are long enough for, then their harmonic mean."""
    return _f1(_ngrams(hypothesis), _ngrams(reference))


def _range_texts(texts: Sequence[str], max_merge: int, joiner: str):
    """Every run of up to ``max_merge`` consecutive sentences: its (lo, hi) and its text."""
    keys = [
        (hi - a, hi) for hi in range(1, len(texts) + 1) for a in range(1, min(max_merge, hi) + 1)
    ]
    return keys, [joiner.join(texts[lo:hi]) for lo, hi in keys]


def _similarity_table(hyp_texts: list[str], ref_texts: list[str]) -> np.ndarray:
    """:func:`similarity` of every hypothesis text with every reference text, at once.

    Each text becomes a count vector over the n-grams (all orders) of all texts; the
    matches of one order are the sums of element-wise minima over that order's n-grams.
    """
    if not hyp_texts or not ref_texts:
        return np.zeros((len(hyp_texts), len(ref_texts)))
    counts = [Counter() for _ in range(len(hyp_texts) + len(ref_texts))]
    vocab: dict[str, int] = {}
    for c, text in zip(counts, hyp_texts + ref_texts):
        for order in _ngrams(text):
            for g, k in order.items():
                c[vocab.setdefault(g, len(vocab))] = k
    dense = np.zeros((len(counts), len(vocab)), dtype=np.float64)
    for row, c in enumerate(counts):
        if c:
            dense[row, list(c)] = list(c.values())
    order_of = np.zeros((len(vocab), NGRAM_ORDER))
    order_of[list(vocab.values()), [len(g) - 1 for g in vocab]] = 1.0
    hyp, ref = dense[: len(hyp_texts)], dense[len(hyp_texts) :]
    h_tot, r_tot = hyp @ order_of, ref @ order_of  # (texts, orders)
    match = np.stack([np.minimum(h, ref) @ order_of for h in hyp])  # (hyps, refs, orders)
    valid = (h_tot[:, None, :] > 0) & (r_tot[None, :, :] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(valid, match / h_tot[:, None, :], 0.0)
        rec = np.where(valid, match / r_tot[None, :, :], 0.0)
        n_valid = valid.sum(axis=2)
        p = prec.sum(axis=2) / n_valid
        r = rec.sum(axis=2) / n_valid
        f1 = 2 * p * r / (p + r)
    return np.where((n_valid > 0) & (p + r > 0), f1, 0.0)


def align_sentences(
    hypotheses: Sequence[str],
    references: Sequence[str],
    *,
    max_merge: int = 4,
    min_similarity: float = 0.1,
    merge_penalty: float = 0.02,
    joiner: str = " ",
) -> list[Bead]:
    """Monotone alignment of hypothesis sentences to reference sentences (see module doc).

    Returns beads in order, covering every sentence of both sides exactly once; aligned
    beads join up to ``max_merge`` sentences per side (``joiner`` glues their texts).
    """
    if max_merge < 1:
        raise ValueError(f"max_merge must be at least 1, got {max_merge}")
    n, m = len(hypotheses), len(references)
    hyp_keys, hyp_texts = _range_texts(hypotheses, max_merge, joiner)
    ref_keys, ref_texts = _range_texts(references, max_merge, joiner)
    sim = _similarity_table(hyp_texts, ref_texts)
    hyp_row = {k: r for r, k in enumerate(hyp_keys)}
    ref_col = {k: c for c, k in enumerate(ref_keys)}

    neg = float("-inf")
    best = [[neg] * (m + 1) for _ in range(n + 1)]
    back: list[list[tuple[int, int]]] = [[(0, 0)] * (m + 1) for _ in range(n + 1)]
    best[0][0] = 0.0
    for i in range(n + 1):
        for j in range(m + 1):
            if i == 0 and j == 0:
                continue
            score, step = neg, (0, 0)
            # a lone sentence on either side scores 0
            if i > 0 and best[i - 1][j] > score:
                score, step = best[i - 1][j], (1, 0)
            if j > 0 and best[i][j - 1] > score:
                score, step = best[i][j - 1], (0, 1)
            for a in range(1, min(max_merge, i) + 1):
                for b in range(1, min(max_merge, j) + 1):
                    gain = (
                        sim[hyp_row[i - a, i], ref_col[j - b, j]]
                        - min_similarity
                        - merge_penalty * (a + b - 2)
                    )
                    if gain > 0 and best[i - a][j - b] + gain > score:
                        score, step = best[i - a][j - b] + gain, (a, b)
            best[i][j], back[i][j] = score, step
    beads = []
    i, j = n, m
    while i or j:
        a, b = back[i][j]
        beads.append(Bead(range(i - a, i), range(j - b, j)))
        i, j = i - a, j - b
    return beads[::-1]

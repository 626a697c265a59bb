"""Re-segmentation: cut one unbounded translation stream into the reference sentences.

A long-form system writes one stream per recording; sentence-level metrics need one
piece per reference sentence. The field uses two alignments, and each long-form latency
metric is defined over its own, so both are here, each reproducing its reference tool
token for token (same tokenization, same costs, same tie-breaking):

- :func:`mwer_segment` — the minimum-WER segmentation of Matusov et al. 2005 ("Evaluating
  machine translation output with automatic sentence segmentation", IWSLT), as run by
  the ``mweralign`` package that simulstream's ``stream_laal`` scorer calls: a Levenshtein
  alignment of the stream against the concatenated reference sentences in which a
  sentence boundary may fall after any hypothesis token, at no cost. Case-insensitive
  (ASCII case only), unit costs, ties broken deletion > insertion > substitution.
- :func:`soft_segment` — OmniSTEval's SoftSegmenter (Polák et al. 2025, "Better Late Than
  Never", arXiv:2509.17349): a gap-free alignment maximizing the summed Jaccard similarity
  of the words' character sets (exact match for characters), punctuation never matched
  with non-punctuation, then each unaligned hypothesis unit joined to the neighbouring
  reference word it resembles more.

Both tools fill their dynamic-programming tables one cell at a time in Python or C++;
here a whole column (a row) of the table is one array operation, and all recordings
are aligned together, so the Python loop runs once per hypothesis token (reference
unit) of the longest recording only. The costs are compared exactly as the tools
compare them (integers; float sums built by the same additions), so the alignment, ties
included, is theirs.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence

import numpy as np

from simulpo.errors import SimulpoError

__all__ = [
    "SOFT_PUNCT",
    "MosesSplitter",
    "cj_tokens",
    "mwer_segment",
    "mwer_tokens",
    "soft_segment",
    "soft_units",
]

# --------------------------------------------------------------------------- mWER

#: what the C++ tokenizer splits on (``std::istream >> std::string``, C locale)
_ASCII_TOKEN = re.compile(r"[^ \t\n\r\x0b\x0c]+")
#: its case folding (``std::tolower`` byte by byte: ASCII letters only)
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
#: CJSegmenter's tokens: a run of Latin-1 characters (a literal ▁ passes as one), or any
#: other single character
_CJ_TOKEN = re.compile("[\x00-\xff\u2581]+|[^\x00-\xff\u2581]")
#: mweralign's CJSegmenter writes a space as this SentencePiece meta symbol
_SPM_SPACE = "\u2581"
_BIG = np.int32(1 << 29)
# recordings are aligned in batches whose padded tables stay under these many cells
_MWER_BATCH_CELLS = 40_000_000  # int16 costs per (hypothesis token, reference row)
_SOFT_BATCH_CELLS = 40_000_000  # two bool flags per (reference unit, hypothesis unit)


def mwer_tokens(text: str) -> list[str]:
    """Words as the mWER aligner reads them: split on ASCII whitespace."""
    return _ASCII_TOKEN.findall(text)


def cj_tokens(text: str) -> list[str]:
    """mweralign's ``CJSegmenter``: every non-Latin-1 character is a token, and every run
    of Latin-1 characters (spaces included) is one token. Returns the tokens as slices of
    ``text`` (their lengths add up to ``len(text)``), before the segmenter's symbol
    substitutions, which change neither lengths nor equality.
    """
    return _CJ_TOKEN.findall(text)


def _mwer_key(token: str) -> str:
    # equality as the aligner decides it: ASCII-lowercased, spaces spelled as ▁ (so a
    # literal ▁ and a space stay distinct, as the segmenter's escaping keeps them)
    return token.replace(_SPM_SPACE, "\x00").replace(" ", _SPM_SPACE).translate(_ASCII_LOWER)


def mwer_segment(
    docs: Sequence[tuple[Sequence[Sequence[str]], Sequence[str]]],
) -> list[np.ndarray]:
    """Minimum-WER segmentation of each ``(reference sentences, hypothesis tokens)`` pair.

    Each reference sentence is a list of tokens (possibly empty). Returns, per pair, the
    exclusive end of each sentence's piece in the hypothesis: sentence ``s`` gets tokens
    ``ends[s-1]:ends[s]`` (``ends[-1]`` is the number of tokens). Identical to
    ``mweralign.align_texts`` on the newline-joined sentences (simulstream's call); unlike
    it, a trailing empty reference sentence keeps its (empty) piece instead of vanishing.

    The recurrence over the rows of the concatenated references (each sentence followed
    by an end row), column ``j`` = hypothesis token ``j``: ``D(j, i) = min(D(j-1, i-1) +
    [r_i != h_j], D(j-1, i) + 1, D(j, i-1) + 1)``; an end row copies ``D(j, i-1)``, so a
    path crossing it in column ``j`` ends that sentence after token ``j``. Column 0 is
    ``D(0, i) = i``, end rows counted, as the aligner initializes it. The vertical chain
    of deletions is a running minimum (``D(j, i) = pos(i) + min_{k<=i} (A(j, k) -
    pos(k))``, ``A`` the best of substitution and insertion, ``pos`` counting word rows),
    so a column is a handful of array operations; the path is then walked back with the
    aligner's tie rules (deletion, then insertion, then substitution).
    """
    out: list[np.ndarray | None] = [None] * len(docs)
    vocab: dict[str, int] = {}
    encoded = []
    for refs, hyp in docs:
        ref_ids = [[vocab.setdefault(_mwer_key(t), len(vocab)) for t in sent] for sent in refs]
        hyp_ids = [vocab.setdefault(_mwer_key(t), len(vocab)) for t in hyp]
        encoded.append((ref_ids, hyp_ids))
    order = sorted(range(len(docs)), key=lambda k: -len(encoded[k][1]))
    sizes = [(len(h) + 1) * (sum(map(len, r)) + len(r) + 1) for r, h in encoded]
    for batch in _batches(order, sizes, _MWER_BATCH_CELLS):
        for k, ends in zip(batch, _mwer_batch([encoded[k] for k in batch])):
            out[k] = ends
    return out  # type: ignore[return-value]


def _mwer_batch(docs: list[tuple[list[list[int]], list[int]]]) -> list[np.ndarray]:
    n_docs = len(docs)
    n_rows = [sum(len(s) for s in refs) + len(refs) for refs, _ in docs]
    width, n_cols = max(n_rows) + 1, max(len(h) for _, h in docs)
    ref = np.full((n_docs, width), -2, np.int32)  # -1: sentence end; -2: padding
    is_end = np.zeros((n_docs, width), bool)
    hyp = np.full((n_docs, n_cols + 1), -3, np.int32)
    for d, (refs, h) in enumerate(docs):
        row = 1
        for sent in refs:
            ref[d, row : row + len(sent)] = sent
            row += len(sent)
            ref[d, row] = -1
            is_end[d, row] = True
            row += 1
        hyp[d, 1 : len(h) + 1] = h
    # pos: word rows among 1..i; a sentence-end row adds a huge cost to its own entry, so
    # it is never the minimum, only passed through
    pos = (np.cumsum(~is_end, axis=1) - 1).astype(np.int32)
    offset = np.where(is_end, _BIG, 0).astype(np.int32) - pos
    # the whole cost table, to walk back through (the aligner keeps backpointers instead;
    # re-deciding each step with its tie rules walks the same path)
    table = np.empty((n_docs, n_cols + 1, width), np.int16 if width + n_cols < 32000 else np.int32)
    # column 0: D(0, i) = i, sentence-end rows included (the aligner's initialization)
    cost = np.broadcast_to(np.arange(width, dtype=np.int32), (n_docs, width)).copy()
    table[:, 0] = cost
    a = np.empty((n_docs, width), np.int32)
    for j in range(1, n_cols + 1):
        a[:, 0] = j
        np.minimum(cost[:, 1:] + 1, cost[:, :-1] + (ref[:, 1:] != hyp[:, j, None]), out=a[:, 1:])
        a += offset
        cost = np.minimum.accumulate(a, axis=1)
        cost += pos
        table[:, j] = cost
    return [
        _mwer_backtrace(table[d], ref[d], hyp[d], is_end[d], len(refs), len(h))
        for d, (refs, h) in enumerate(docs)
    ]


def _mwer_backtrace(table, ref, hyp, is_end, n_sents: int, n_hyp: int) -> np.ndarray:
    """Walk from the last sentence end back to the start; a sentence ends at the column
    where the path crosses its end row. Each step re-makes the aligner's choice:
    substitution only if strictly cheapest, deletion before insertion on a tie."""
    ends = np.zeros(n_sents, np.int64)
    s = n_sents - 1
    i = int(np.flatnonzero(is_end)[-1]) if n_sents else 0
    j = n_hyp
    while i > 0 and j > 0:
        if is_end[i]:
            ends[s] = j
            s -= 1
            i -= 1
            continue
        sub = int(table[j - 1, i - 1]) + (ref[i] != hyp[j])
        dele = int(table[j, i - 1]) + 1
        ins = int(table[j - 1, i]) + 1
        if sub < dele and sub < ins:
            i, j = i - 1, j - 1
        elif sub >= dele and dele <= ins:
            i -= 1
        else:
            j -= 1
    return ends  # sentences whose end row was not reached end at token 0


# ------------------------------------------------------------------ SoftSegmenter

#: OmniSTEval's punctuation tokens: never aligned with anything else
SOFT_PUNCT = frozenset(".!?,;:-()" + "。！？，；：—（）" + "ー")

_MATCH, _DELETE, _INSERT = 0, 1, 2


def soft_units(text: str, char_level: bool, *, reference: bool) -> list[str]:
    """The units OmniSTEval aligns: words (characters) of ``text``, each NFKC-normalized
    and lowercased. References are lowercased (and, at character level, stripped of
    spaces) before they are cut, as OmniSTEval reads them."""
    if reference:
        if char_level:
            text = text.replace(" ", "")
        text = text.strip().lower()
    units = list(text) if char_level else text.split()
    return [unicodedata.normalize("NFKC", u).lower() for u in units]


class MosesSplitter:
    """OmniSTEval's ``--lang``: every unit split into subtokens by the Moses tokenizer.

    OmniSTEval runs ``mosestokenizer.MosesTokenizer(lang, no_escape=True)`` (the Moses
    Perl script) on each NFKC-normalized, lowercased unit of the references and the
    hypothesis, aligns the subtokens, and puts each hypothesis unit in the sentence that
    its *first* subtoken joins; a unit without subtokens is dropped. ``lang`` None,
    ``'zh'`` or ``'ja'`` leaves every unit whole, as OmniSTEval does. The same tokenizer
    runs here, so the split is the same; each distinct unit is tokenized once. Use it as
    a context manager: it starts (and then stops) one Perl process.
    """

    def __init__(self, lang: str | None) -> None:
        self.lang = lang
        self._tokenizer = None
        self._cache: dict[str, list[str]] = {}
        if lang is not None and lang not in ("zh", "ja"):
            try:
                from mosestokenizer import MosesTokenizer  # the one OmniSTEval runs
            except ImportError as err:
                raise SimulpoError(
                    f"--lang {lang} needs the Moses tokenizer OmniSTEval uses: "
                    f"pip install 'mosestokenizer>=1.2.1,<1.3' (and perl); {err}"
                ) from None
            try:
                self._tokenizer = MosesTokenizer(lang=lang, no_escape=True)
            except OSError as err:  # no perl
                raise SimulpoError(f"--lang {lang}: cannot start the Moses tokenizer ({err})")

    def __enter__(self) -> MosesSplitter:  # noqa: PYI034 (a final class in effect)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tokenizer is not None:
            self._tokenizer.close()

    def split(self, units: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """The subtokens of ``units`` in order, and the position of each unit's first
        subtoken among them (-1 for a unit that has none)."""
        if self._tokenizer is None:
            return list(units), np.arange(len(units))
        out: list[str] = []
        first = np.full(len(units), -1, np.int64)
        for k, unit in enumerate(units):
            tokens = self._cache.get(unit)
            if tokens is None:
                tokens = self._cache[unit] = list(self._tokenizer(unit))
            if tokens:
                first[k] = len(out)
                out.extend(tokens)
        return out, first


class _Similarity:
    """OmniSTEval's word similarity over the distinct units of one recording.

    Jaccard similarity of the two character sets (exact match for characters); minus
    infinity between punctuation and non-punctuation.
    """

    def __init__(self, ref: Sequence[str], hyp: Sequence[str], char_level: bool) -> None:
        ref_types: dict[str, int] = {}
        hyp_types: dict[str, int] = {}
        self.ref = np.array([ref_types.setdefault(u, len(ref_types)) for u in ref], np.int64)
        self.hyp = np.array([hyp_types.setdefault(u, len(hyp_types)) for u in hyp], np.int64)
        rt, ht = list(ref_types), list(hyp_types)
        if char_level:
            ids: dict[str, int] = {}
            r = np.array([ids.setdefault(u, len(ids)) for u in rt], np.int64)
            h = np.array([ids.setdefault(u, len(ids)) for u in ht], np.int64)
            table = (r[:, None] == h[None, :]).astype(np.float64)
        else:
            chars: dict[str, int] = {}
            r_sets = [[chars.setdefault(c, len(chars)) for c in set(u)] for u in rt]
            h_sets = [[chars.setdefault(c, len(chars)) for c in set(u)] for u in ht]
            inter = _intersections(r_sets, h_sets, len(chars))
            union = np.array([len(c) for c in r_sets], np.float64)[:, None] - inter
            union += np.array([len(c) for c in h_sets], np.float64)
            # units are never empty, so neither is a union; 0 stays 0 all the same
            table = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        r_punct = np.array([u in SOFT_PUNCT for u in rt], bool)
        h_punct = np.array([u in SOFT_PUNCT for u in ht], bool)
        if r_punct.any() or h_punct.any():
            table[np.ix_(r_punct, ~h_punct)] = -np.inf
            table[np.ix_(~r_punct, h_punct)] = -np.inf
        self.table = table

    def __call__(self, ref_index: int, hyp_index: int) -> float:
        return float(self.table[self.ref[ref_index], self.hyp[hyp_index]])


def _intersections(r_sets: list[list[int]], h_sets: list[list[int]], n_chars: int) -> np.ndarray:
    """``|r & h|`` for every pair of character sets (ids below ``n_chars``), as float64.

    Each set is a bit mask of 64-bit words, and a pair's count the popcount of their AND;
    without numpy's ``bitwise_count`` (numpy < 2) an indicator-matrix product instead.
    Both count exactly.
    """
    n_words = max(1, -(-n_chars // 64))

    def masks(sets: list[list[int]]) -> np.ndarray:
        out = np.zeros((len(sets), n_words), np.uint64)
        rows = np.repeat(np.arange(len(sets)), [len(c) for c in sets])
        cols = np.array([c for chars in sets for c in chars], np.int64)
        bits = np.left_shift(np.uint64(1), (cols % 64).astype(np.uint64))
        np.bitwise_or.at(out, (rows, cols // 64), bits)
        return out

    r, h = masks(r_sets), masks(h_sets)
    if not hasattr(np, "bitwise_count"):
        r_bits = np.unpackbits(r.view(np.uint8), axis=1).astype(np.float32)
        h_bits = np.unpackbits(h.view(np.uint8), axis=1).astype(np.float32)
        return (r_bits @ h_bits.T).astype(np.float64)  # small integers: exact in float32
    inter = np.zeros((len(r_sets), len(h_sets)), np.uint16)  # a word has < 65536 characters
    for w in range(n_words):
        inter += np.bitwise_count(r[:, w, None] & h[None, :, w])
    return inter.astype(np.float64)


def soft_segment(
    docs: Sequence[tuple[Sequence[Sequence[str]], Sequence[str]]], char_level: bool
) -> list[np.ndarray]:
    """OmniSTEval's SoftSegmenter on each ``(reference sentences, hypothesis units)`` pair.

    Units come from :func:`soft_units`. Returns, per pair, the sentence (0-based, within
    the pair) that each hypothesis unit joins, or -1 for a unit left out (OmniSTEval drops
    units before the first reference word that resemble nothing, e.g. a leading
    punctuation mark; and all of them when every reference sentence is empty, where
    OmniSTEval stops with an assertion error).

    The alignment maximizes ``dp(i, j) = max(dp(i-1, j-1) + sim(r_i, h_j), dp(i-1, j),
    dp(i, j-1))`` with ties broken match > deletion > insertion; with free insertions a
    row is the running maximum of ``max(match, deletion)``, one array operation.
    """
    out: list[np.ndarray | None] = [None] * len(docs)
    prepared = []
    for refs, hyp in docs:
        ref_units = [u for sent in refs for u in sent]
        sent_of = np.repeat(np.arange(len(refs)), [len(s) for s in refs])
        prepared.append((ref_units, sent_of, list(hyp), _Similarity(ref_units, hyp, char_level)))
    order = sorted(range(len(docs)), key=lambda k: -len(prepared[k][0]) * len(prepared[k][2]))
    sizes = [(len(p[0]) + 1) * (len(p[2]) + 1) for p in prepared]
    for batch in _batches(order, sizes, _SOFT_BATCH_CELLS):
        is_match, is_delete = _soft_dp([prepared[k] for k in batch])
        for b, k in enumerate(batch):
            ref_units, sent_of, hyp, sim = prepared[k]
            pairs = _soft_backtrace(is_match[b], is_delete[b], len(ref_units), len(hyp))
            out[k] = _soft_assign(pairs, sent_of, len(hyp), sim)
    return out  # type: ignore[return-value]


def _soft_dp(docs: list) -> tuple[np.ndarray, np.ndarray]:
    """The backpointer tables (match? else delete? else insert) of a batch of recordings."""
    n_docs = len(docs)
    n_ref = max(len(d[0]) for d in docs)
    n_hyp = max(len(d[2]) for d in docs)
    # every recording's similarity table, flattened into one array to gather from
    tables = [d[3].table.reshape(-1) for d in docs]
    base = np.cumsum([0] + [t.size for t in tables])[:-1]
    flat = np.concatenate(tables + [np.zeros(1)])
    dummy = flat.size - 1
    # padding rows and columns read a real cell (or the dummy): their values never
    # reach the cells of a shorter recording, which lie before them
    ref_idx = np.full((n_docs, max(n_ref, 1)), dummy, np.int64)
    hyp_idx = np.zeros((n_docs, n_hyp), np.int64)
    for d, (ref_units, _, hyp, sim) in enumerate(docs):
        if sim.table.size:
            ref_idx[d] = base[d]
            ref_idx[d, : len(ref_units)] += sim.ref * sim.table.shape[1]
            hyp_idx[d, : len(hyp)] = sim.hyp
    # for each cell: did the match win (ties: match > deletion > insertion), else the deletion
    is_match = np.empty((n_docs, n_ref + 1, n_hyp + 1), bool)
    is_delete = np.empty((n_docs, n_ref + 1, n_hyp + 1), bool)
    prev = np.zeros((n_docs, n_hyp + 1))
    cur = np.empty((n_docs, n_hyp + 1))
    for i in range(1, n_ref + 1):
        match = prev[:, :-1] + flat.take(ref_idx[:, i - 1, None] + hyp_idx)
        delete = prev[:, 1:]
        cur[:, 0] = 0.0
        np.maximum(match, delete, out=cur[:, 1:])
        cur = np.maximum.accumulate(cur, axis=1)
        # cur is the best of the three, so "wins" is "equals the best"
        np.greater_equal(match, cur[:, 1:], out=is_match[:, i, 1:])
        np.greater_equal(delete, cur[:, 1:], out=is_delete[:, i, 1:])
        prev, cur = cur, prev
    return is_match, is_delete


def _soft_backtrace(
    is_match: np.ndarray, is_delete: np.ndarray, n_ref: int, n_hyp: int
) -> list[tuple[int, int]]:
    """Aligned (reference index | -1, hypothesis index | -1) pairs, in order."""
    pairs = []
    i, j = n_ref, n_hyp
    while i > 0 or j > 0:
        if i == 0:
            op = _INSERT
        elif j == 0:
            op = _DELETE
        else:
            op = _MATCH if is_match[i, j] else _DELETE if is_delete[i, j] else _INSERT
        if op == _MATCH:
            i, j = i - 1, j - 1
            pairs.append((i, j))
        elif op == _DELETE:
            i -= 1
            pairs.append((i, -1))
        else:
            j -= 1
            pairs.append((-1, j))
    pairs.reverse()
    return pairs


def _soft_assign(
    pairs: list[tuple[int, int]], sent_of: np.ndarray, n_hyp: int, sim: _Similarity
) -> np.ndarray:
    """OmniSTEval's pass over the alignment that gives unaligned units a sentence.

    A unit inserted between reference words goes to the previous reference word, unless
    it resembles the next one strictly more; once one does, it and the rest of its gap go
    to the next word.
    """
    sentence = np.full(n_hyp, -1, np.int64)
    refs = [r for r, _ in pairs]
    next_ref_at = [len(pairs)] * (len(pairs) + 1)  # position of the next aligned ref word
    for k in range(len(pairs) - 1, -1, -1):
        next_ref_at[k] = k if refs[k] >= 0 else next_ref_at[k + 1]
    last_ref, next_i, lookahead = -1, 0, -1
    for k, (r, h) in enumerate(pairs):
        if r < 0 and k >= next_i:
            if last_ref < 0 and next_ref_at[k] == len(pairs):
                continue  # no reference word at all (OmniSTEval: assertion error)
            next_i = next_ref_at[k]
            next_ref = refs[next_i] if next_i < len(pairs) else -1
            next_score = sim(next_ref, h) if next_ref >= 0 else -np.inf
            prev_score = sim(last_ref, h) if last_ref >= 0 else -np.inf
            if next_score > prev_score:
                r = lookahead = next_ref
            else:
                r, next_i, lookahead = last_ref, k, -1
        elif r < 0:
            r = lookahead
        if r >= 0 and k >= next_i:
            last_ref = r
        if h >= 0 and r >= 0:
            sentence[h] = sent_of[r]
    return sentence


def _batches(order: list[int], sizes: list[int], budget: int) -> list[list[int]]:
    """Consecutive groups of ``order`` whose padded tables stay under ``budget`` cells."""
    batches: list[list[int]] = []
    for k in order:
        # sorted by decreasing size, so the first member of a batch is its largest
        if batches and sizes[batches[-1][0]] * (len(batches[-1]) + 1) <= budget:
            batches[-1].append(k)
        else:
            batches.append([k])
    return batches

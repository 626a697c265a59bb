"""Translation quality: corpus BLEU and chrF through sacrebleu.

BLEU is computed as SimulEval's ``BLEU`` quality scorer computes it —
``sacrebleu.metrics.BLEU(tokenize=...).corpus_score(predictions, [references]).score`` —
with sacrebleu's default tokenizer ``13a``, so the default case gives SimulEval's number.
For targets without spaces between words the tokenizer follows the target language:
``zh`` for Chinese, ``ja-mecab`` for Japanese when its extra dependencies are installed
(``pip install sacrebleu[ja]``), otherwise ``char`` with a logged note. chrF (Popović
2015) works on characters and needs no tokenizer.

Both are corpus scores computed from summed per-sentence sufficient statistics (n-gram
match counts and lengths: integers), so a large corpus is split into chunks whose
statistics sacrebleu extracts in parallel processes, one per core; the sums are exact
and the score is the one ``corpus_score`` gives.
"""

from __future__ import annotations

import functools
import itertools
import logging
import multiprocessing
from collections.abc import Sequence
from typing import Any

from sacrebleu.metrics import BLEU, CHRF

from simulpo.metrics.parallel import cores, fork_is_safe

__all__ = ["bleu_tokenizer", "corpus_bleu", "corpus_chrf", "language_code"]

logger = logging.getLogger(__name__)


def language_code(lang: str | None) -> str | None:
    """``'zh'`` for ``'zh-CN'``, ``'ZH_hans'`` …; None stays None."""
    if not lang:
        return None
    return lang.strip().lower().replace("_", "-").split("-")[0] or None


@functools.cache
def _mecab_available() -> bool:
    try:
        BLEU(tokenize="ja-mecab")
    except (ImportError, RuntimeError):  # what sacrebleu raises without MeCab
        logger.warning(
            "BLEU for Japanese: MeCab is not installed (pip install 'sacrebleu[ja]'), "
            "so the 'char' tokenizer is used; scores are not comparable with ja-mecab ones."
        )
        return False
    return True


def bleu_tokenizer(target_lang: str | None = None) -> str:
    """The sacrebleu tokenizer for BLEU on ``target_lang``: 'zh', 'ja-mecab'/'char', or '13a'."""
    code = language_code(target_lang)
    if code == "zh":
        return "zh"
    if code == "ja":
        return "ja-mecab" if _mecab_available() else "char"
    return BLEU.TOKENIZER_DEFAULT


def _check(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references; they must pair up"
        )
    if not hypotheses:
        raise ValueError("no sentences to score")


def corpus_bleu(
    hypotheses: Sequence[str],
    references: Sequence[str],
    *,
    target_lang: str | None = None,
    tokenize: str | None = None,
) -> float:
    """Corpus BLEU (Papineni et al. 2002) on a 0–100 scale, one reference per sentence.

    ``tokenize`` overrides the tokenizer chosen by :func:`bleu_tokenizer`.
    """
    _check(hypotheses, references)
    metric = BLEU(tokenize=tokenize or bleu_tokenizer(target_lang))
    return _corpus_score(metric, hypotheses, references)


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (Popović 2015; sacrebleu defaults: character 6-grams, beta 2), 0–100."""
    _check(hypotheses, references)
    return _corpus_score(CHRF(), hypotheses, references)


#: below this many sentences one process is faster than starting workers
PARALLEL_MIN_SENTENCES = 2000
# the job the forked workers read (copy-on-write) instead of receiving it pickled
_JOB: tuple[Any, Sequence[str], Sequence[str]] | None = None


def _corpus_score(metric: BLEU | CHRF, hypotheses: Sequence[str], references: Sequence[str]):
    """``metric.corpus_score(hypotheses, [references]).score``, its statistics summed over
    chunks extracted in parallel when the corpus is large and the machine has cores."""
    hyps, refs = list(hypotheses), list(references)
    workers = min(cores(), len(hyps) // (PARALLEL_MIN_SENTENCES // 2))
    if workers < 2 or not fork_is_safe():
        return float(metric.corpus_score(hyps, [refs]).score)
    global _JOB
    bounds = [len(hyps) * k // workers for k in range(workers + 1)]
    _JOB = (metric, hyps, refs)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_chunk_statistics, list(itertools.pairwise(bounds)))
    finally:
        _JOB = None
    totals = [sum(column) for column in zip(*parts)]
    return float(metric._compute_score_from_stats(totals).score)


def _chunk_statistics(span: tuple[int, int]) -> list:
    metric, hyps, refs = _JOB  # type: ignore[misc]
    a, b = span
    stats = metric._extract_corpus_statistics(hyps[a:b], [refs[a:b]])
    return [sum(column) for column in zip(*stats)]

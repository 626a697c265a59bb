"""Translation quality: corpus BLEU and chrF through sacrebleu.

BLEU is computed as SimulEval's ``BLEU`` quality scorer computes it —
``sacrebleu.metrics.BLEU(tokenize=...).corpus_score(predictions, [references]).score`` —
with sacrebleu's default tokenizer ``13a``, so the default case gives SimulEval's number.
For targets without spaces between words the tokenizer follows the target language:
``zh`` for Chinese, ``ja-mecab`` for Japanese when its extra dependencies are installed
(``pip install sacrebleu[ja]``), otherwise ``char`` with a logged note. chrF (Popović
2015) works on characters and needs no tokenizer.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

from sacrebleu.metrics import BLEU, CHRF

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
    return float(metric.corpus_score(list(hypotheses), [list(references)]).score)


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (Popović 2015; sacrebleu defaults: character 6-grams, beta 2), 0–100."""
    _check(hypotheses, references)
    return float(CHRF().corpus_score(list(hypotheses), [list(references)]).score)

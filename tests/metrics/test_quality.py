"""BLEU and chrF: hand-checkable cases, tokenizer choice, and SimulEval's BLEU scorer."""

from __future__ import annotations

import math

import pytest

from simulpo.metrics.quality import bleu_tokenizer, corpus_bleu, corpus_chrf

# SimulEval logs skipped instances with the deprecated logger.warn
pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated")


def test_bleu_brevity_penalty_by_hand():
    # every n-gram of the 4-word hypothesis is in the 8-word reference: precisions are 1,
    # and BLEU = 100 * BP = 100 * exp(1 - 8/4)
    assert corpus_bleu(["a b c d"], ["a b c d e f g h"]) == pytest.approx(100 * math.exp(-1))
    assert corpus_bleu(["a b c d e"], ["a b c d e"]) == pytest.approx(100.0)


def test_chinese_is_tokenized_per_character():
    # zh: 6 characters all matching a 7-character reference -> 100 * exp(1 - 7/6);
    # 13a would see one unmatched "word" each and give 0
    hyp, ref = ["我爱你们的家"], ["我爱你们的家园"]
    assert corpus_bleu(hyp, ref, target_lang="zh") == pytest.approx(100 * math.exp(1 - 7 / 6))
    assert corpus_bleu(hyp, ref, target_lang="zh-CN") == pytest.approx(100 * math.exp(1 - 7 / 6))
    assert corpus_bleu(hyp, ref) == 0.0
    assert corpus_bleu(hyp, ref, tokenize="char") == pytest.approx(100 * math.exp(1 - 7 / 6))


def test_tokenizer_choice():
    assert bleu_tokenizer(None) == "13a"
    assert bleu_tokenizer("de") == "13a"
    assert bleu_tokenizer("ZH_Hans") == "zh"
    try:
        import ipadic  # noqa: F401
        import MeCab  # noqa: F401
        has_mecab = True
    except ImportError:
        has_mecab = False
    assert bleu_tokenizer("ja") == ("ja-mecab" if has_mecab else "char")


def test_chrf_extremes():
    assert corpus_chrf(["abc def"], ["abc def"]) == pytest.approx(100.0)
    assert corpus_chrf(["xyz"], ["abc"]) == 0.0


def test_mismatched_lists():
    with pytest.raises(ValueError, match="must pair up"):
        corpus_bleu(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="no sentences"):
        corpus_chrf([], [])


def test_bleu_matches_simuleval_scorer(simuleval_ref, logs):
    records = logs.text(11)
    expected = simuleval_ref.quality.SacreBLEUScorer()(logs.log_instances(simuleval_ref, records))
    got = corpus_bleu([r["prediction"] for r in records], [r["reference"] for r in records])
    assert got == expected
    assert 0 < got < 100


def test_parallel_statistics_give_sacrebleus_corpus_score(monkeypatch):
    # chunks scored in forked workers, their integer statistics summed: exactly sacrebleu's
    import random

    from sacrebleu.metrics import BLEU, CHRF

    from simulpo.metrics import quality

    rng = random.Random(3)
    words = ["der", "Hund", "läuft", ".", ",", "schnell", "im", "Park", "好", "42"]
    hyps = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 12))) for _ in range(300)]
    refs = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(300)]
    expected = [
        BLEU().corpus_score(hyps, [refs]).score,
        CHRF().corpus_score(hyps, [refs]).score,
        BLEU(tokenize="zh").corpus_score(hyps, [refs]).score,
    ]
    monkeypatch.setattr(quality, "PARALLEL_MIN_SENTENCES", 20)
    monkeypatch.setattr(quality, "cores", lambda: 3)
    monkeypatch.setattr(quality, "fork_is_safe", lambda: True)

    def no_whole_corpus(*args, **kwargs):
        raise AssertionError("scored in one process")

    monkeypatch.setattr(BLEU, "corpus_score", no_whole_corpus)
    monkeypatch.setattr(CHRF, "corpus_score", no_whole_corpus)
    got = [corpus_bleu(hyps, refs), corpus_chrf(hyps, refs), corpus_bleu(hyps, refs, target_lang="zh")]
    assert got == expected

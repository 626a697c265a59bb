"""Sentence-level quality metrics for rewards: one score per (hypothesis, reference) pair.

A reward scores every episode of a group on its own, so it needs *sentence* scores, not
the corpus scores of :mod:`simulpo.metrics.quality`. A metric is any object with

- ``name``: how logs call it (``"chrF"``, ``"BLEU"``, ``"COMET"``);
- ``higher_is_better``: True for all but MetricX, an error score (False);
- ``worst``: the score of the worst translation, given to sentences that have none
  (an unaligned reference sentence in HPO) and to non-finite scores when a whole group has
  no finite one;
- ``threshold``: the default HPO gate, a rough "this is a translation at all" level
  (random words of the right language stay below it); tune it per setup;
- ``__call__(hypotheses, references, sources) -> np.ndarray`` of float64, one per pair.

:func:`build_quality` turns a spec string into one: ``"chrf"``, ``"chrf++"``, ``"bleu"``
(sacrebleu, BLEU with effective order as sentence BLEU should be), or
``"comet:/path/to/checkpoint.ckpt"`` for a COMET model the user has on disk, through the
optional extra ``pip install 'simulpo[comet]'`` (``unbabel-comet``). Models that run on
plain transformers (:mod:`simulpo.rewards.model_quality`): ``"metricx24:DIR"``,
``"metricx24-qe:DIR"``, ``"metricx23:DIR"``, ``"metricx23-qe:DIR"``, ``"metricx:DIR"`` /
``"metricx-qe:DIR"`` (version from the directory) for a local MetricX (lower is better,
0–25), and ``"qe:DIR"`` for a local reference-free QE model with one regression output.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sacrebleu.metrics import BLEU, CHRF

from simulpo.errors import ConfigError
from simulpo.metrics.quality import bleu_tokenizer
from simulpo.rewards.model_quality import MODEL_QUALITY_SPECS, build_model_quality

__all__ = [
    "QUALITY_SPECS",
    "Bleu",
    "Chrf",
    "Comet",
    "QualityMetric",
    "build_quality",
]

logger = logging.getLogger(__name__)

#: the spec strings :func:`build_quality` understands (``…:PATH`` take a path after the colon).
QUALITY_SPECS = ("chrf", "chrf++", "chrf1", "bleu", "comet:PATH", *MODEL_QUALITY_SPECS)


@runtime_checkable
class QualityMetric(Protocol):
    name: str
    higher_is_better: bool
    worst: float
    threshold: float

    def __call__(
        self,
        hypotheses: Sequence[str],
        references: Sequence[str],
        sources: Sequence[str] | None = None,
    ) -> np.ndarray:
        """One score per hypothesis (float64); ``sources`` is used by source-aware metrics."""
        ...


def _pairs(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references; they must pair up"
        )


class Chrf:
    """Sentence chrF (Popović 2015), sacrebleu defaults (character 6-grams, beta 2), 0–100.

    ``word_order=2`` gives chrF++ (adds word uni- and bigrams). An empty hypothesis scores 0.
    ``beta`` weighs recall ``beta`` times as much as precision: with the default 2, writing
    extra words costs little, and an RL policy rewarded by it learns to over-generate
    (which also lowers its AL); ``beta=1`` (spec ``chrf1``, character F1) makes a wrong
    extra word cost as much as a missing one.
    """

    higher_is_better = True
    worst = 0.0
    threshold = 30.0  # random words of the target vocabulary score ~20, repeated words ~6

    def __init__(self, word_order: int = 0, beta: int = 2) -> None:
        self._metric = CHRF(word_order=word_order, beta=beta)
        self.name = ("chrF++" if word_order else "chrF") + ("" if beta == 2 else f"(beta={beta})")

    def __call__(self, hypotheses, references, sources=None) -> np.ndarray:
        _pairs(hypotheses, references)
        score = self._metric.sentence_score
        return np.array([score(h, [r]).score for h, r in zip(hypotheses, references)], float)


class Bleu:
    """Sentence BLEU, 0–100, with effective order (n-gram orders longer than the hypothesis
    are left out instead of zeroing the score, Chen and Cherry 2014), and the tokenizer
    :func:`~simulpo.metrics.quality.bleu_tokenizer` picks for the target language."""

    name = "BLEU"
    higher_is_better = True
    worst = 0.0
    threshold = 20.0  # random words of the target vocabulary score ~3, repeated words ~13

    def __init__(self, target_lang: str | None = None) -> None:
        self._metric = BLEU(tokenize=bleu_tokenizer(target_lang), effective_order=True)

    def __call__(self, hypotheses, references, sources=None) -> np.ndarray:
        _pairs(hypotheses, references)
        score = self._metric.sentence_score
        return np.array([score(h, [r]).score for h, r in zip(hypotheses, references)], float)


class Comet:
    """A COMET model from a local checkpoint (``unbabel-comet``), scores usually in 0–1.

    ``checkpoint`` is the ``.ckpt`` file, or a model directory holding
    ``checkpoints/model.ckpt`` (what ``comet.download_model`` leaves). The model is loaded
    once, here; it runs on the GPU when torch sees one. Reference-free (QE) checkpoints
    such as CometKiwi ignore the references.
    """

    name = "COMET"
    higher_is_better = True
    worst = 0.0  # as HPO's code scores missing sentences under COMET
    threshold = 0.6

    def __init__(self, checkpoint: str | Path, batch_size: int = 16) -> None:
        path = Path(checkpoint).expanduser()
        if path.is_dir():
            path = path / "checkpoints" / "model.ckpt"
        if not path.is_file():
            raise ConfigError(
                f"no COMET checkpoint at {path}; give the .ckpt file or the model directory "
                "(e.g. comet:~/models/wmt22-comet-da/checkpoints/model.ckpt)"
            )
        try:
            import comet  # the optional extra, imported only when asked for
        except ImportError as e:
            raise ConfigError(
                "the COMET quality metric needs the optional extra: pip install 'simulpo[comet]' "
                f"(unbabel-comet); importing it failed: {e}"
            ) from e
        self.checkpoint = path
        self.batch_size = batch_size
        self.model: Any = comet.load_from_checkpoint(str(path))
        self.model.eval()

    def __call__(self, hypotheses, references, sources=None) -> np.ndarray:
        _pairs(hypotheses, references)
        if not hypotheses:
            return np.zeros(0)
        srcs = list(sources) if sources is not None else [""] * len(hypotheses)
        if len(srcs) != len(hypotheses):
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(srcs)} sources")
        data = [{"src": s, "mt": h, "ref": r} for s, h, r in zip(srcs, hypotheses, references)]
        import torch

        out = self.model.predict(
            data,
            batch_size=self.batch_size,
            gpus=1 if torch.cuda.is_available() else 0,
            progress_bar=False,
        )
        return np.asarray(out.scores, dtype=np.float64)


def build_quality(spec: str, *, target_lang: str | None = None) -> QualityMetric:
    """A sentence-level metric from its spec: ``chrf``, ``chrf++``, ``chrf1`` (character F1),
    ``bleu``, ``comet:PATH``, a MetricX ``metricx24:DIR`` (also ``metricx24-qe``,
    ``metricx23``, ``metricx23-qe``, ``metricx``, ``metricx-qe``; see
    :mod:`simulpo.rewards.model_quality`) or a reference-free ``qe:DIR``.

    ``target_lang`` picks BLEU's tokenizer (``zh``, ``ja-mecab``/``char``, else ``13a``).
    """
    key = spec.strip()
    low = key.lower()
    if low == "chrf":
        return Chrf()
    if low == "chrf++":
        return Chrf(word_order=2)
    if low == "chrf1":
        return Chrf(beta=1)
    if low == "bleu":
        return Bleu(target_lang)
    if low.startswith("comet:"):
        path = key.split(":", 1)[1].strip()
        if not path:
            raise ConfigError("comet: needs a checkpoint path, e.g. comet:/models/wmt22/model.ckpt")
        return Comet(path)
    model = build_model_quality(key)
    if model is not None:
        return model
    raise ConfigError(f"unknown quality metric {spec!r}; use one of {', '.join(QUALITY_SPECS)}")

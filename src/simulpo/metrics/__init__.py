"""Scoring: SimulEval-exact latency metrics (vectorized over a corpus) and BLEU/chrF."""

from simulpo.metrics.latency import (
    LATENCY_METRICS,
    Padded,
    average_lagging,
    average_proportion,
    average_token_delay,
    corpus_mean,
    differentiable_average_lagging,
    end_offset,
    latency_scores,
    length_adaptive_average_lagging,
    pad,
    start_offset,
)
from simulpo.metrics.quality import bleu_tokenizer, corpus_bleu, corpus_chrf
from simulpo.metrics.scores import format_scores_table, score_instances, score_path

__all__ = [
    "LATENCY_METRICS",
    "Padded",
    "average_lagging",
    "average_proportion",
    "average_token_delay",
    "bleu_tokenizer",
    "corpus_bleu",
    "corpus_chrf",
    "corpus_mean",
    "differentiable_average_lagging",
    "end_offset",
    "format_scores_table",
    "latency_scores",
    "length_adaptive_average_lagging",
    "pad",
    "score_instances",
    "score_path",
    "start_offset",
]

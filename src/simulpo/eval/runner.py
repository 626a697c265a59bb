"""Evaluate one policy on one test set: stream it, log it, score it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simulpo.eval.report import Row
from simulpo.eval.testset import Sentence
from simulpo.io import atomic_write_json
from simulpo.metrics.scores import EVAL_QUALITY_METRICS, score_instances
from simulpo.stream.instance_log import write_instances
from simulpo.stream.loop import Policy, run_stream
from simulpo.stream.segmenter import FixedWords


def evaluate(
    policy: Policy,
    segments: Sequence[Sentence],
    out_dir: str | Path,
    dataset: str,
    chunk_words: int = 1,
    unit: str = "word",
    target_lang: str | None = None,
    progress: bool = True,
) -> Row:
    """Run ``policy`` over ``segments`` in chunks of ``chunk_words`` source words.

    Writes ``out_dir/instances.log`` (SimulEval format, with its ``config.yaml``) and
    ``out_dir/scores.json`` and returns the report row: ``name``, ``dataset``,
    ``segments`` and every score key.
    """
    out_dir = Path(out_dir)
    episodes = run_stream(
        [s.source.split() for s in segments],
        policy,
        FixedWords(chunk_words),
        references=[s.reference for s in segments],
        unit=unit,
        progress=progress,
        desc=f"{dataset} {policy.name}",
    )
    records = [ep.to_instance() for ep in episodes]
    write_instances(out_dir / "instances.log", records, source_type="text")
    scores = score_instances(
        records, latency_unit=unit, target_lang=target_lang, quality_metrics=EVAL_QUALITY_METRICS
    )
    atomic_write_json(out_dir / "scores.json", scores)
    return {"name": policy.name, "dataset": dataset, "segments": len(segments), **scores}

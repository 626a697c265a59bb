"""``simulpo demo``: the main job on the embedded default, end to end on 2 CPU cores.

Builds the bundled data, then evaluates the classic baselines — wait-k (k = 1, 3, 5, 7),
local agreement and offline — over a real translator per test set: the grammar's
rule-based gold translator on the synthetic pair, Apertium on the Bible. Writes each
system's instance log and scores, ``report.json`` and a quality–latency plot.
"""

from __future__ import annotations

import logging
from pathlib import Path

from simulpo.data.build import build_all
from simulpo.eval.plot import plot_quality_latency
from simulpo.eval.report import Row, update_report
from simulpo.eval.runner import evaluate
from simulpo.eval.testset import load_test_set
from simulpo.policies import LocalAgreement, Offline, WaitK
from simulpo.translators import build_translator

log = logging.getLogger(__name__)

WAIT_KS = (1, 3, 5, 7)
#: Segments per test set with ``--quick`` (a smoke run for tests and impatient users).
QUICK_SEGMENTS = 40


def run_demo(out: str | Path = "runs/demo", quick: bool = False, progress: bool = True) -> list[Row]:
    """Run the demo into ``out``; returns the report rows."""
    out = Path(out)
    data = out / "data"
    log.info("Building the bundled corpora in %s ...", data)
    build_all(data, synthetic_sizes={"train": 200, "dev": 50, "test": 200} if quick else None)
    test_sets = [
        ("synthetic", data / "synthetic" / "test.jsonl", build_translator("grammar"), None),
        ("bible", data / "bible" / "test.jsonl", build_translator("apertium"), "es"),
    ]
    rows: list[Row] = []
    for dataset, path, translator, lang in test_sets:
        segments = load_test_set(path)
        if quick:
            segments = segments[:QUICK_SEGMENTS]
        policies = [*(WaitK(translator, k) for k in WAIT_KS), LocalAgreement(translator), Offline(translator)]
        for policy in policies:
            rows.append(
                evaluate(policy, segments, out / dataset / policy.name, dataset, target_lang=lang, progress=progress)
            )
    update_report(out / "report.json", rows)
    plot = plot_quality_latency(rows, out / "quality_latency.png", title="simulpo demo: baselines")
    log.info("Wrote %s and %s.", out / "report.json", plot)
    return rows

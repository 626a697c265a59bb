"""eval.runner: an evaluation folder is a SimulEval output folder as it is."""

import json

import pytest
from simuleval_cli import simuleval_score_only

from simulpo.eval.runner import evaluate
from simulpo.eval.testset import Sentence
from simulpo.metrics.scores import score_path
from simulpo.policies.schedules import WaitK

SOURCES = ["the dog runs fast today", "a cat sees the big dog now", "hello there"]


def test_simuleval_score_only_runs_on_an_eval_folder_and_gives_our_numbers(tmp_path, upper):
    segments = [Sentence(str(i), s, s.upper()) for i, s in enumerate(SOURCES)]
    row = evaluate(WaitK(upper, 2), segments, tmp_path / "wait-2", "toy", progress=False)
    assert (tmp_path / "wait-2" / "config.yaml").read_text() == (
        "source_type: text\ntarget_type: text\n"
    )
    theirs = simuleval_score_only(tmp_path / "wait-2")
    for name in ("BLEU", "LAAL", "AL", "AP", "DAL"):
        assert theirs[name] == pytest.approx(round(row[name], 3), abs=1e-9), name
    # SimulEval's quirk: re-read from its log, a text ATD takes its speech conventions
    # (docs/scoring-parity.md); simulpo gives that number with --source-type speech.
    assert row["ATD"] > 0 and theirs["ATD"] == 0.0
    as_speech = score_path(tmp_path / "wait-2", source_type="speech", output=tmp_path / "s.json")
    assert theirs["ATD"] == pytest.approx(round(as_speech["ATD"], 3))
    assert json.loads((tmp_path / "wait-2" / "scores.json").read_text())["AL"] == row["AL"]

"""A served run is scored like an eval: ``simulpo score`` reads the server's simulstream
metrics log (long form), and OmniSTEval, reading the same log as simulstream's format,
gives the same scores."""

import asyncio
import json

import numpy as np
import pytest

from simulpo.cli import main
from simulpo.data.audio import write_audio
from simulpo.serve.client import stream_file
from simulpo.serve.metrics_log import MetricsLog, as_hypotheses


class Lengths:
    """Writes, per chunk, the number of samples it read."""

    name = "lengths"

    def act(self, states):
        return [str(len(s.new_chunk)) for s in states]


def test_score_reads_a_served_metrics_log_like_omnisteval(serve, tmp_path):
    wav = write_audio(tmp_path / "talk.wav", np.full(6400, 0.1, np.float32))  # 0.4 s
    log = tmp_path / "metrics.jsonl"
    _, url = serve(Lengths(), MetricsLog(log), chunk_ms=150)
    asyncio.run(stream_file("ws" + url[4:] + "/", wav))
    # chunks of 2400 samples end at 150, 300 and 400 ms: "2400" "2400" "1600"
    hyp = as_hypotheses(log, tmp_path / "out")
    [row] = [json.loads(x) for x in hyp.read_text().splitlines()]
    elapsed = row.pop("elapsed")  # the delay plus the measured computation time
    assert row == {
        "source": "talk",
        "prediction": "2400 2400 1600",
        "delays": [150.0, 300.0, 400.0],
    }
    assert all(e >= d for e, d in zip(elapsed, row["delays"])) and len(elapsed) == 3
    segments, refs = tmp_path / "talk.yaml", tmp_path / "refs.txt"
    segments.write_text(
        "- {duration: 0.2, offset: 0.0, wav: talk.wav}\n- {duration: 0.2, offset: 0.2, wav: talk.wav}\n"
    )
    refs.write_text("2400\n2400 1600\n")
    out = tmp_path / "out"
    args = ["score", str(log), "--segments", str(segments), "--references", str(refs)]
    args += ["--quality-metrics", "BLEU", "chrF"]
    assert main([*args, "--output", str(out)]) == 0
    ours = json.loads((out / "scores.json").read_text())

    io = pytest.importorskip("omnisteval.io")
    resegment = pytest.importorskip("omnisteval.resegment")
    scoring = pytest.importorskip("omnisteval.scoring")
    config = tmp_path / "eval.yaml"
    config.write_text("detokenizer_type: simuleval\nlatency_unit: word\n")
    inputs = io.load_resegmentation_inputs(
        str(segments), None, str(refs), str(log), "simulstream", simulstream_config_file=str(config)
    )
    instances, _ = resegment.resegment(*inputs, char_level=False)
    theirs, _, _ = scoring.evaluate_instances(instances, is_longform=True)
    assert ours["BLEU"] == theirs["bleu"] and ours["chrF"] == theirs["chrf"]
    assert ours["LongYAAL"] == theirs["long_yaal"]

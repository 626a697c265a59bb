"""``simulpo score`` as a user runs it: SimulEval's options and numbers, long-form reports,
no torch on the way, quiet under ``| head``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from simulpo.cli import main
from simulpo.stream.instance_log import write_instances

pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated")

SRC = str(Path(__file__).resolve().parents[2] / "src")


def run_simulpo(*args: str, stdout=subprocess.PIPE) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen(
        [sys.executable, "-m", "simulpo.cli", *args], stdout=stdout, stderr=subprocess.PIPE,
        env=env, text=True,
    )


def table(out: str) -> dict[str, list[str]]:
    rows = [line.split() for line in out.splitlines()[2:] if line.strip()]
    return {r[0]: r[1:] for r in rows}


def test_simuleval_options(tmp_path, logs, capsys):
    log = write_instances(tmp_path / "run" / "instances.log", logs.speech(30, n=60))
    args = ["score", str(log), "--output", str(tmp_path / "s.json")]
    assert main(args) == 0
    default = table(capsys.readouterr().out)
    # SimulEval's default report, plus StartOffset and EndOffset; no chrF unless asked
    assert list(default) == ["BLEU", "LAAL", "AL", "AP", "DAL", "ATD", "StartOffset", "EndOffset"]
    assert all(len(v) == 2 for k, v in default.items() if k != "BLEU")  # with comp.-aware
    assert main([*args, "--quality-metrics", "chrF", "BLEU", "--latency-metrics", "AL",
                 "NumChunks", "--computation-aware", "off"]) == 0
    picked = table(capsys.readouterr().out)
    assert list(picked) == ["chrF", "BLEU", "AL", "NumChunks"]
    assert picked["AL"] == default["AL"][:1] and picked["BLEU"] == default["BLEU"]
    assert set(json.loads((tmp_path / "s.json").read_text())) == set(picked)
    # SimulEval's bare --computation-aware, --no-use-ref-len, --eval-latency-unit
    assert main([*args, "--latency-metrics", "AL", "--computation-aware", "--no-use-ref-len",
                 "--eval-latency-unit", "word"]) == 0
    other = table(capsys.readouterr().out)
    assert len(other["AL"]) == 2 and other["AL"] != default["AL"]


def test_unknown_metric_is_one_line(tmp_path, capsys):
    assert main(["score", str(tmp_path), "--latency-metrics", "LAGG"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simulpo: error: unknown latency metric 'LAGG'") and "Traceback" not in err


def test_a_report_json_is_not_an_instances_log(tmp_path, capsys):
    report = tmp_path / "report.json"
    report.write_text(json.dumps([{"name": "wait-3", "BLEU": 20.0}], indent=2))
    assert main(["score", str(report)]) == 2
    err = capsys.readouterr().err
    assert f"{report}:1: malformed JSON" in err
    assert "expects a SimulEval instances.log" in err and "--segments and --references" in err
    # a problem further down a real log is that line's, without the hint
    log = write_instances(tmp_path / "instances.log", [
        {"prediction": "a", "delays": [1], "source_length": 2, "reference": "a"},
        {"prediction": "a", "delays": [], "source_length": 2, "reference": "a"},
    ])
    assert main(["score", str(log)]) == 2
    err = capsys.readouterr().err
    assert f"{log}:2: 'delays' has 0 values" in err and "expects" not in err


@pytest.mark.skipif(shutil.which("simuleval", path=str(Path(sys.executable).parent)) is None,
                    reason="SimulEval's command is not installed (scripts/setup.sh --test)")
def test_printed_numbers_equal_simuleval_score_only(tmp_path, logs):
    """The two commands side by side on one speech log: every number SimulEval prints."""
    run = tmp_path / "run"
    write_instances(run / "instances.log", logs.speech(31, n=80))
    (run / "config.yaml").write_text("source_type: speech\ntarget_type: text\n")
    simuleval = Path(sys.executable).parent / "simuleval"
    done = subprocess.run([str(simuleval), "--score-only", "--output", str(run)],
                          capture_output=True, text=True, check=True)
    header, values = done.stdout.strip().splitlines()[-2:]
    names = header.split()
    theirs = dict(zip(names, values.split()[-len(names):]))  # (pandas may print an index)
    assert list(theirs) == ["BLEU", "LAAL", "AL", "AP", "DAL", "ATD"]
    p = run_simulpo("score", str(run), "--output", str(tmp_path / "s.json"),
                    "--computation-aware", "off")
    out, err = p.communicate()
    assert p.returncode == 0, err
    ours = table(out)
    for name, value in theirs.items():
        assert float(ours[name][0]) == pytest.approx(float(value), abs=1e-12), name


def test_scoring_imports_neither_torch_nor_transformers(tmp_path, logs):
    log = write_instances(tmp_path / "instances.log", logs.text(32, n=30))
    code = (
        "import sys; from simulpo.cli import main; "
        f"rc = main(['score', {str(log)!r}, '--quality-metrics', 'BLEU', 'chrF']); "
        "print(rc, sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": SRC}, check=True)
    assert done.stdout.strip().splitlines()[-1] == "0 []"


def test_closed_pipe_is_quiet(tmp_path, logs):
    """``simulpo score ... | head``: the reader is gone before anything is written."""
    log = write_instances(tmp_path / "instances.log", logs.text(33, n=30))
    read, write = os.pipe()
    p = run_simulpo("score", str(log), stdout=write)
    os.close(write)
    os.close(read)  # like head after its lines: nobody reads
    _, err = p.communicate(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert p.returncode == 141


def longform_inputs(tmp_path, **extra):
    hyp = tmp_path / "hyp.jsonl"
    hyp.write_text(json.dumps({
        "source": "talk.wav", "prediction": "a b c d e", "delays": [1500, 2000, 3000, 4500, 5200],
        "elapsed": [1600, 2300, 3500, 5200, 6000], **extra,
    }) + "\n")
    seg = tmp_path / "segments.yaml"
    seg.write_text("- {wav: talk.wav, offset: 1.0, duration: 2.0}\n"
                   "- {wav: talk.wav, offset: 4.0, duration: 1.0}\n")
    ref = tmp_path / "ref.txt"
    ref.write_text("a b c\nd e\n")
    return [str(hyp), "--segments", str(seg), "--references", str(ref)]


def test_longform_report(tmp_path, capsys):
    assert main(["score", *longform_inputs(tmp_path), "--output", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["metric", "value", "comp.-aware"]
    # IWSLT 2026: LongYAAL (the ranking latency) first, its CA beside it, StreamLAAL next
    assert out[2].split()[0] == "LongYAAL" and out[3].split()[0] == "StreamLAAL"
    assert [r.split()[0] for r in out[4:9]] == ["LongAL", "LongLAAL", "LongAP", "LongDAL", "BLEU"]
    # LongYAAL 500 ms (hand value: tests/metrics/test_longform.py), within 0-2 s
    assert out[2].split()[1] == "500.000"
    assert "IWSLT 2026 regime: low latency (LongYAAL 0.500 s" in out[9]
    assert main(["score", *longform_inputs(tmp_path), "--output", str(tmp_path / "o"),
                 "--computation-aware", "off", "--latency-metrics", "longyaal"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [r.split()[0] for r in out[2:4]] == ["LongYAAL", "BLEU"] and len(out[2].split()) == 2


def test_longform_options_that_do_not_apply(tmp_path, capsys):
    assert main(["score", *longform_inputs(tmp_path), "--no-use-ref-len"]) == 2
    assert "for instances.log scoring" in capsys.readouterr().err
    assert main(["score", str(tmp_path), "--lang", "en"]) == 2
    assert "--lang is for long-form scoring" in capsys.readouterr().err

"""``simulpo score --comet-model``: COMET / XCOMET run in COMET's own environment.

The models are tiny randomly initialised ones of COMET's real architectures (COMET-22's
regression metric over XLM-R, XCOMET over XLM-R-XL), built and saved in COMET's format by
``comet_tiny.py`` inside that environment; the truth is COMET's own
``load_from_checkpoint(...).predict(...)`` on the same sentences, in a separate process.
With random weights nothing is asserted about which translation scores higher.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from simulpo.cli import main
from simulpo.errors import SimulpoError
from simulpo.metrics.comet import CometModel, comet_python
from simulpo.stream.instance_log import write_instances

TINY = Path(__file__).with_name("comet_tiny.py")
RECORDS = [
    {"index": 0, "prediction": "the house of a", "delays": [1, 2, 3, 3], "elapsed": [0] * 4,
     "reference": "the house", "source": "la casa de", "source_length": 3},
    {"index": 1, "prediction": "a green river", "delays": [2, 3, 3], "elapsed": [0] * 3,
     "reference": "a green river sings", "source": "un rio verde canta", "source_length": 4},
    {"index": 2, "prediction": "", "delays": [], "elapsed": [], "reference": "never",
     "source": "nunca", "source_length": 1},
]


def _comet_env() -> Path | None:
    try:
        return comet_python()
    except SimulpoError:
        return None


PYTHON = _comet_env()
needs_comet = pytest.mark.skipif(
    PYTHON is None,
    reason="COMET's environment (.venv-comet) is not installed: bash scripts/setup.sh --comet",
)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("comet")
    subprocess.run([str(PYTHON), str(TINY), "build", str(root)], check=True,
                   capture_output=True, timeout=600)
    return root


def comet_predict(checkpoint: Path, samples: list[dict], tmp: Path, batch_size: int = 16):
    """COMET's own numbers for ``samples``, computed by COMET's API in its environment."""
    (tmp / "samples.json").write_text(json.dumps(samples))
    subprocess.run([str(PYTHON), str(TINY), "predict", str(checkpoint), str(tmp / "samples.json"),
                    str(batch_size), str(tmp / "truth.json")],
                   check=True, capture_output=True, timeout=600)
    return json.loads((tmp / "truth.json").read_text())


def table(out: str) -> dict[str, str]:
    rows = [line.split() for line in out.splitlines()[2:] if line.strip()]
    return {r[0]: r[1] for r in rows if len(r) >= 2}


@needs_comet
def test_sentence_level_comet_is_comets_own(tmp_path, models, capsys):
    log = write_instances(tmp_path / "run" / "instances.log", RECORDS)
    assert main(["score", str(log), "--comet-model", str(models / "regression"),
                 "--comet-batch-size", "2"]) == 0
    out = capsys.readouterr().out
    # beside BLEU, before the latencies; the model named
    assert list(table(out))[:3] == ["BLEU", "COMET", "LAAL"]
    assert f"COMET model: {models / 'regression' / 'checkpoints' / 'model.ckpt'}" in out
    scores = json.loads((tmp_path / "run" / "scores.json").read_text())
    detail = json.loads((tmp_path / "run" / "comet.json").read_text())
    samples = [{"src": r["source"], "mt": r["prediction"], "ref": r["reference"]} for r in RECORDS]
    truth = comet_predict(models / "regression" / "checkpoints" / "model.ckpt", samples,
                          tmp_path, batch_size=2)
    assert scores["COMET"] == truth["system_score"]
    assert detail["scores"] == truth["scores"] and detail["class_identifier"] == "regression_metric"
    assert detail["pretrained_model"] == str(models / "xlmr")


@needs_comet
def test_longform_xcomet_on_the_resegmented_sentences(tmp_path, models, capsys):
    hyp = tmp_path / "hyp.jsonl"
    hyp.write_text(json.dumps({"source": "talk.wav", "prediction": "the house of a green river",
                               "delays": [1500, 2000, 3000, 4500, 5200, 5400]}) + "\n")
    seg = tmp_path / "segments.yaml"
    seg.write_text("- {wav: talk.wav, offset: 1.0, duration: 2.0}\n"
                   "- {wav: talk.wav, offset: 4.0, duration: 1.5}\n")
    ref = tmp_path / "ref.txt"
    ref.write_text("the house of\na green river\n")
    src = tmp_path / "src.txt"
    src.write_text("la casa de\nun rio verde\n")
    out_dir = tmp_path / "o"
    assert main(["score", str(hyp), "--segments", str(seg), "--references", str(ref),
                 "--comet-model", str(models / "xcomet"), "--comet-sources", str(src),
                 "--output", str(out_dir)]) == 0
    out = capsys.readouterr().out
    keys = list(table(out))
    assert keys[0] == "LongYAAL" and keys[keys.index("BLEU") + 1] == "XCOMET"
    pieces = [json.loads(line) for line in (out_dir / "instances.resegmented.jsonl").open()]
    samples = [{"src": s, "mt": p["prediction"], "ref": p["reference"]}
               for s, p in zip(["la casa de", "un rio verde"], pieces)]
    truth = comet_predict(models / "xcomet" / "checkpoints" / "model.ckpt", samples, tmp_path)
    scores = json.loads((out_dir / "scores.json").read_text())
    assert scores["XCOMET"] == truth["system_score"]
    assert json.loads((out_dir / "comet.json").read_text())["scores"] == truth["scores"]
    assert f"IWSLT 2026 quality: XCOMET {truth['system_score']:.4f}" in out


@needs_comet
def test_a_model_that_needs_sources_says_so(tmp_path, models):
    comet = CometModel.find(models / "regression", PYTHON)
    with pytest.raises(SimulpoError, match=r"needs the source sentences: give --comet-sources"):
        comet.score(["a b"], ["a b"])  # speech: no source text


def test_clear_errors_without_comet(tmp_path, capsys):
    log = write_instances(tmp_path / "instances.log", RECORDS)
    model = tmp_path / "model"
    (model / "checkpoints").mkdir(parents=True)
    assert main(["score", str(log), "--comet-model", str(tmp_path / "none")]) == 2
    assert f"COMET checkpoint {tmp_path / 'none'} not found" in capsys.readouterr().err
    (model / "checkpoints" / "model.ckpt").write_bytes(b"")
    assert main(["score", str(log), "--comet-model", str(model)]) == 2
    assert f"{model / 'hparams.yaml'} is missing" in capsys.readouterr().err
    (model / "hparams.yaml").write_text("class_identifier: regression_metric\n")
    assert main(["score", str(log), "--comet-model", str(model),
                 "--comet-python", str(tmp_path / "venv" / "bin" / "python")]) == 2
    assert "no COMET Python at" in capsys.readouterr().err
    # a worker that dies: its last stderr line is the error
    crash = tmp_path / "python"
    crash.write_text("#!/bin/sh\necho 'Traceback (most recent call last):' >&2\n"
                     "echo 'RuntimeError: out of memory' >&2\nexit 3\n")
    crash.chmod(0o755)
    assert main(["score", str(log), "--comet-model", str(model), "--comet-python", str(crash)]) == 2
    err = capsys.readouterr().err
    assert "failed with exit status 3: RuntimeError: out of memory" in err
    assert "Traceback" not in err
    sources = tmp_path / "src.txt"
    sources.write_text("one\ntwo\n")
    assert main(["score", str(log), "--comet-model", str(model), "--comet-python", str(crash),
                 "--comet-sources", str(sources)]) == 2
    assert "2 source sentences for 3 instances" in capsys.readouterr().err
    assert main(["score", str(log), "--comet-sources", str(sources)]) == 2
    assert "--comet-sources goes with --comet-model" in capsys.readouterr().err


def test_missing_environment_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("SIMULPO_COMET_PYTHON", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("simulpo.metrics.comet.__file__", str(tmp_path / "a" / "b" / "c" / "d.py"))
    with pytest.raises(SimulpoError, match=r"bash scripts/setup.sh --comet"):
        comet_python()

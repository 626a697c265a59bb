"""End-to-end checks of the ``simulpo`` command: eval → report → plot → score."""

import json

import pytest

from simulpo.cli import main
from simulpo.data.synthetic import generate_splits


def write_test_set(tmp_path, n=12):
    pairs = generate_splits(5, {"test": n})["test"]
    src, ref = tmp_path / "test.src", tmp_path / "test.tgt"
    src.write_text("".join(p.source + "\n" for p in pairs), encoding="utf-8")
    ref.write_text("".join(p.target + "\n" for p in pairs), encoding="utf-8")
    return src, ref, pairs


def test_eval_report_plot_and_score(tmp_path, capsys):
    src, ref, pairs = write_test_set(tmp_path)
    out = tmp_path / "runs"
    for policy in ("offline", "wait-3"):
        rc = main(["eval", "--source", str(src), "--reference", str(ref), "--translator", "grammar",
                   "--policy", policy, "--output", str(out), "--dataset", "syn", "--no-progress"])
        assert rc == 0
    rows = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in rows] == ["offline", "wait-3"]
    offline = rows[0]
    # The grammar translator reproduces the gold references, and offline waits for the end.
    assert offline["BLEU"] == pytest.approx(100.0) and offline["chrF"] == pytest.approx(100.0)
    lengths = [len(p.src) for p in pairs]
    assert offline["AP"] == 1.0
    assert abs(offline["AL"] - sum(lengths) / len(lengths)) < 1e-9  # AL of read-all = |X|
    log = (out / "syn" / "wait-3" / "instances.log").read_text().splitlines()
    assert len(log) == len(pairs)
    first = json.loads(log[0])
    assert min(first["delays"]) >= 3 and first["source_length"] == len(pairs[0].src)

    png = tmp_path / "plot.png"
    assert main(["plot", str(out / "report.json"), "--output", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"

    capsys.readouterr()
    assert main(["score", str(out / "syn" / "wait-3"), "--output", str(tmp_path / "s.json")]) == 0
    table = capsys.readouterr().out
    assert "LAAL" in table and "BLEU" in table
    rescored = json.loads((tmp_path / "s.json").read_text())
    assert rescored["LAAL"] == rows[1]["LAAL"] and rescored["BLEU"] == rows[1]["BLEU"]


def test_user_errors_are_one_line_without_traceback(tmp_path, capsys):
    src, _, _ = write_test_set(tmp_path, 3)
    bad_ref = tmp_path / "bad.tgt"
    bad_ref.write_text("only one line\n")
    rc = main(["eval", "--source", str(src), "--reference", str(bad_ref), "--translator", "grammar",
               "--output", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip().splitlines() == [
        f"simulpo: error: {bad_ref}: 1 reference lines but 3 source lines in {src}"
    ]
    assert main(["eval", "--source", str(src), "--policy", "wait-0x", "--translator", "grammar"]) == 2
    assert "unknown policy" in capsys.readouterr().err
    assert main(["score", str(tmp_path / "missing")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_eval_takes_any_local_causal_lm_through_model(tmp_path):
    """A second architecture (Llama, untrained) runs as the LLM policy and as the offline
    LLM translator under wait-k: plumbing only, the words mean nothing."""
    from simulpo.data.synthetic import generate_corpus
    from simulpo.models.lm import build_tiny_lm, save_model
    from simulpo.models.tokenizer import train_tokenizer

    corpus = generate_corpus(100, seed=3)
    tok = train_tokenizer([p.source for p in corpus] + [p.target for p in corpus], vocab_size=300)
    model = build_tiny_lm(tok, arch="llama", hidden_size=32, num_layers=1, num_heads=2)
    model_dir = save_model(model, tok, tmp_path / "llama")
    src, ref, pairs = write_test_set(tmp_path, n=3)
    out = tmp_path / "runs"
    common = ["--source", str(src), "--reference", str(ref), "--model", str(model_dir),
              "--max-new-tokens", "12", "--output", str(out), "--dataset", "syn", "--no-progress"]
    assert main(["eval", "--policy", "llm", *common]) == 0
    assert main(["eval", "--translator", "llm", "--policy", "wait-3", *common]) == 0
    assert [r["name"] for r in json.loads((out / "report.json").read_text())] == ["llm", "wait-3"]
    for name, least in (("llm", 1), ("wait-3", 3)):
        for line, pair in zip((out / "syn" / name / "instances.log").read_text().splitlines(), pairs):
            delays = json.loads(line)["delays"]
            assert delays == sorted(delays)
            assert all(min(least, len(pair.src)) <= d <= len(pair.src) for d in delays)

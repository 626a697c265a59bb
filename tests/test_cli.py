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


def test_eval_names_rows_by_their_parameters_and_name_wins(tmp_path):
    src, ref, _ = write_test_set(tmp_path, 3)
    out = tmp_path / "runs"
    common = ["--source", str(src), "--reference", str(ref), "--translator", "grammar",
              "--output", str(out), "--dataset", "syn", "--no-progress"]
    for chunk in ("2", "4"):
        assert main(["eval", "--policy", "fixed-chunk", "--chunk-words", chunk, *common]) == 0
    for policy in ("fixed-chunk", "local-agreement", "offline", "wait-k"):
        assert main(["eval", "--policy", policy, "--name", f"my-{policy}", *common]) == 0
    rows = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in rows] == [
        "fixed-2", "fixed-4", "my-fixed-chunk", "my-local-agreement", "my-offline", "my-wait-k",
    ]
    assert rows[0]["AL"] != rows[1]["AL"]  # two chunk sizes, two rows


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
    assert main(["eval", "--source", str(src), "--reference", str(src), "--policy", "wait-0x",
                 "--translator", "grammar"]) == 2
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


def write_speech_folder(root, utterances=6, seconds=2.0, gap=0.5):
    """A speech data folder as `simulpo data speech` lays it out: one recording of
    ``utterances`` noise-and-tone utterances of ``seconds`` each, ``gap`` s apart."""
    import numpy as np

    from simulpo.data.audio import write_audio

    folder = root / "speech" / "synthetic"
    rng = np.random.default_rng(0)
    total = utterances * (seconds + gap)
    t = np.arange(round(total * 16000)) / 16000
    audio = 0.2 * np.sin(2 * np.pi * 300 * t) + 0.05 * rng.standard_normal(len(t))
    write_audio(folder / "wav" / "test_000.wav", audio.astype(np.float32))
    lines, yaml = [], []
    for k in range(utterances):
        offset = round(k * (seconds + gap), 3)
        lines.append({
            "id": f"test-{k}", "source": "the dog runs", "reference": "THE DOG RUNS",
            "wav": "test_000.wav", "offset": offset, "duration": seconds, "voice": "en",
            "rate": 175, "word_starts": [0, 400, 800],
        })  # fmt: skip
        yaml.append(f"- {{duration: {seconds}, offset: {offset}, wav: test_000.wav}}\n")
    (folder / "test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (folder / "test.yaml").write_text("".join(yaml))
    return folder


def test_eval_speech_llm_sentence_level_and_long_form(tmp_path, capsys, one_thread):
    """`simulpo eval --speech DATA --policy llm --model DIR`: a tiny saved speech model and
    a tiny saved Whisper encoder, sentence by sentence and over the whole recording (with a
    bounded cache), at 1 and 2 chunks a turn."""
    from tiny_lm import save_tiny_whisper, tiny_speech_parts

    from simulpo.models.lm import save_model
    from simulpo.models.projector import SpeechLM

    lm, tokenizer, _, projector, speech_id = tiny_speech_parts()
    SpeechLM(lm, projector, speech_id).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    save_tiny_whisper(tmp_path / "whisper")
    write_speech_folder(tmp_path / "data")
    out = tmp_path / "out"
    args = ["eval", "--speech", str(tmp_path / "data"), "--policy", "llm",
            "--model", str(tmp_path / "model"), "--speech-encoder", str(tmp_path / "whisper"),
            "--chunk-ms", "240", "--context-ms", "480", "--chunks-per-turn", "1,2",
            "--max-piece-tokens", "4", "--max-new-tokens", "8", "--output", str(out),
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    # 15 s in 240 ms turns with 4-token pieces pass a 256-token window many times over.
    assert main([*args, "--long-form", "--cache-window", "256"]) == 0
    rows = json.loads((out / "report.json").read_text())
    assert sorted((r["dataset"], r["name"], r["chunk_ms"]) for r in rows) == [
        ("synthetic-test", "llm-1", 240), ("synthetic-test", "llm-2", 480),
        ("synthetic-test-longform", "llm-1", 240), ("synthetic-test-longform", "llm-2", 480),
    ]  # fmt: skip
    assert all({"BLEU", "chrF"} <= set(r) for r in rows)
    assert {"LAAL", "LAAL_CA"} <= set(rows[0]) and "StreamLAAL" in rows[-1]
    log = (out / "synthetic-test" / "llm-2" / "instances.log").read_text().splitlines()
    assert len(log) == 6 and all(json.loads(x)["source_length"] == 2000 for x in log)
    hypotheses = out / "synthetic-test-longform" / "llm-1" / "hypotheses.jsonl"
    (line,) = hypotheses.read_text().splitlines()
    delays = json.loads(line)["delays"]
    assert delays == sorted(delays) and delays[-1] == 15000 and len(delays) > 20
    capsys.readouterr()

    # Clear errors: a window too small, no model, a text model, a chunk off the frame grid.
    assert main([*args, "--long-form", "--cache-window", "60"]) == 2
    assert "cache_window=60 is too small" in capsys.readouterr().err
    assert main(args[:5] + args[7:]) == 2
    assert "--policy llm needs --model PATH" in capsys.readouterr().err
    save_model(lm, tokenizer, tmp_path / "text")
    assert main([*args, "--model", str(tmp_path / "text")]) == 2
    assert "there is no speech projector" in capsys.readouterr().err
    assert main([*args, "--chunk-ms", "250"]) == 2
    assert "--chunk-ms must be a multiple of 20" in capsys.readouterr().err

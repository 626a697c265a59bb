import json

import pytest
from simuleval_cli import simuleval_score_only
from speech_fakes import RunTranscriber, speech

from simulpo.cli import main
from simulpo.data.audio import write_audio
from simulpo.data.speech import load_speech_split
from simulpo.errors import InputError, SimulpoError
from simulpo.eval.speech import (
    edit_distance,
    evaluate_longform,
    evaluate_utterances,
    speech_folder,
)
from simulpo.metrics.longform import score_longform_files
from simulpo.policies.cascade import Cascade
from simulpo.policies.schedules import LocalAgreement

VOCAB = ["a", "b.", "c", "d."]
# One recording, two utterances: "a b." at 0-1 s and "c d." at 1.5-2.5 s (word times in ms).
UTTERANCES = [
    ("a b.", 0.0, 1.0, [("a", 100, 400), ("b.", 600, 900)]),
    ("c d.", 1.5, 1.0, [("c", 1600, 1900), ("d.", 2100, 2400)]),
]


@pytest.fixture
def folder(tmp_path):
    """A speech data folder as `simulpo data speech` lays it out, with scripted audio."""
    corpus = tmp_path / "speech" / "synthetic"
    words = [w for *_, spans in UTTERANCES for w in spans]
    write_audio(corpus / "wav" / "test_000.wav", speech(VOCAB, words, 2500))
    lines, yaml = [], []
    for k, (text, offset, duration, spans) in enumerate(UTTERANCES):
        starts = [round(s - offset * 1000) for _, s, _ in spans]
        lines.append(
            {
                "id": f"test-{k}",
                "source": text,
                "reference": text.upper(),
                "wav": "test_000.wav",
                "offset": offset,
                "duration": duration,
                "voice": "en",
                "rate": 175,
                "word_starts": starts,
            }
        )
        yaml.append(f"- {{duration: {duration}, offset: {offset}, wav: test_000.wav}}\n")
    (corpus / "test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (corpus / "test.yaml").write_text("".join(yaml))
    return corpus


def cascade(upper):
    return Cascade(RunTranscriber(VOCAB), LocalAgreement(upper))


def test_sentence_level_logs_and_scores(folder, tmp_path, upper):
    # By hand, 500 ms chunks of "a b." (1000 ms): a is committed at 1000 ms, "b." at the end;
    # local agreement writes "A B." at 1000 ms. LAAL: the first delay already reaches the
    # source length, so LAAL = 1000; "c d." alike.
    utterances = load_speech_split(folder, "test")
    row = evaluate_utterances(cascade(upper), utterances, tmp_path / "out", "toy", chunk_ms=500)
    log = [json.loads(x) for x in (tmp_path / "out" / "instances.log").read_text().splitlines()]
    assert [r["prediction"] for r in log] == ["A B.", "C D."]
    assert [r["delays"] for r in log] == [[1000, 1000], [1000, 1000]]
    assert [r["source_length"] for r in log] == [1000, 1000]
    assert [r["transcript"] for r in log] == ["a b.", "c d."]
    assert row["chrF"] == pytest.approx(100)  # (too short for BLEU 4-grams)
    assert row["LAAL"] == pytest.approx(1000) and row["WER"] == 0
    assert row["LAAL_CA"] >= row["LAAL"]
    assert json.loads((tmp_path / "out" / "scores.json").read_text())["LAAL"] == row["LAAL"]


def test_simuleval_score_only_runs_on_a_speech_eval_folder(folder, tmp_path, upper):
    utterances = load_speech_split(folder, "test")
    out = tmp_path / "out"
    row = evaluate_utterances(cascade(upper), utterances, out, "toy", chunk_ms=500)
    assert (out / "config.yaml").read_text() == "source_type: speech\ntarget_type: text\n"
    theirs = simuleval_score_only(out)
    for name in ("LAAL", "AL", "AP", "DAL", "ATD"):
        assert theirs[name] == pytest.approx(round(row[name], 3), abs=1e-9), name
    # SimulEval's quirk: with --computation-aware the plain names print the CA values too
    aware = simuleval_score_only(out, "--computation-aware")
    for name in ("LAAL", "AL", "AP", "DAL", "ATD"):
        assert aware[f"{name}_CA"] == pytest.approx(round(row[f"{name}_CA"], 3), abs=1e-9)
        assert aware[name] == aware[f"{name}_CA"]
    assert row["LAAL_CA"] > row["LAAL"]


def test_long_form_is_one_stream_per_recording(folder, tmp_path, upper):
    # By hand, 500 ms chunks over the whole 2.5 s recording: "A B." is written at 1500 ms,
    # "C D." at 2500 ms. StreamLAAL: sentence 1 has delays [1500, 1500] against 1000 ms of
    # source (LAAL 1500), sentence 2 [1000, 1000] after its 1500 ms offset (LAAL 1000).
    out = tmp_path / "out"
    row = evaluate_longform(cascade(upper), folder, "test", out, "toy", chunk_ms=500)
    (line,) = [json.loads(x) for x in (out / "hypotheses.jsonl").read_text().splitlines()]
    assert line["source"] == "test_000.wav"
    assert line["prediction"] == "A B. C D."
    assert line["delays"] == [1500, 1500, 2500, 2500]
    assert row["StreamLAAL"] == pytest.approx(1250)
    assert row["chrF"] == pytest.approx(100) and row["WER"] == 0
    assert row["recordings"] == 1 and row["segments"] == 2
    # the files written are the scorer's own inputs: scoring them again gives the row
    again = score_longform_files(
        out / "hypotheses.jsonl", out / "segments.yaml", out / "references.txt", tmp_path / "again"
    )
    assert again == {k: row[k] for k in again}


def test_segment_file_that_does_not_match_the_utterances(folder, tmp_path, upper):
    yaml = folder / "test.yaml"
    yaml.write_text(
        yaml.read_text().replace("duration: 1.0, offset: 1.5", "duration: 0.9, offset: 1.5")
    )
    with pytest.raises(InputError, match="segment 2 .* does not match"):
        evaluate_longform(cascade(upper), folder, "test", tmp_path / "out", "toy")
    yaml.write_text(yaml.read_text().splitlines()[0] + "\n")
    with pytest.raises(InputError, match="1 segments but 2 utterances"):
        evaluate_longform(cascade(upper), folder, "test", tmp_path / "out", "toy")


def test_a_recording_shorter_than_its_segments_is_refused_before_streaming(folder, tmp_path):
    from simulpo.data.audio import read_audio

    wav = folder / "wav" / "test_000.wav"
    write_audio(wav, read_audio(wav)[: 16000 * 2])  # 2.0 s left of 2.5 s; "c d." ends at 2.5
    never = Cascade(RunTranscriber(VOCAB), None)  # streaming it would fail: it must not start
    with pytest.raises(
        InputError, match=r"test_000.wav: the recording lasts 2.00 s but its segment at 1.5 s "
        r"in test.yaml ends at 2.50 s"
    ):
        evaluate_longform(never, folder, "test", tmp_path / "out", "toy", chunk_ms=500)


def test_speech_folder(folder, tmp_path):
    data = folder.parent.parent
    assert speech_folder(data, "synthetic") == folder
    assert speech_folder(folder, "synthetic") == folder
    with pytest.raises(SimulpoError, match="simulpo data speech"):
        speech_folder(data, "bible")


def test_edit_distance():
    assert edit_distance(["a", "b", "c"], ["a", "c"]) == 1
    assert edit_distance(["a", "b"], ["x", "y", "z"]) == 3
    assert edit_distance(["k", "i", "t", "t", "e", "n"], ["s", "i", "t", "t", "i", "n", "g"]) == 3
    assert edit_distance([], ["a", "b"]) == 2 and edit_distance(["a"], []) == 1


def test_cli_eval_speech_writes_rows_and_plot(folder, tmp_path, monkeypatch, capsys):
    from simulpo.policies import asr

    monkeypatch.setattr(asr, "WhisperTranscriber", lambda *a, **k: RunTranscriber(VOCAB))
    out = tmp_path / "out"
    args = ["eval", "--speech", str(folder.parent.parent), "--corpus", "synthetic"]
    args += ["--chunk-ms", "500", "--chunks-per-turn", "1,2", "--output", str(out), "--no-progress"]
    assert main(args) == 0
    assert main([*args, "--long-form"]) == 0
    rows = json.loads((out / "report.json").read_text())
    assert sorted((r["dataset"], r["name"]) for r in rows) == [
        ("synthetic-test", "cascade-1"),
        ("synthetic-test", "cascade-2"),
        ("synthetic-test-longform", "cascade-1"),
        ("synthetic-test-longform", "cascade-2"),
    ]
    assert {r["chunk_ms"] for r in rows} == {500, 1000}
    assert (out / "quality_latency.png").stat().st_size > 0
    assert (out / "quality_latency_longform.png").stat().st_size > 0
    assert (out / "synthetic-test-longform" / "cascade-2" / "hypotheses.jsonl").exists()
    assert main([*args, "--policy", "wait-3"]) == 2
    assert "not a speech policy" in capsys.readouterr().err

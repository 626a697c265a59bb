"""Long-form scoring on hand-made streams: re-segmentations, StreamLAAL, LongYAAL, inputs, CLI.

Every expected value below is worked out by hand from the definitions (simulstream's
``stream_laal``, OmniSTEval's LongYAAL); ``test_longform_tools.py`` checks the same code
against the tools themselves.
"""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest

from simulpo.cli import main
from simulpo.errors import InputError
from simulpo.metrics.longform import (
    Recording,
    Segment,
    long_yaal,
    match_inputs,
    read_hypotheses,
    read_references,
    read_segments,
    resegment_mwer,
    resegment_soft,
    score_longform,
    score_longform_files,
    stream_laal,
)
from simulpo.metrics.resegment import mwer_segment, mwer_tokens, soft_segment, soft_units

# One recording, two sentences: "a b c" from 1 s for 2 s, "d e" from 4 s for 1 s.
SEGMENTS = [Segment("talk", 1000.0, 2000.0, "a b c"), Segment("talk", 4000.0, 1000.0, "d e")]


def recording(prediction: str, delays, elapsed=None) -> Recording:
    e = None if elapsed is None else np.array(elapsed, float)
    return Recording("talk", prediction, np.array(delays, float), e)


def mwer(refs, hyp):
    return list(mwer_segment([([mwer_tokens(r) for r in refs], hyp.split())])[0])


def soft(refs, hyp, char_level=False):
    units = [soft_units(r, char_level, reference=True) for r in refs]
    return list(
        soft_segment([(units, soft_units(hyp, char_level, reference=False))], char_level)[0]
    )


# --------------------------------------------------------------------- re-segmentation


def test_mwer_cuts_where_the_references_end():
    assert mwer(["a b c", "d e"], "a b c d e") == [3, 5]
    assert mwer(["a b c", "d e"], "A B x C D E") == [4, 6]  # case-insensitive, x inserted
    assert mwer(["a b c", "d e"], "a b d e") == [2, 4]  # a deleted word
    # an extra word between two sentences: cheapest either way, the aligner keeps it left
    assert mwer(["a b c", "d e"], "a b c z d e") == [4, 6]
    assert mwer(["a b c", "d e"], "a b c d e z") == [3, 6]  # trailing words: last sentence
    assert mwer(["a b c", "d e"], "") == [0, 0]


def test_mwer_empty_reference_sentences():
    # an empty sentence in the middle gets nothing; a trailing one keeps an empty piece
    assert mwer(["a b", "", "c d"], "a b c d") == [2, 2, 4]
    assert mwer(["a b", "c d", ""], "a b c d") == [2, 4, 4]
    # the aligner's quirk: a leading empty sentence takes the stream's leading extra words
    assert mwer(["", "a b"], "z y a b") == [2, 4]


def test_soft_segmenter_similarity_and_gaps():
    refs = ["hello world .", "good bye ."]
    # word ~ world (Jaccard 4/5); a leading "." resembles no first word: dropped
    assert soft(refs, ". hello word . goodbye .") == [-1, 0, 0, 0, 1, 1]
    # "sat" (after "cat", before "a"): Jaccard 2/4 with cat > 1/3 with a: stays left;
    # "sag": 1/5 with cat < 1/3 with a: goes right
    assert soft(["the cat", "a dog"], "the cat sat a dog") == [0, 0, 0, 1, 1]
    assert soft(["the cat", "a dog"], "the cat sag a dog") == [0, 0, 1, 1, 1]


def test_soft_segmenter_characters():
    assert soft(["我们好。", "你好"], "我们好。你好", char_level=True) == [0, 0, 0, 0, 1, 1]
    # punctuation only ever matches punctuation; NFKC folds the ligature
    assert soft(["ﬁne ,", "x"], "fine , x") == [0, 0, 1]


def test_batches_equal_single_recordings():
    rng = random.Random(3)
    vocab = ["a", "b", "c", "d", "e", "f", ".", ","]
    docs = []
    for _ in range(7):
        refs = [" ".join(rng.choices(vocab, k=rng.randint(0, 6))) for _ in range(rng.randint(1, 6))]
        docs.append((refs, " ".join(rng.choices(vocab, k=rng.randint(0, 30)))))
    together = mwer_segment([([mwer_tokens(r) for r in refs], h.split()) for refs, h in docs])
    for (refs, h), got in zip(docs, together):
        assert list(got) == mwer(refs, h)
    units = [([soft_units(r, False, reference=True) for r in refs], h.split()) for refs, h in docs]
    for (refs, h), got in zip(docs, soft_segment(units, False)):
        assert list(got) == soft(refs, h)


# ------------------------------------------------------------------------------ metrics


def test_stream_laal_and_long_yaal_by_hand():
    rec = recording("a b c d e", [1500, 2000, 3000, 4500, 5200])
    # both re-segmentations cut "a b c | d e"
    pieces = resegment_mwer([rec], SEGMENTS)
    assert [p.prediction for p in pieces] == ["a b c", "d e"]
    assert [p.prediction for p in resegment_soft([rec], SEGMENTS)] == ["a b c", "d e"]
    # sentence 1: delays 500, 1000, 2000 ms after its start, |X| = 2000, gamma = 3/2000:
    #   LAAL = (500 + (1000 - 2000/3) + (2000 - 4000/3)) / 3 = 500 (tau = 3: 2000 >= |X|)
    # sentence 2: 500, 1200 after its start, |X| = 1000, gamma = 2/1000:
    #   LAAL = (500 + (1200 - 500)) / 2 = 600
    assert stream_laal(pieces, SEGMENTS) == pytest.approx(550.0)
    # LongYAAL stops at the recording's end (5 s): sentence 2 keeps only 500 (1200 >= 1000)
    assert long_yaal(pieces, SEGMENTS) == pytest.approx(500.0)


def test_edge_cases_by_hand():
    # sentence 2 starts writing after its segment ended: LAAL is that first delay (1500),
    # and LongYAAL skips it (its first word came after the recording's end)
    rec = recording("a b c d e", [1500, 2000, 3000, 5500, 5600])
    pieces = resegment_mwer([rec], SEGMENTS)
    assert stream_laal(pieces, SEGMENTS) == pytest.approx((500 + 1500) / 2)
    assert long_yaal(pieces, SEGMENTS) == pytest.approx(500.0)
    # an empty piece is skipped; a word written before its sentence starts counts negative
    rec = recording("a b c", [500, 2000, 3000])
    pieces = resegment_mwer([rec], SEGMENTS)
    assert pieces[1].prediction == ""
    # -500, 1000, 2000 with gamma = 3/2000: (-500 + 1000 - 2000/3 + 2000 - 4000/3) / 3
    assert stream_laal(pieces, SEGMENTS) == pytest.approx(500 / 3)
    # no output at all: nothing to average (simulstream raises; we say NaN)
    empty = resegment_mwer([recording("", [])], SEGMENTS)
    assert np.isnan(stream_laal(empty, SEGMENTS)) and np.isnan(long_yaal(empty, SEGMENTS))


def test_computation_aware_uses_elapsed():
    rec = recording("a b c d e", [1500, 2000, 3000, 4500, 5200], [1600, 2100, 3100, 4600, 5300])
    scores = score_longform([rec], SEGMENTS).scores
    # every elapsed time is 100 ms later: sentence 1 LAAL +100; sentence 2: 600, then
    # 1300 >= 1000 → (600 + 800) / 2 = 700; mean 650. LongYAAL: (600 + 600) / 2
    assert scores["StreamLAAL_CA"] == pytest.approx(650.0)
    assert scores["LongYAAL_CA"] == pytest.approx(600.0)
    assert "StreamLAAL_CA" not in score_longform([recording("a b", [1, 2])], SEGMENTS).scores


def test_character_level_counts_every_character():
    segs = [Segment("t", 0.0, 1000.0, "我们好"), Segment("t", 1000.0, 1000.0, "你 好")]
    rec = Recording("t", "我们好你 好", np.array([300.0, 400, 500, 1200, 1300, 1400]))
    result = score_longform([rec], segs, unit="char")
    assert [p.prediction for p in result.mwer] == ["我们好", "你 好"]
    # characters are the units, the space included; |Y| = 3 for both sentences, gamma =
    # 3/1000. Sentence 1: (300 + (400 - 1000/3) + (500 - 2000/3)) / 3 = 200/3;
    # sentence 2: (200 + (300 - 1000/3) + (400 - 2000/3)) / 3 = -100/3
    assert result.scores["StreamLAAL"] == pytest.approx((200 / 3 + -100 / 3) / 2)


# ------------------------------------------------------------------------------- inputs


def write_inputs(tmp_path, hyp_lines, seg_text=None, refs=("a b c", "d e")):
    hyp = tmp_path / "hyp.jsonl"
    hyp.write_text("".join(h if isinstance(h, str) else json.dumps(h) + "\n" for h in hyp_lines))
    seg = tmp_path / "segments.yaml"
    seg.write_text(
        seg_text
        or "- {wav: /data/talk.wav, offset: 1.0, duration: 2.0}\n"
        "- {wav: /data/talk.wav, offset: 4.0, duration: 1.0}\n"
    )
    ref = tmp_path / "ref.txt"
    ref.write_text("".join(r + "\n" for r in refs))
    return hyp, seg, ref


GOOD = {"source": ["talk.wav"], "prediction": "a b c d e", "delays": [1500, 2000, 3000, 4500, 5200]}


def test_files_give_the_hand_values(tmp_path):
    hyp, seg, ref = write_inputs(tmp_path, [GOOD])
    scores = score_longform_files(hyp, seg, ref, tmp_path / "out")
    assert scores["StreamLAAL"] == pytest.approx(550.0)
    assert scores["LongYAAL"] == pytest.approx(500.0)
    # pieces [500, 1000, 2000] (2000 ms, |Y| 3) and [500, 1200] (1000 ms, |Y| 2):
    # AL (500 + 333.3 + 666.7) / 3 and (500 + 700) / 2; LAAL the same (|Y*| = |Y|)
    assert scores["LongAL"] == pytest.approx(550.0)
    assert scores["LongLAAL"] == pytest.approx(550.0)
    assert scores["LongAP"] == pytest.approx((3500 / 6000 + 1700 / 2000) / 2)
    # DAL: g' = 500, max(1000, 1166.7), max(2000, 1833.3); then 500, max(1200, 1000)
    assert scores["LongDAL"] == pytest.approx(((500 + 500 + 2000 - 4000 / 3) / 3 + 600) / 2)
    written = json.loads((tmp_path / "out/scores.json").read_text())
    assert list(written) == [
        "LongYAAL", "StreamLAAL", "LongAL", "LongLAAL", "LongAP", "LongDAL", "BLEU"
    ]
    rows = [json.loads(x) for x in (tmp_path / "out/instances.resegmented.jsonl").open()]
    assert [r["prediction"] for r in rows] == ["a b c", "d e"]
    assert rows[1]["delays"] == [500.0, 1200.0] and rows[1]["source_length"] == 1000.0
    assert rows[0]["mwer_delays"] == [500.0, 1000.0, 2000.0]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"source": "talk.wav", "prediction": "a b"\n'], r"hyp\.jsonl:1: not valid JSON"),
        (["\n", "[1, 2]\n"], r"hyp\.jsonl:2: expected a JSON object"),
        ([{**GOOD, "delays": [1, 2]}], r"hyp\.jsonl:1: 2 delays for a prediction of 5 words"),
        ([{**GOOD, "delays": [1, 2, "x", 4, 5]}], r"hyp\.jsonl:1: 'delays' must be a list of num"),
        ([{**GOOD, "delays": None}], r"hyp\.jsonl:1: missing 'delays'"),
        ([{**GOOD, "source": 3}], r"hyp\.jsonl:1: 'source' must be"),
        ([GOOD, GOOD], r"hyp\.jsonl:2: second line for recording 'talk' \(first on line 1\)"),
        ([{**GOOD, "source": "other.wav"}], r"recording 'other' is not in .*segments\.yaml"),
        ([{**GOOD, "elapsed": [6000] * 5}, {**GOOD, "source": "b.wav"}], r"hyp\.jsonl:2: 'elapsed'"),
        # impossible timings (issue 21): each names the file and the line
        ([{**GOOD, "delays": [1500, 2000, 1000, 4500, 5200]}],
         r"hyp\.jsonl:1: 'delays' decrease at value 3 \(1000 ms after 2000 ms\)"),
        ([{**GOOD, "delays": [-5, 2000, 3000, 4500, 5200]}],
         r"hyp\.jsonl:1: 'delays' value 1 \(-5 ms\) is negative"),
        ([{**GOOD, "elapsed": [1600, 2100, 2999, 4600, 5300]}],
         r"hyp\.jsonl:1: 'elapsed' value 3 \(2999 ms\) is before its delay \(3000 ms\)"),
        (["\n", {**GOOD, "source_length": 5000}],
         (r"hyp\.jsonl:2: 'delays' value 5 \(5200 ms\) is past the end of the recording "
          r"\('source_length' 5000 ms\)")),
        ([{**GOOD, "source_length": "long"}], r"hyp\.jsonl:1: 'source_length' must be"),
    ],
)
def test_bad_hypotheses_name_file_and_line(tmp_path, lines, message):
    paths = write_inputs(tmp_path, lines)
    with pytest.raises(InputError, match=message):
        score_longform_files(*paths, tmp_path / "out")


@pytest.mark.parametrize(
    ("seg_text", "message"),
    [
        (
            "- {wav: talk.wav, offset: 1.0}\n- {wav: talk.wav, offset: 4, duration: 1}\n",
            r"segments\.yaml:1: segment 1: missing 'duration'",
        ),
        (
            "- {wav: talk.wav, offset: 1.0, duration: 2}\n- {wav: talk.wav, offset: 4, duration: 0}\n",
            r"segments\.yaml:2: segment 2: 'duration' must be positive",
        ),
        (
            (
                "- {wav: a.wav, offset: 1, duration: 2}\n- {wav: b.wav, offset: 1, duration: 2}\n"
                "- {wav: a.wav, offset: 4, duration: 1}\n"
            ),
            r"segments\.yaml:3: segment 3: recording 'a' continues here",
        ),
        ("- {wav: talk.wav, offset: [1, duration: 2}\n", r"segments\.yaml:1: not valid YAML"),
        ("wav: talk.wav\n", r"segments\.yaml: expected a list of segments"),
    ],
)
def test_bad_segment_files_name_file_and_line(tmp_path, seg_text, message):
    paths = write_inputs(tmp_path, [GOOD], seg_text=seg_text)
    with pytest.raises(InputError, match=message):
        score_longform_files(*paths)


def test_references_must_match_the_segments(tmp_path):
    paths = write_inputs(tmp_path, [GOOD], refs=("a b c",))
    with pytest.raises(InputError, match=r"ref\.txt: 1 reference lines for the 2 segments"):
        score_longform_files(*paths)


def test_every_recording_needs_a_hypothesis(tmp_path):
    seg_text = (
        "- {wav: talk.wav, offset: 1, duration: 2}\n- {wav: talk2.wav, offset: 4, duration: 1}\n"
    )
    hyp, seg, ref = write_inputs(tmp_path, [GOOD], seg_text=seg_text)
    with pytest.raises(InputError, match=r"no hypothesis for 1 recording\(s\).*'talk2'"):
        match_inputs(read_hypotheses(hyp), read_segments(seg), read_references(ref))


def test_character_units_include_spaces(tmp_path):
    line = {"source": "talk.wav", "prediction": "我们 好", "delays": [1, 2, 3, 4]}
    hyp, _, _ = write_inputs(tmp_path, [line])
    assert read_hypotheses(hyp, "char")["talk"].delays.tolist() == [1, 2, 3, 4]
    with pytest.raises(InputError, match="4 delays for a prediction of 2 words"):
        read_hypotheses(hyp, "word")


# ---------------------------------------------------------------------------------- CLI


def test_cli_scores_long_form(tmp_path, capsys):
    hyp, seg, ref = write_inputs(tmp_path, [{**GOOD, "elapsed": [1600, 2100, 3100, 4600, 5300]}])
    out = tmp_path / "scored"
    rc = main(["score", str(hyp), "--segments", str(seg), "--references", str(ref),
               "--output", str(out)])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "StreamLAAL" in printed and "550.000" in printed and "650.000" in printed
    scores = json.loads((out / "scores.json").read_text())
    assert scores["LongYAAL"] == pytest.approx(500.0)
    assert scores["LongYAAL_CA"] == pytest.approx(600.0)


def test_cli_long_form_errors_are_one_line(tmp_path, capsys):
    hyp, seg, ref = write_inputs(tmp_path, [{**GOOD, "delays": [1]}])
    assert main(["score", str(hyp), "--segments", str(seg), "--references", str(ref)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simulpo: error: ") and "hyp.jsonl:1:" in err and "Traceback" not in err
    assert main(["score", str(hyp), "--segments", str(seg)]) == 2
    assert "--references" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("seg_text", "message"),
    [
        ("- {wav: talk.wav, offset: 1.0, duration: 2.0}\n- {wav: talk.wav, offset: 2.5, duration: 1}\n",
         (r"segments\.yaml:2: segment 2: it starts at 2\.5 s, before segment 1 of 'talk' ends "
          r"\(3 s\)")),
        ("- {wav: talk.wav, offset: 4.0, duration: 1.0}\n- {wav: talk.wav, offset: 1, duration: 1}\n",
         r"segments\.yaml:2: segment 2: it starts at 1 s, before segment 1 .* in time order"),
    ],
)
def test_overlapping_or_unsorted_segments_are_refused(tmp_path, seg_text, message):
    with pytest.raises(InputError, match=message):
        score_longform_files(*write_inputs(tmp_path, [GOOD], seg_text), tmp_path / "out")


def test_touching_segments_and_rounding_overlaps_are_fine(tmp_path):
    seg_text = (
        "- {wav: talk.wav, offset: 1.0, duration: 2.0005}\n"  # ends 0.5 ms into the next
        "- {wav: talk.wav, offset: 3.0, duration: 2.5}\n"
    )
    score_longform_files(*write_inputs(tmp_path, [GOOD], seg_text), tmp_path / "out")


def test_segment_far_past_the_recording_is_refused(tmp_path):
    seg_text = (
        "- {wav: talk.wav, offset: 1.0, duration: 2.0}\n"
        "- {wav: talk.wav, offset: 4.0, duration: 30.0}\n"
    )
    paths = write_inputs(tmp_path, [{**GOOD, "source_length": 6000}], seg_text)
    with pytest.raises(InputError, match=r"segments\.yaml:2: segment 2 ends at 34 s, past the end "
                       r"of recording 'talk' \(6 s, 'source_length' on line 1 of .*hyp\.jsonl\)"):
        score_longform_files(*paths, tmp_path / "out")
    # within a second of the end: rounding, trailing silence cut differently
    ok = "- {wav: talk.wav, offset: 1.0, duration: 2.0}\n- {wav: talk.wav, offset: 4.0, duration: 2.9}\n"
    score_longform_files(*write_inputs(tmp_path, [{**GOOD, "source_length": 6000}], ok),
                         tmp_path / "out")


def test_latency_regime():
    from simulpo.metrics.longform import latency_regime

    assert [latency_regime(x) for x in (0.0, 1999.9, 2000.0, 2000.1, 4000.0, 4000.5)] == [
        "low", "low", "low", "high", "high", "outside"
    ]
    assert latency_regime(float("nan")) == "outside" and latency_regime(-10.0) == "outside"


def test_forked_scoring_gives_the_same_numbers(monkeypatch):
    """Large inputs align mWER and compute chrF in forked children: same numbers, to the bit."""
    from simulpo.metrics import longform, parallel

    rng = random.Random(5)
    vocab = ["a", "b", "c", "dé", "ef", "gh", ".", ",", "?"]
    segments, recordings = [], []
    for r in range(3):
        t, words = 0.0, []
        for _ in range(rng.randint(2, 6)):
            ref = " ".join(rng.choices(vocab, k=rng.randint(1, 8)))
            segments.append(Segment(f"talk{r}", t, 2000.0, ref))
            t += 2500.0
            words += [w for w in ref.split() if rng.random() > 0.2] + rng.choices(vocab, k=2)
        delays = np.sort(rng.choices(range(int(t)), k=len(words))).astype(float)
        recordings.append(Recording(f"talk{r}", " ".join(words), delays, delays + 300.0))
    kwargs = {"quality_metrics": ["BLEU", "chrF"]}
    alone = score_longform(recordings, segments, **kwargs)
    monkeypatch.setattr(longform, "PARALLEL_MIN_UNITS", 0)
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    monkeypatch.setattr(parallel, "fork_is_safe", lambda: True)
    assert parallel.beside(os.getpid)() != os.getpid()  # it does fork
    forked = score_longform(recordings, segments, **kwargs)
    assert forked.scores == alone.scores and len(alone.scores) == 14
    assert [p.prediction for p in forked.mwer] == [p.prediction for p in alone.mwer]


@pytest.mark.parametrize("n_chars", [1, 63, 64, 65, 200])
@pytest.mark.parametrize("popcount", [True, False])
def test_character_set_intersections(n_chars, popcount, monkeypatch):
    """The SoftSegmenter's |r & h| over bit masks (one or more 64-bit words), and its
    numpy<2 fallback, against Python's set intersection."""
    from simulpo.metrics.resegment import _intersections

    if not popcount:
        monkeypatch.delattr(np, "bitwise_count", raising=False)
    rng = random.Random(n_chars)
    draw = lambda: rng.sample(range(n_chars), rng.randint(0, min(n_chars, 30)))
    a, b = [draw() for _ in range(40)], [draw() for _ in range(30)]
    expected = [[len(set(x) & set(y)) for y in b] for x in a]
    got = _intersections(a, b, n_chars)
    assert got.dtype == np.float64 and got.tolist() == expected

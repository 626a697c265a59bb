"""Long-form metrics against the reference tools themselves, on random streams.

StreamLAAL against simulstream's ``stream_laal`` scorer (which calls mweralign), LongYAAL,
BLEU and chrF against OmniSTEval's long-form pipeline, the re-segmentations piece by
piece. ``scripts/setup.sh --test`` installs the three tools; each test is skipped when
its tool is missing.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest

from simulpo.metrics.longform import match_inputs as match
from simulpo.metrics.longform import (
    read_hypotheses,
    read_references,
    read_segments,
    score_longform,
    score_longform_files,
)

WORDS = ["the", "The", "a", "of", "house", "houses", "hose", "green", "river", "sings", "under"]
WORDS += ["never", "quickly", "7", "Über", "über", "ﬁne", "fine", "la", "casa", "verde", "."]
WORDS += [",", "?", "(", ")", "-"]
CHARS = "我们的家在河边唱歌。，？（）ab Z▁_ﬁ"


def synthetic_corpus(seed: int, unit: str = "word", n_recordings: int = 3) -> dict:
    """Recordings with pauses between segments, noisy streams, delays near each segment.

    Edge cases on purpose: empty references, silent stretches (empty pieces), output
    before a segment starts and after the recording ends, unequal stream lengths.
    """
    rng = random.Random(seed)
    segments, references, hyps = [], [], []
    for r in range(n_recordings):
        wav = f"talks/rec{r}.wav"
        t, stream, delays = rng.uniform(0, 3), [], []
        first = len(references)
        for _ in range(rng.randint(1, 9)):
            duration = rng.choice([rng.uniform(0.4, 9), float(rng.randint(1, 8))])
            if unit == "word":
                ref = [rng.choice(WORDS) for _ in range(rng.choice([0, 1, rng.randint(2, 15)]))]
                reference = " ".join(ref)
            else:
                ref = [rng.choice(CHARS) for _ in range(rng.choice([0, 1, rng.randint(2, 15)]))]
                reference = "".join(ref).strip()
            segments.append({"wav": wav, "offset": round(t, 3), "duration": round(duration, 3)})
            references.append(reference)
            start_ms, end_ms = t * 1000, (t + duration) * 1000
            out = []
            for w in ref:
                x = rng.random()
                if x < 0.1:
                    continue
                out.append(rng.choice(WORDS if unit == "word" else CHARS) if x < 0.25 else w)
                if rng.random() < 0.08:
                    out.append(rng.choice(WORDS if unit == "word" else CHARS))
            if rng.random() < 0.1:
                out = []
            lag = rng.choice([-500.0, 0.0, 800.0, 2500.0])
            for k in range(len(out)):
                d = start_ms + lag + (end_ms - start_ms) * (k + 1) / max(len(out), 1)
                d = round(d) if rng.random() < 0.5 else d
                delays.append(max(d, delays[-1] if delays else 0.0))
            stream += out
            t += duration + rng.choice([0.0, rng.uniform(0.1, 2.0)])
        if not any(references[-k] for k in range(1, len(references) - first + 1)):
            references[-1] = "x"  # OmniSTEval divides by zero on a recording without words
        if rng.random() < 0.3 and delays:  # a tail written after the recording ended
            stream += ["tail", "."] if unit == "word" else ["尾", "。"]
            delays += [t * 1000 + 4000.0] * 2
        if unit == "word":
            prediction = " ".join(stream)
        else:
            prediction = "".join(stream)
        elapsed, spent = [], 0.0
        for d in delays:
            spent += rng.uniform(0, 300)
            elapsed.append(d + spent)
        hyps.append({"source": wav, "prediction": prediction, "delays": delays, "elapsed": elapsed})
    return {"segments": segments, "references": references, "hypotheses": hyps}


def write_corpus(tmp: Path, corpus: dict) -> tuple[Path, Path, Path]:
    hyp = tmp / "hyp.jsonl"
    hyp.write_text("".join(json.dumps(h, ensure_ascii=False) + "\n" for h in corpus["hypotheses"]))
    seg = tmp / "segments.yaml"
    seg.write_text(
        "".join(
            f"- {{wav: {s['wav']}, offset: {s['offset']}, duration: {s['duration']}}}\n"
            for s in corpus["segments"]
        )
    )
    ref = tmp / "ref.txt"
    ref.write_text("".join(r + "\n" for r in corpus["references"]), encoding="utf-8")
    return hyp, seg, ref


def no_trailing_empty(corpus: dict) -> dict:
    """simulstream loses a recording's trailing empty sentence and then fails an assertion
    (its references are newline-joined and read back line by line): keep it out of the
    comparison. simulpo gives that sentence an empty piece."""
    segs, refs = corpus["segments"], corpus["references"]
    for k in range(len(segs)):
        last = k + 1 == len(segs) or segs[k + 1]["wav"] != segs[k]["wav"]
        if last and not refs[k].strip():
            refs[k] = "x"
    return corpus


def ours(paths, unit, lang=None):
    hyp, seg, ref = paths
    recordings, segments = match(
        read_hypotheses(hyp, unit), read_segments(seg), read_references(ref)
    )
    return score_longform(recordings, segments, unit, lang=lang, quality_metrics=["BLEU", "chrF"])


# ------------------------------------------------------------------------- simulstream


@pytest.fixture(scope="module")
def simulstream():
    pytest.importorskip("mweralign")
    stream_laal = pytest.importorskip("simulstream.metrics.scorers.latency.stream_laal")
    latency = pytest.importorskip("simulstream.metrics.scorers.latency")
    readers = pytest.importorskip("simulstream.metrics.readers")
    logging.getLogger("mweralign").setLevel(logging.WARNING)
    return stream_laal, latency, readers


def simulstream_scores(simulstream, corpus, unit, seconds: bool):
    stream_laal, latency, readers = simulstream
    scale = 1 if seconds else 1000
    ms = 1000 if seconds else 1
    by_wav: dict[str, list] = {}
    for s, r in zip(corpus["segments"], corpus["references"]):
        by_wav.setdefault(Path(s["wav"]).stem, []).append(
            readers.ReferenceSentenceDefinition(
                r.strip(), s["offset"] * scale, s["duration"] * scale
            )
        )
    samples = []
    for h in corpus["hypotheses"]:
        name = Path(h["source"]).stem
        out = readers.OutputWithDelays(
            h["prediction"], [d / ms for d in h["delays"]], [e / ms for e in h["elapsed"]]
        )
        samples.append(latency.LatencyScoringSample(name, out, by_wav[name]))
    scorer = stream_laal.StreamLaal(argparse.Namespace(latency_unit=unit))
    return scorer.score(samples)


@pytest.mark.parametrize("unit", ["word", "char"])
def test_stream_laal_equals_simulstream(simulstream, tmp_path, unit):
    for seed in range(12):
        corpus = no_trailing_empty(synthetic_corpus(seed, unit))
        result = ours(write_corpus(tmp_path, corpus), unit)
        if all(len(p.delays) == 0 for p in result.mwer):
            continue  # simulstream: statistics.mean of nothing
        # in ms, simulstream computes exactly our operations: equal to the last bit
        want = simulstream_scores(simulstream, corpus, unit, seconds=False)
        assert result.scores["StreamLAAL"] == want.ideal_latency, seed
        assert result.scores["StreamLAAL_CA"] == want.computational_aware_latency, seed
        # its own unit, seconds: the same up to rounding
        sec = simulstream_scores(simulstream, corpus, unit, seconds=True)
        assert result.scores["StreamLAAL"] == pytest.approx(sec.ideal_latency * 1000, rel=1e-12)


def test_mwer_pieces_equal_mweralign(simulstream, tmp_path):
    from mweralign import mweralign

    for seed in range(20):
        corpus = no_trailing_empty(synthetic_corpus(100 + seed, "word", n_recordings=1))
        refs = [r.strip() for r in corpus["references"]]
        hyp = corpus["hypotheses"][0]["prediction"]
        want = mweralign.align_texts("\n".join(refs), hyp).split("\n")
        result = ours(write_corpus(tmp_path, corpus), "word")
        assert [p.prediction for p in result.mwer] == [w.strip() for w in want], seed


# -------------------------------------------------------------------------- OmniSTEval


@pytest.fixture(scope="module")
def omnisteval():
    io = pytest.importorskip("omnisteval.io")
    resegment = pytest.importorskip("omnisteval.resegment")
    scoring = pytest.importorskip("omnisteval.scoring")
    return io, resegment, scoring


def omnisteval_run(omnisteval, paths, char_level, lang=None):
    io, resegment, scoring = omnisteval
    hyp, seg, ref = paths
    ref_words, hyp_words, segmentation, ref_sentences = io.load_resegmentation_inputs(
        str(seg), None, str(ref), str(hyp), "jsonl", char_level=char_level
    )
    instances, rows = resegment.resegment(
        ref_words, hyp_words, segmentation, ref_sentences, char_level=char_level, lang=lang
    )
    scores, _, _ = scoring.evaluate_instances(instances, is_longform=True)
    return scores, rows


@pytest.mark.parametrize("unit", ["word", "char"])
def test_long_yaal_and_quality_equal_omnisteval(omnisteval, tmp_path, unit):
    for seed in range(8):
        corpus = synthetic_corpus(200 + seed, unit)
        paths = write_corpus(tmp_path, corpus)
        result = ours(paths, unit)
        want, rows = omnisteval_run(omnisteval, paths, char_level=unit == "char")
        # the re-segmentation, piece by piece
        assert [p.prediction for p in result.soft] == [r["prediction"] for r in rows], seed
        for piece, seg, row in zip(result.soft, result.segments, rows):
            assert (piece.delays - seg.offset).tolist() == row.get("emission_cu", []), seed
        assert_scores_equal(result.scores, want, seed)


#: simulpo's long-form keys and OmniSTEval's (evaluate_instances, is_longform=True)
OMNISTEVAL_KEYS = {"BLEU": "bleu", "chrF": "chrf"}
for _name in ("YAAL", "AL", "LAAL", "AP", "DAL"):
    OMNISTEVAL_KEYS[f"Long{_name}"] = f"long_{_name.lower()}"
    OMNISTEVAL_KEYS[f"Long{_name}_CA"] = f"ca_long_{_name.lower()}"


def assert_scores_equal(ours_scores, want, seed):
    """Float for float; NaN where OmniSTEval has no score (it skips every piece)."""
    for key, theirs in OMNISTEVAL_KEYS.items():
        if np.isnan(ours_scores[key]):
            assert theirs not in want or np.isnan(want[theirs]), (seed, key)
        else:
            assert ours_scores[key] == want[theirs], (seed, key)


LANG_WORDS = ["don't", "l'homme", "(yes)", "U.S.", "3.5%", "self-made", "«Oui»", "it's", "e.g.",
              "Hello,", "world!", "a", "the", "house", ".", "...", "5,000", "Ça", "n'est", "pas"]


def lang_corpus(seed: int) -> dict:
    """A word corpus whose words the Moses tokenizer splits (clitics, brackets, numbers)."""
    rng = random.Random(seed)
    corpus = synthetic_corpus(seed, "word")
    swap = {w: rng.choice(LANG_WORDS) for w in WORDS}
    corpus["references"] = [" ".join(swap.get(w, w) for w in r.split()) for r in corpus["references"]]
    for h in corpus["hypotheses"]:
        h["prediction"] = " ".join(swap.get(w, w) for w in h["prediction"].split())
    return corpus


@pytest.mark.parametrize("lang", ["en", "fr", "de"])
def test_lang_resegmentation_equals_omnisteval(omnisteval, tmp_path, lang):
    pytest.importorskip("mosestokenizer")
    differs = 0
    for seed in range(6):
        corpus = lang_corpus(300 + seed)
        paths = write_corpus(tmp_path, corpus)
        result = ours(paths, "word", lang=lang)
        want, rows = omnisteval_run(omnisteval, paths, char_level=False, lang=lang)
        assert [p.prediction for p in result.soft] == [r["prediction"] for r in rows], seed
        for piece, seg, row in zip(result.soft, result.segments, rows):
            assert (piece.delays - seg.offset).tolist() == row.get("emission_cu", []), seed
        assert_scores_equal(result.scores, want, seed)
        plain = ours(paths, "word")
        differs += [p.prediction for p in plain.soft] != [p.prediction for p in result.soft]
    assert differs  # the option changes the re-segmentation on this data


def test_cli_files_match_omnisteval(omnisteval, tmp_path):
    corpus = synthetic_corpus(7, "word")
    paths = write_corpus(tmp_path, corpus)
    scores = score_longform_files(*paths, tmp_path / "out")
    want, rows = omnisteval_run(omnisteval, paths, char_level=False)
    assert scores["LongYAAL"] == want["long_yaal"]
    written = [json.loads(x) for x in (tmp_path / "out/instances.resegmented.jsonl").open()]
    assert [w["prediction"] for w in written] == [r["prediction"] for r in rows]
    assert [w["delays"] for w in written] == [r.get("emission_cu", []) for r in rows]

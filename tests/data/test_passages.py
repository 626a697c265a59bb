"""Passages: consecutive utterances joined onto one timeline, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from simulpo.data.audio import write_audio
from simulpo.data.passages import passages
from simulpo.data.speech import SAMPLE_RATE, SpeechUtterance
from simulpo.data.speech_sft_synthesis import utterance_needs, word_ends
from simulpo.errors import ConfigError


def utt(uid, source, reference, alignment, wav, offset, duration, starts, interpolated=()):
    return SpeechUtterance(
        uid, source, reference, wav, offset, duration, "en", 175, list(starts),
        list(interpolated), {"alignment": alignment},
    )  # fmt: skip


@pytest.fixture
def recording(tmp_path):
    """Two utterances with 1 s of silence between them, then a third (another voice)."""
    wav = tmp_path / "rec.wav"
    audio = np.arange(6 * SAMPLE_RATE, dtype=np.float32) / (6 * SAMPLE_RATE)
    write_audio(wav, audio)
    return [
        utt("b", "cats sleep", "ko ma", "0-0 1-1", wav, 2.5, 1.0, [0, 400]),
        utt("a", "the dog runs", "du ri", "1-0 2-1", wav, 0.0, 1.5, [0, 300, 800], [1]),
        utt("c", "birds sing", "pi so", "0-0 1-1", wav, 4.0, 1.25, [0, 500]),
    ]


def test_a_passage_joins_texts_timings_and_alignments(recording):
    first, second = passages(recording, 2)
    assert first.id == "a+b" and second.id == "c"
    assert first.source == "the dog runs cats sleep" and first.reference == "du ri ko ma"
    assert (first.offset, first.duration) == (0.0, 3.5)  # 2.5 + 1.0 - 0.0
    assert first.word_starts == [0, 300, 800, 2500, 2900]
    assert first.interpolated == [1]
    # "runs" ends with its utterance (1500 ms), not at "cats" after the pause
    assert word_ends(first) == [300.0, 800.0, 1500.0, 2900.0, 3500.0]
    assert first.extra["alignment"] == "1-0 2-1 3-2 4-3"
    assert first.extra["utterances"] == ["a", "b"]
    assert second.source == "birds sing" and word_ends(second) == word_ends(recording[2])


def test_needs_of_a_passage_are_its_sentences_needs_shifted(recording):
    ordered = sorted(recording, key=lambda u: u.offset)
    (joined,) = passages(ordered, 3)
    parts = utterance_needs(ordered)
    shifted, words = [], 0
    for u, needs in zip(ordered, parts):
        shifted += [n + words for n in needs]
        words += len(u.source.split())
    assert utterance_needs([joined]) == [shifted]


def test_a_passage_reads_the_recording_span_pauses_included(recording):
    (joined,) = passages(recording, 3)
    audio = joined.audio()
    assert len(audio) == round(5.25 * SAMPLE_RATE)
    whole = recording[1].audio()  # the first utterance starts the passage
    np.testing.assert_allclose(audio[: len(whole)], whole)


def test_passages_keep_recordings_apart_and_refuse_size_zero(recording, tmp_path):
    other = utt("x", "a b", "c d", "0-0 1-1", tmp_path / "other.wav", 0.0, 1.0, [0, 500])
    groups = passages([*recording, other], 5)
    assert [g.id for g in groups] == ["a+b+c", "x"]
    assert passages(recording, 1)[0].source == "the dog runs"
    with pytest.raises(ConfigError, match="at least one"):
        passages(recording, 0)

import itertools
from pathlib import Path

import pytest

from simulpo.data.speech import SpeechUtterance
from simulpo.data.speech_sft_synthesis import (
    speech_records,
    utterance_needs,
    word_ends,
)
from simulpo.errors import ConfigError


def utterance(uid="u0", seconds=2.5, starts=(0, 500, 1300, 2000), source="w x y z",
              reference="a b c", alignment="0-0 2-1 1-2 3-2"):  # fmt: skip
    return SpeechUtterance(
        id=uid, source=source, reference=reference, wav=Path("unused.wav"), offset=3.0,
        duration=seconds, voice="en-us", rate=175, word_starts=list(starts),
        extra={"alignment": alignment},
    )  # fmt: skip


def test_a_word_ends_where_the_next_starts_and_the_last_with_the_audio():
    assert word_ends(utterance()) == [500.0, 1300.0, 2000.0, 2500.0]


def test_target_words_go_to_the_first_chunk_where_their_source_words_are_heard():
    # needs (monotonized gold links): a <- w (1 word), b <- y (3), c <- x, z (4)
    assert utterance_needs([utterance()]) == [[1, 3, 4]]
    [record] = speech_records([utterance()], c_min=1, c_max=1, progress=False)
    assert record["utterance"] == "u0"
    users = [m for m in record["messages"] if m["role"] == "user"]
    pieces = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
    # chunks end at 1120, 2240 and 2500 ms; heard by then: w | w x y | all
    assert [m["speech"] for m in users] == [[0.0, 1120.0], [1120.0, 2240.0], [2240.0, 2500.0]]
    assert all(m["content"] == "" for m in users)
    assert pieces == ["a", "b", "c"]


def test_a_word_not_yet_finished_at_the_chunk_end_is_not_heard():
    # y ends at 2100 ms (z starts then): after the chunk ending at 2000 ms y is still
    # being spoken, so b (which needs y) waits for the last chunk
    late = utterance(starts=(0, 500, 1300, 2100))
    [record] = speech_records([late], chunk_ms=1000, c_min=1, c_max=1, progress=False)
    pieces = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
    assert pieces == ["a", "", "b c"]
    [record] = speech_records([utterance()], chunk_ms=1000, c_min=1, c_max=1, progress=False)
    pieces = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
    assert pieces == ["a", "b", "c"]  # y ends at 2000 ms: heard with that chunk


def test_random_merges_keep_chunk_ends_on_the_grid_and_every_word():
    utts = [utterance(f"u{k}", seconds=9.0, starts=(0, 2000, 4000, 6000)) for k in range(20)]
    records = speech_records(utts, c_min=1, c_max=3, seed=2, copies=2, progress=False)
    assert [r["utterance"] for r in records] == [u.id for u in utts for _ in range(2)]
    sizes = set()
    for r in records:
        spans = [m["speech"] for m in r["messages"] if m["role"] == "user"]
        assert spans[0][0] == 0 and spans[-1][1] == 9000.0
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        assert all(end % 1120 == 0 for _, end in spans[:-1])
        sizes |= {round((e - s) / 1120) for s, e in spans[:-1]}
        pieces = [m["content"] for m in r["messages"] if m["role"] == "assistant"]
        assert " ".join(p for p in pieces if p) == "a b c"
    assert sizes == {1, 2, 3}


def test_gold_aligner_needs_links():
    bare = utterance()
    bare.extra.clear()
    with pytest.raises(ConfigError, match="alignment"):
        utterance_needs([bare])

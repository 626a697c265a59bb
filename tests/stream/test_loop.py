import pytest

from simulpo.policies import Offline, WaitK
from simulpo.stream.episode import Episode
from simulpo.stream.loop import run_stream
from simulpo.stream.segmenter import FixedWords


class Scripted:
    """Writes a fixed piece at each turn, to check the loop's bookkeeping alone."""

    name = "scripted"

    def __init__(self, pieces):
        self.pieces = pieces
        self.seen = []

    def act(self, states):
        self.seen.append([(s.episode.index, s.turn, s.source_finished) for s in states])
        return [self.pieces[s.turn] for s in states]


def test_delays_are_source_words_read_when_each_unit_is_written():
    policy = Scripted(["", "x y", "", "z"])
    [ep] = run_stream([["a", "b", "c", "d"]], policy, FixedWords(1), progress=False)
    assert ep.pieces == ["", "x y", "", "z"]
    assert ep.delays == [2, 2, 4]
    assert ep.elapsed == [0, 0, 0]  # text sources: SimulEval writes zeros
    assert ep.prediction == "x y z"
    assert policy.seen[-1] == [(0, 3, True)]


def test_chunks_of_two_words_delay_by_chunk_end():
    [ep] = run_stream([list("abcde")], Scripted(["p", "q", "r"]), FixedWords(2), progress=False)
    assert ep.delays == [2, 4, 5]


def test_char_unit_counts_characters_without_spaces():
    [ep] = run_stream(
        [["a", "b"]], Scripted(["你 好", "吗"]), FixedWords(1), unit="char", progress=False
    )
    assert ep.units == ["你", "好", "吗"]
    assert ep.prediction == "你好吗"
    assert ep.delays == [1, 1, 2]


def test_empty_source_gives_empty_episode():
    eps = run_stream([[], ["a"]], Scripted(["A"]), FixedWords(1), progress=False)
    assert eps[0].delays == [] and eps[0].prediction == ""
    assert eps[1].prediction == "A"


def test_batching_does_not_change_episodes(upper):
    sources = [[f"w{j}" for j in range(n)] for n in range(1, 12)]
    one = run_stream(sources, WaitK(upper, 2), FixedWords(1), batch_size=1, progress=False)
    many = run_stream(sources, WaitK(upper, 2), FixedWords(1), batch_size=4, progress=False)
    assert [e.to_instance() for e in one] == [e.to_instance() for e in many]


def test_lockstep_batch_calls_translator_once_per_turn(upper):
    sources = [["a"] * 5, ["b"] * 3]
    run_stream(sources, Offline(upper), FixedWords(1), progress=False)
    # Offline writes only at each source's last turn: turn 3 (short) and turn 5 (long).
    assert upper.calls == 2


def test_mismatched_references_are_rejected():
    with pytest.raises(ValueError, match="2 sources but 1 references"):
        run_stream([["a"], ["b"]], Scripted(["x"]), FixedWords(1), references=["r"], progress=False)


def test_instance_record_has_simuleval_fields():
    ep = Episode(4, ["a", "b"], FixedWords(1).split(["a", "b"]), 2.0, "ref words", "word")
    ep.write("", 1)
    ep.write("x y", 2)
    assert ep.to_instance() == {
        "index": 4,
        "prediction": "x y",
        "delays": [2, 2],
        "elapsed": [0, 0],
        "prediction_length": 2,
        "reference": "ref words",
        "source": "a b",
        "source_length": 2,
    }


@pytest.mark.parametrize(
    ("compute_ms", "clock", "expected"),
    [
        # slower than real time: the queue falls behind; cumulative adds all compute so far
        (1500, "queue", [2500, 4000, 5500]),
        (1500, "cumulative", [2500, 5000, 7500]),
        # faster than real time: each turn waits for its audio; cumulative still grows
        (200, "queue", [1200, 2200, 3200]),
        (200, "cumulative", [1200, 2400, 3600]),
    ],
)
def test_speech_clocks_by_hand(monkeypatch, compute_ms, clock, expected):
    import types

    import numpy as np

    from simulpo.stream import loop
    from simulpo.stream.segmenter import FixedMilliseconds

    now = [0.0]
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))

    class Slow(Scripted):
        def act(self, states):
            now[0] += compute_ms / 1000
            return super().act(states)

    audio = np.zeros(48_000, dtype=np.float32)  # 3 s at 16 kHz: chunks end at 1, 2, 3 s
    [ep] = run_stream(
        [audio], Slow(["a", "b", "c"]), FixedMilliseconds(1000), progress=False, clock=clock
    )
    assert ep.delays == [1000, 2000, 3000]
    assert ep.elapsed == pytest.approx(expected)


def test_unknown_clock_is_refused():
    with pytest.raises(ValueError, match="unknown clock"):
        run_stream([["a"]], Scripted(["x"]), FixedWords(1), progress=False, clock="wall")

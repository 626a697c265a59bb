import pytest
from speech_fakes import RunTranscriber, speech

from simulpo.policies.cascade import Cascade, ends_sentence, plain_words
from simulpo.policies.schedules import LocalAgreement, WaitK
from simulpo.stream.loop import run_stream
from simulpo.stream.segmenter import FixedMilliseconds


class Recorder:
    """Wraps a text policy and records what each inner turn showed it."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.turns: list[list[tuple[list[str], bool]]] = []
        self.sentence_lengths: list[int] = []

    def act(self, states):
        self.turns.append([(list(s.source_read[-1]), s.source_finished) for s in states])
        self.sentence_lengths += [sum(map(len, s.source_read)) for s in states]
        return self.inner.act(states)


def test_sentence_ends():
    assert ends_sentence("Jerusalem.") and ends_sentence('sun?"') and ends_sentence("Amen!)")
    assert not ends_sentence("preacher,") and not ends_sentence("Mr") and not ends_sentence("")
    assert plain_words(["The", "preacher,", "“Vanity", "—", "sun?”"]) == [
        "the",
        "preacher",
        "vanity",
        "sun",
    ]


def test_text_policy_reads_a_growing_sentence_until_its_end(upper):
    # By hand, 1000 ms chunks: the recognizer commits a at 2000 ms, b at 3000, c at 4000
    # and "d." at the end (5000). Local agreement over the upper-casing translator sees
    # [a], [a b], [a b c], [a b c d.] (finished) and writes A at 3000, B at 4000, C D. at 5000.
    vocab = ["a", "b", "c", "d."]
    audio = speech(
        vocab, [("a", 100, 400), ("b", 1100, 1400), ("c", 2100, 2400), ("d.", 3100, 3400)], 5000
    )
    text = Recorder(LocalAgreement(upper))
    policy = Cascade(RunTranscriber(vocab), text)
    (episode,) = run_stream([audio], policy, FixedMilliseconds(1000), progress=False)
    assert text.turns == [
        [(["a"], False)],
        [(["b"], False)],
        [(["c"], False)],
        [(["d."], True)],
    ]
    assert episode.pieces == ["", "", "A", "B", "C D."]
    assert episode.delays == [3000, 4000, 5000, 5000]
    assert episode.memory["transcript"] == vocab


def test_a_chunk_that_ends_a_sentence_and_starts_the_next(upper):
    # Both episodes commit "x. y" at 2000 ms: sentence 1 finishes, sentence 2 starts, in
    # two inner rounds, each batching both episodes.
    vocab = ["x.", "y", "z"]
    audio = speech(vocab, [("x.", 100, 300), ("y", 500, 700), ("z", 1100, 1300)], 2500)
    text = Recorder(WaitK(upper, k=1))
    policy = Cascade(RunTranscriber(vocab), text)
    episodes = run_stream([audio, audio], policy, FixedMilliseconds(1000), progress=False)
    assert text.turns == [
        [(["x."], True), (["x."], True)],
        [(["y"], False), (["y"], False)],
        [(["z"], True), (["z"], True)],
    ]
    for episode in episodes:
        assert episode.pieces == ["", "X. Y", "Z"]
        assert episode.delays == [2000, 2000, 2500]


def test_long_sentences_are_cut_and_words_normalized(upper):
    vocab = ["One", "two,", "Three", "four", "five"]
    script = [(w, 100 + 300 * k, 300 + 300 * k) for k, w in enumerate(vocab)]
    text = Recorder(LocalAgreement(upper))
    policy = Cascade(RunTranscriber(vocab), text, normalize=plain_words, max_sentence_words=2)
    (episode,) = run_stream(
        [speech(vocab, script, 2000)], policy, FixedMilliseconds(2000), progress=False
    )
    assert [turn for round_ in text.turns for turn in round_] == [
        (["one", "two"], True),
        (["three", "four"], True),
        (["five"], True),
    ]
    assert episode.prediction == "ONE TWO THREE FOUR FIVE"


def test_written_pieces_never_depend_on_later_audio(upper):
    # Two streams agree for their first 3 chunks and then differ: the first 3 pieces match.
    vocab = ["a", "b", "c", "d", "e."]
    first = speech(
        vocab, [("a", 100, 400), ("b", 1100, 1400), ("c", 2100, 2400), ("d", 3100, 3400)], 5000
    )
    second = speech(
        vocab, [("a", 100, 400), ("b", 1100, 1400), ("c", 2100, 2400), ("e.", 3500, 3900)], 5000
    )
    policy = Cascade(RunTranscriber(vocab), LocalAgreement(upper))
    one, two = run_stream([first, second], policy, FixedMilliseconds(1000), progress=False)
    assert one.pieces[:3] == two.pieces[:3]
    assert one.prediction == "A B C D" and two.prediction == "A B C E."


def test_ten_minute_stream_translates_every_word_with_bounded_state(upper):
    vocab = ["one", "two", "three", "four", "five."]
    script = [(vocab[k % 5], 100 + 400 * k, 350 + 400 * k) for k in range(1499)]
    fake = RunTranscriber(vocab)
    text = Recorder(LocalAgreement(upper))
    policy = Cascade(fake, text, trim_ms=5000, max_buffer_ms=10000)
    (episode,) = run_stream(
        [speech(vocab, script, 600_000)], policy, FixedMilliseconds(1000), progress=False
    )
    assert episode.units == [w.upper() for w, _, _ in script]
    assert max(len(audio) for audio, _ in fake.calls) <= 7 * 16000
    # the text policy only ever held one sentence (at most 5 words) of the stream
    assert max(text.sentence_lengths) == 5
    # every word is written after its audio ended, and delays never decrease
    assert episode.delays == sorted(episode.delays)
    assert all(d >= end for d, (_, _, end) in zip(episode.delays, script))


@pytest.mark.parametrize(
    ("clock", "expected"),
    [
        # By hand: per outer turn, one transcription (100 ms) and, from turn 2 on, one inner
        # turn of the text policy (300 ms): compute per turn 100, 400, 400, 400, 400 ms.
        # A is written at 3000 ms, B at 4000, "C D." at 5000.
        ("cumulative", [3000 + 900, 4000 + 1300, 5000 + 1700, 5000 + 1700]),
        # ready = max(chunk end, previous ready) + compute: 1100, 2400, 3400, 4400, 5400
        ("queue", [3400, 4400, 5400, 5400]),
    ],
)
def test_elapsed_times_count_the_recognizer_and_the_text_policy(
    monkeypatch, upper, clock, expected
):
    # The cascade is timed by the loop's one step like every policy: its elapsed times are
    # the chunk end plus its computation (ASR and the inner text turns), per clock.
    import types

    from simulpo.stream import loop

    now = [0.0]
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))

    class SlowTranscriber(RunTranscriber):
        def __call__(self, audio, prompt=""):
            now[0] += 0.1
            return super().__call__(audio, prompt)

    class SlowText(Recorder):
        def act(self, states):
            now[0] += 0.3
            return super().act(states)

    vocab = ["a", "b", "c", "d."]
    audio = speech(
        vocab, [("a", 100, 400), ("b", 1100, 1400), ("c", 2100, 2400), ("d.", 3100, 3400)], 5000
    )
    fake = SlowTranscriber(vocab)
    text = SlowText(LocalAgreement(upper))
    (episode,) = run_stream(
        [audio], Cascade(fake, text), FixedMilliseconds(1000), progress=False, clock=clock
    )
    assert len(fake.calls) == 5 and len(text.turns) == 4  # the premises of the hand count
    assert episode.delays == [3000, 4000, 5000, 5000]
    assert episode.elapsed == pytest.approx(expected)

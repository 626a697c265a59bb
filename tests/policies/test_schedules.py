import pytest

from simulpo.errors import ConfigError
from simulpo.policies import FixedChunk, LocalAgreement, Offline, WaitK, schedule
from simulpo.policies.schedules import common_prefix
from simulpo.stream.loop import run_stream
from simulpo.stream.segmenter import FixedWords

SOURCE = ["a", "b", "c", "d"]


def run(policy, source=SOURCE, m=1):
    [ep] = run_stream([source], policy, FixedWords(m), progress=False)
    return ep


def test_wait_2_hand_computed(upper):
    # Read a: 0 allowed. Read b: write A (delay 2). Read c: B (3). Read d (end): C D (4, 4).
    ep = run(WaitK(upper, 2))
    assert ep.pieces == ["", "A", "B", "C D"]
    assert ep.delays == [2, 3, 4, 4]


def test_wait_1_is_monotone_word_for_word(upper):
    assert run(WaitK(upper, 1)).delays == [1, 2, 3, 4]


def test_wait_k_longer_than_source_degrades_to_offline(upper):
    assert run(WaitK(upper, 9)).delays == run(Offline(upper)).delays == [4, 4, 4, 4]


def test_wait_k_with_two_word_chunks(upper):
    # After 2 words wait-2 may write 1 unit; after 4 (the end) everything.
    ep = run(WaitK(upper, 2), SOURCE + ["e"], m=2)
    assert ep.pieces == ["A", "B C", "D E"]
    assert ep.delays == [2, 4, 4, 5, 5]


def test_wait_k_never_takes_back_committed_words(reverse):
    # Re-translation of a prefix disagrees with what was written: later words are appended.
    ep = run(WaitK(reverse, 1))
    # prefixes: [A] -> A ; [B A] -> past 1: A ; [C B A] -> past 2: A ; [D C B A] end -> past 3: A
    assert ep.pieces == ["A", "A", "A", "A"]


def test_fixed_chunk_writes_everything_new_each_turn(upper):
    assert run(FixedChunk(upper), m=2).delays == [2, 2, 4, 4]


def test_local_agreement_hand_computed(upper, reverse):
    ep = run(LocalAgreement(upper, 2))
    # turn 1: one hypothesis only; turn 2: LCP([A],[A B]) = A; turn 3: B; end: C D.
    assert ep.pieces == ["", "A", "B", "C D"]
    ep = run(LocalAgreement(reverse, 2))
    # consecutive reversed prefixes never agree on a first word: everything waits to the end.
    assert ep.pieces == ["", "", "", "D C B A"]
    assert ep.delays == [4, 4, 4, 4]


def test_local_agreement_with_three_hypotheses_waits_longer(upper):
    assert run(LocalAgreement(upper, 3)).pieces == ["", "", "A", "B C D"]


def test_common_prefix():
    assert common_prefix([["a", "b", "c"], ["a", "b"], ["a", "b", "d"]]) == ["a", "b"]
    assert common_prefix([["x"], ["y"]]) == []


def test_build_policy_names(upper):
    assert schedule("wait-5", upper).k == 5
    assert schedule("wait-k", upper, k=2).name == "wait-2"
    assert schedule("offline", upper).name == "offline"
    assert schedule("local-agreement", upper, n=3).name == "la-3"
    assert schedule("la", upper).name == "la-2"
    with pytest.raises(ConfigError, match="unknown policy"):
        schedule("nope", upper)
    with pytest.raises(ConfigError):
        WaitK(upper, 0)


def test_fixed_chunk_of_two_words_writes_after_every_second_word(upper):
    # read one word at a time: writes at words 2 and 4 (A B, then C D)
    ep = run(FixedChunk(upper, size=2))
    assert ep.pieces == ["", "A B", "", "C D"]
    assert ep.delays == [2, 2, 4, 4]
    # and the same as reading chunks of two words
    assert run(FixedChunk(upper, size=2), m=2).delays == [2, 2, 4, 4]
    # a last chunk shorter than the size is written at the end
    assert run(FixedChunk(upper, size=3)).delays == [3, 3, 3, 4]


def test_default_names_carry_the_parameters_and_a_label_wins(upper):
    names = [
        schedule("wait-k", upper, k=3).name,
        schedule("wait-5", upper).name,
        schedule("fixed-chunk", upper, size=2).name,
        schedule("fixed-chunk", upper, size=4).name,
        schedule("local-agreement", upper, n=3).name,
        schedule("offline", upper).name,
    ]
    assert names == ["wait-3", "wait-5", "fixed-2", "fixed-4", "la-3", "offline"]
    for kind in ("wait-k", "fixed-chunk", "local-agreement", "offline"):
        policy = schedule(kind, upper)
        policy.label = "mine"
        assert policy.name == "mine"
    with pytest.raises(ConfigError, match="at least 1 word"):
        FixedChunk(upper, size=0)

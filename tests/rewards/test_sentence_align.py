"""The HPO sentence splitter and aligner."""

from __future__ import annotations

import random

import numpy as np
import pytest

from simulpo.rewards.sentence_align import Bead, align_sentences, similarity, split_sentences

REFS = ["the cat sleeps on the mat .", "a dog barks at the moon .", "then everyone goes home ."]


def test_split_sentences_on_final_punctuation():
    words = ["Hello", "there", ".", "I", "am", "here!", "And", '"quoted."', "end"]
    assert split_sentences(words) == [range(3), range(3, 6), range(6, 8), range(8, 9)]
    assert split_sentences([]) == []


def test_split_characters_keeps_closing_quotes_with_their_sentence():
    assert split_sentences(list("你好。」他说！好"), "char") == [
        range(4),
        range(4, 7),
        range(7, 8),
    ]


def test_similarity_is_a_char_ngram_f1():
    assert similarity("the cat", "the cat") == pytest.approx(1.0)
    assert similarity("abc", "xyz") == 0.0
    assert similarity("", "abc") == 0.0
    # "ab" vs "abcd" (no spaces): 1-grams P 1, R 1/2; 2-grams P 1, R 1/3; the longer orders
    # are skipped for "ab": P = 1, R = 5/12, F1 = 2PR / (P + R)
    assert similarity("ab", "abcd") == pytest.approx(2 * (5 / 12) / (1 + 5 / 12))


def aligned(beads):
    return [(tuple(b.hyp), tuple(b.ref)) for b in beads if b.aligned]


def test_one_to_one():
    beads = align_sentences(
        ["the cat sleeps on a mat .", "a dog barks at the moon .", "all go home ."], REFS
    )
    assert aligned(beads) == [((0,), (0,)), ((1,), (1,)), ((2,), (2,))]


def test_a_missing_full_stop_gives_a_one_to_two_bead():
    hyps = ["the cat sleeps on the mat a dog barks at the moon .", "then everyone goes home ."]
    assert aligned(align_sentences(hyps, REFS)) == [((0,), (0, 1)), ((1,), (2,))]


def test_a_split_sentence_gives_a_two_to_one_bead():
    hyps = [
        "the cat sleeps .",
        "on the mat .",
        "a dog barks at the moon .",
        "then everyone goes home .",
    ]
    assert aligned(align_sentences(hyps, REFS))[0] == ((0, 1), (0,))


def test_junk_and_omissions_stay_unaligned():
    hyps = ["the cat sleeps on the mat .", "zq xv pl wk .", "then everyone goes home ."]
    beads = align_sentences(hyps, REFS)
    assert aligned(beads) == [((0,), (0,)), ((2,), (2,))]
    assert Bead(range(1, 2), range(1, 1)) in beads and Bead(range(1, 1), range(1, 2)) in beads


def test_beads_cover_both_sides_in_order():
    rng = random.Random(0)
    words = " ".join(REFS).split()
    for _ in range(30):
        hyps = [
            " ".join(rng.sample(words, rng.randint(1, 6))) + " ." for _ in range(rng.randint(0, 6))
        ]
        beads = align_sentences(hyps, REFS, max_merge=3)
        assert [i for b in beads for i in b.hyp] == list(range(len(hyps)))
        assert [j for b in beads for j in b.ref] == list(range(len(REFS)))
        assert all(len(b.hyp) <= 3 and len(b.ref) <= 3 for b in beads)


def test_repeating_one_good_sentence_pairs_the_first_copy_with_its_reference():
    # the copies may pair with the other references (they share "the"), where the quality
    # metric and the gate, not the aligner, score them as the poor translations they are
    assert aligned(align_sentences([REFS[0]] * 3, REFS))[0] == ((0,), (0,))


def test_empty_sides():
    assert align_sentences([], REFS[:1]) == [Bead(range(0), range(1))]
    assert align_sentences(["x ."], []) == [Bead(range(1), range(0))]
    with pytest.raises(ValueError, match="max_merge"):
        align_sentences(["x"], ["x"], max_merge=0)


def test_the_batched_similarity_table_matches_the_pairwise_similarity():
    from simulpo.rewards.sentence_align import _similarity_table

    rng = random.Random(1)
    words = [*" ".join(REFS).split(), "猫", "睡了", "x"]
    texts = ["", "a"] + [" ".join(rng.choices(words, k=rng.randint(1, 9))) for _ in range(12)]
    hyps, refs = texts[:7], texts[7:]
    table = _similarity_table(hyps, refs)
    expected = [[similarity(h, r) for r in refs] for h in hyps]
    np.testing.assert_allclose(table, expected, rtol=1e-12, atol=1e-12)

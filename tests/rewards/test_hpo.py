"""HPO's hierarchical reward on hand-made multi-sentence episodes."""

from __future__ import annotations

import logging
import random
import types

import numpy as np
import pytest
from reward_helpers import FixedQuality, TableQuality, episode

from simulpo.rewards import ReferenceSpan, build_quality, hpo_reward, sentence_lag

SRC = " ".join(f"s{i}" for i in range(1, 11))  # 10 source words, chunks of 2: delays 2 4 6 8 10
S1, S2 = "the cat sleeps .", "a dog barks at the moon ."
SEGMENTS = [(0, 4, S1), (4, 10, S2)]
TABLE = {
    (S1, S1): 100.0,
    (S2, S2): 100.0,
    ("a cat barks at the sun .", S2): 20.0,
    ("the cat sleeps a dog barks at the moon .", f"{S1} {S2}"): 90.0,
}


def ep(pieces, index=0, reference=None):
    return episode(SRC, pieces, reference, m=2, index=index)


GOOD = ["the cat", "sleeps .", "a dog", "barks at the", "moon ."]  # d = 2 2 4 4 6 6 8 8 8 10 10
POOR = ["the cat", "sleeps .", "a cat", "barks at the", "sun ."]
HALF = ["the cat", "sleeps ."]


def test_sentence_lag_by_hand():
    # d = 6 6 8 8 8 10 10, start 4, end 10, |ref| = 7: sum_i (d_i - 4 - 6i/7) / 7 = (28/7) / 7
    assert sentence_lag([6, 6, 8, 8, 8, 10, 10], 4, 10, 7) == pytest.approx(4 / 7)
    # the longer of hypothesis and reference sets the ideal rate: step 4 / max(2, 4) = 1
    assert sentence_lag([2, 2, 4, 4], 0, 4, 2) == pytest.approx((1 + 0 + 1 + 0) / 4)


def test_hierarchical_reward_by_hand():
    group = [ep(GOOD, 0), ep(POOR, 1), ep(HALF, 2)]
    res = hpo_reward(group, SEGMENTS, quality=TableQuality(TABLE), w=0.5, threshold=30.0)
    # sentence 1 in every episode: d = 2 2 4 4 on [0, 4], |ref| = 4: l = (1 + 0 + 1 + 0) / 4
    # sentence 2 of GOOD: l = 4/7 (test above); POOR's fails the gate (20 < 30): max = 10;
    # HALF has no sentence 2: unaligned, worst quality 0 and max latency 10
    np.testing.assert_allclose(res.quality, [100.0, 60.0, 50.0])
    g = np.array([(0.5 + 4 / 7) / 2, (0.5 + 10) / 2, (0.5 + 10) / 2])
    np.testing.assert_allclose(res.latency, g)
    np.testing.assert_allclose(res.latency_raw, [(0.5 + 4 / 7) / 2, (0.5 + 4 / 7) / 2, 5.25])
    zq = (res.quality - 70.0) / np.sqrt((30**2 + 10**2 + 20**2) / 3)
    zg = (g - g.mean()) / np.sqrt(np.mean((g - g.mean()) ** 2))
    np.testing.assert_allclose(res.rewards, zq - 0.5 * zg)
    assert abs(res.rewards.mean()) < 1e-12
    poor = res.details[1][1]
    assert poor.quality == 20.0 and poor.latency == pytest.approx(4 / 7)
    assert not poor.passed and poor.gated_latency == 10.0
    assert res.stats["n_unaligned"] == 1 and res.stats["n_gated"] == 2


def test_without_gate_the_poor_sentence_keeps_its_lag():
    group = [ep(GOOD, 0), ep(POOR, 1)]
    res = hpo_reward(group, SEGMENTS, quality=TableQuality(TABLE), threshold=None)
    np.testing.assert_allclose(res.latency, [(0.5 + 4 / 7) / 2] * 2)
    np.testing.assert_allclose(res.rewards, [1.0, -1.0])  # quality alone decides


def test_passing_lags_are_capped_at_the_maximum():
    res = hpo_reward(
        [ep(GOOD), ep(HALF, 1)], SEGMENTS, quality=TableQuality(TABLE), max_latency=0.52
    )
    np.testing.assert_allclose(res.latency, [(0.5 + 0.52) / 2, (0.5 + 0.52) / 2])


def test_a_missing_full_stop_merges_two_sentences_with_double_weight():
    # one hypothesis sentence for both references: start 0, end 10, |ref| = 4 + 7 = 11,
    # d = 2 2 4 6 6 8 8 8 10 10: l = (64 - 10/11 * 55) / 10 = 1.4
    merged = ep(["the cat", "sleeps", "a dog", "barks at the", "moon ."])
    res = hpo_reward([merged], SEGMENTS, quality=TableQuality(TABLE))
    (bead,) = res.details[0]
    assert bead.ref_segments == range(2) and bead.weight == 2
    assert bead.latency == pytest.approx(1.4)
    assert res.quality[0] == 90.0 and res.latency[0] == pytest.approx(1.4)


def test_beads_are_weighted_by_the_reference_sentences_they_cover():
    segs = [(0, 4, S1), (4, 7, "a dog barks ."), (7, 10, "the moon shines .")]
    table = {
        (S1, S1): 100.0,
        ("a dog barks the moon shines .", "a dog barks . the moon shines ."): 20.0,
    }
    hyp = ep(["the cat", "sleeps .", "a dog", "barks the", "moon shines ."])
    res = hpo_reward([hyp], segs, quality=TableQuality(table))
    # HPO's plain mean over beads would give (100 + 20) / 2 = 60
    assert res.quality[0] == pytest.approx((100 + 2 * 20) / 3)


def test_single_sentence_episode_defaults_to_one_segment():
    src = "s1 s2 s3 s4"
    good = episode(src, ["the cat", "sleeps ."], S1, index=0)
    late = episode(src, ["", "the cat sleeps ."], S1, index=1)
    res = hpo_reward([good, late], quality=TableQuality({(S1, S1): 100.0}))
    # good: l = 0.5 (as above); late: d = 4 4 4 4: (3 + 2 + 1 + 0) / 4 = 1.5
    np.testing.assert_allclose(res.latency, [0.5, 1.5])
    np.testing.assert_allclose(res.rewards, [0.5, -0.5])


def test_character_targets():
    src = "s1 s2 s3 s4"
    ref = "猫睡了。"
    e = episode(src, ["猫睡", "了。"], ref, unit="char")
    res = hpo_reward([e], quality=TableQuality({(ref, ref): 100.0}))
    (bead,) = res.details[0]
    assert bead.hypothesis == ref and bead.latency == pytest.approx(0.5)


def test_empty_translation_gets_worst_quality_and_maximum_latency():
    res = hpo_reward([ep(GOOD), ep([], 1)], SEGMENTS, quality=build_quality("chrf"), threshold=30.0)
    assert res.quality[1] == 0.0 and res.latency[1] == 10.0
    assert res.stats["n_empty"] == 1 and np.isfinite(res.rewards).all()
    assert res.rewards[0] > res.rewards[1]


def test_nan_sentence_quality_is_replaced_and_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="simulpo.rewards.group"):
        res = hpo_reward(
            [ep(GOOD), ep(GOOD, 1)], SEGMENTS, quality=FixedQuality([80, float("nan"), 60, 70])
        )
    # the NaN takes the worst finite sentence score of the group (60)
    np.testing.assert_allclose(res.quality, [(80 + 60) / 2, (60 + 70) / 2])
    assert res.stats["n_nonfinite_quality"] == 1 and "non-finite" in caplog.text
    assert np.isfinite(res.rewards).all()


def test_bad_segments_are_refused():
    with pytest.raises(ValueError, match="in order"):
        hpo_reward([ep(GOOD)], [(4, 10, S2), (0, 4, S1)], quality=TableQuality(TABLE))
    with pytest.raises(ValueError, match="within the source"):
        hpo_reward([ep(GOOD)], [(0, 12, S1)], quality=TableQuality(TABLE))


def test_segments_may_be_given_as_objects():
    segs = [ReferenceSpan(0, 4, S1), ReferenceSpan(4, 10, S2)]
    res = hpo_reward([ep(GOOD)], segs, quality=TableQuality(TABLE))
    assert res.quality[0] == 100.0


# --------------------------------------------------------------------- gibberish


VOCAB = [
    "the",
    "a",
    "of",
    "dog",
    "cat",
    "moon",
    "house",
    "green",
    "river",
    "sings",
    "under",
    "never",
    "quickly",
    "barks",
    "at",
    "sleeps",
]
FOREIGN = [
    "house",
    "green",
    "river",
    "sings",
    "under",
    "never",
    "quickly",
    "bread",
    "tree",
]  # none in the reference


def gibberish(rng: random.Random, kind: str) -> list[str]:
    """Pieces written as early as possible (all after the first chunk)."""
    if kind == "foreign":
        words = [rng.choice(FOREIGN) for _ in range(11)]
        return [" ".join(words[:5]) + " . " + " ".join(words[5:]) + " ."]
    if kind == "random":
        words = [rng.choice(VOCAB) for _ in range(11)]
        return [" ".join(words[:5]) + " . " + " ".join(words[5:]) + " ."]
    if kind == "repeated":
        return ["the the the the . the the the the the the ."]
    if kind == "many":
        return [" . ".join(" ".join(rng.choice(VOCAB) for _ in range(4)) for _ in range(6)) + " ."]
    return ["moon sleeps . cat dog"]  # a few right words, early


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["foreign", "random", "repeated", "many", "short"])
@pytest.mark.parametrize("metric", ["chrf", "bleu"])
@pytest.mark.parametrize("resegment", ["sentences", "mwer"])
def test_gibberish_cannot_beat_a_real_translation(seed, kind, metric, resegment):
    rng = random.Random(seed)
    quality = build_quality(metric)
    group = [
        ep(["the cat", "sleeps .", "a dog", "barks at a", "moon ."], 0),  # real, one word off
        ep(gibberish(rng, kind), 1),  # junk, written at once
        ep(["", "", "", "", f"{S1} {S2}"], 2),  # perfect but late: keeps the z-scores honest
    ]
    res = hpo_reward(
        group, SEGMENTS, quality=quality, threshold=quality.threshold, resegment=resegment
    )
    assert res.quality[0] > res.quality[1]
    assert res.latency[0] < res.latency[1]  # junk is early, yet the gate makes it late
    assert res.rewards[0] > res.rewards[1], (kind, res.details[1])
    if kind in ("foreign", "repeated"):
        assert not any(b.passed for b in res.details[1])
        assert res.latency[1] == 10.0  # maximum latency


@pytest.mark.parametrize("metric", ["chrf", "bleu"])
def test_repeating_the_easy_sentence_cannot_beat_translating_both(metric):
    quality = build_quality(metric)
    group = [
        ep(["the cat", "sleeps .", "a dog", "barks at a", "moon ."], 0),
        ep(["the cat", "sleeps .", "the cat", "sleeps .", "the cat sleeps ."], 1),
    ]
    res = hpo_reward(group, SEGMENTS, quality=quality, threshold=quality.threshold)
    assert res.quality[0] > res.quality[1] and res.rewards[0] > res.rewards[1]


@pytest.mark.parametrize("seed", range(5))
def test_reward_orders_by_quality_at_equal_latency_and_by_latency_at_equal_quality(seed):
    rng = np.random.default_rng(seed)
    src = "s1 s2 s3 s4"
    schedules = [["", "the cat sleeps ."], ["the", "cat sleeps ."], ["the cat", "sleeps ."]]
    group = [episode(src, schedules[rng.integers(3)], S1, index=i) for i in range(6)]
    group[1] = episode(src, schedules[1], S1, index=1)
    group[2] = episode(src, schedules[1], S1, index=2)  # same lag as episode 1
    group[3] = episode(src, schedules[0], S1, index=3)  # late ...
    group[4] = episode(src, schedules[2], S1, index=4)  # ... and early, same quality
    q = rng.uniform(40, 100, 6)
    q[3] = q[4] = 70.0
    res = hpo_reward(group, quality=FixedQuality(q), threshold=30.0)
    assert res.latency[1] == res.latency[2]
    assert (res.rewards[1] > res.rewards[2]) == (q[1] > q[2])
    assert res.latency[4] < res.latency[3] and res.rewards[4] > res.rewards[3]


def test_long_form_segments_with_offset_and_duration_are_accepted():
    segs = [
        types.SimpleNamespace(offset=0.0, duration=4.0, reference=S1),
        types.SimpleNamespace(offset=4.0, duration=6.0, reference=S2),
    ]
    res = hpo_reward([ep(GOOD)], segs, quality=TableQuality(TABLE))
    np.testing.assert_allclose(res.latency, [(0.5 + 4 / 7) / 2])


def test_nan_delays_give_the_maximum_latency(caplog):
    broken = ep(GOOD, 1)
    broken.delays = [float("nan")] * len(broken.delays)
    with caplog.at_level(logging.WARNING, logger="simulpo.rewards.hpo"):
        res = hpo_reward([ep(GOOD), broken], SEGMENTS, quality=TableQuality(TABLE))
    assert res.latency[1] == 10.0 and res.stats["n_nonfinite_latency"] == 2
    assert np.isfinite(res.rewards).all() and "not finite" in caplog.text


U1, U2 = "the cat sleeps", "a dog barks at the moon"  # a target without sentence punctuation


def test_mwer_resegmentation_scores_each_sentence_of_an_unpunctuated_stream():
    table = {(U1, U1): 100.0, (U2, U2): 80.0}
    stream = ep(["the cat", "sleeps", "a dog", "barks at the", "moon"])  # d = 2 2 4 6 6 8 8 8 10
    res = hpo_reward(
        [stream], [(0, 4, U1), (4, 10, U2)], quality=TableQuality(table), resegment="mwer"
    )
    first, second = res.details[0]
    assert (first.hypothesis, second.hypothesis) == (U1, U2)
    # sentence 1: d = 2 2 4 on [0, 4], |ref| = 3: (2 - 4/3, 2 - 8/3, 4 - 4) / 3 = 0
    # sentence 2: d = 6 6 8 8 8 10 on [4, 10], step 1: (1, 0, 1, 0, -1, 0) / 6 = 1/6
    assert first.latency == pytest.approx(0.0) and second.latency == pytest.approx(1 / 6)
    assert res.quality[0] == 90.0 and res.latency[0] == pytest.approx(1 / 12)
    # split at full stops, the same stream is one sentence over both references
    (merged,) = hpo_reward(
        [stream], [(0, 4, U1), (4, 10, U2)],
        quality=TableQuality({(f"{U1} {U2}", f"{U1} {U2}"): 90.0}),
    ).details[0]  # fmt: skip
    assert merged.ref_segments == range(2)


def test_mwer_resegmentation_leaves_an_untranslated_sentence_unaligned():
    short = ep(["the cat", "sleeps"])
    res = hpo_reward(
        [short], [(0, 4, U1), (4, 10, U2)], quality=TableQuality({(U1, U1): 100.0}),
        resegment="mwer",
    )  # fmt: skip
    first, second = res.details[0]
    assert first.passed and not second.passed and second.hypothesis == ""
    assert res.quality[0] == 50.0 and res.latency[0] == pytest.approx((0.0 + 10.0) / 2)
    assert res.stats["n_unaligned"] == 1


def test_unknown_resegmentation_is_refused():
    with pytest.raises(ValueError, match="resegment"):
        hpo_reward([ep(GOOD)], SEGMENTS, quality=TableQuality(TABLE), resegment="spaces")

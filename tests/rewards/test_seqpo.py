"""SeqPO's fused reward against hand computations: AL, the truncation floor, z-scores."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from reward_helpers import FixedQuality, episode

from simulpo.errors import ConfigError
from simulpo.rewards import build_quality
from simulpo.rewards.seqpo import episode_latency, seqpo_reward

SRC = "w1 w2 w3 w4"  # |X| = 4, read in chunks of m = 2: delays 2 then 4
REF = "a b c d"  # |Y| = 4, so gamma = 1


def group3():
    return [
        episode(SRC, ["a b", "c d"], REF, index=0),  # d = 2 2 4 4
        episode(SRC, ["", "a b c d"], REF, index=1),  # d = 4 4 4 4
        episode(SRC, ["a b c x", ""], REF, index=2),  # d = 2 2 2 2
    ]


def test_al_of_the_hand_made_group():
    # A: tau = 3 (first d >= 4): (2 + (2-1) + (4-2)) / 3 = 5/3
    # B: tau = 1: 4
    # C: no d reaches 4, tau = 4: (2 + 1 + 0 - 1) / 4 = 1/2
    np.testing.assert_allclose(episode_latency(group3(), "AL"), [5 / 3, 4.0, 0.5])


def test_fused_reward_of_three_episodes_by_hand():
    res = seqpo_reward(group3(), quality=FixedQuality([70.0, 90.0, 50.0]), lam=2.0)
    # Q: mean 70, deviations 0, 20, -20, population std 20*sqrt(2/3)
    zq = np.array([0.0, 1.0, -1.0]) * math.sqrt(3 / 2)
    # L truncated at the floor m = 2: 5/3 -> 2, 4, 1/2 -> 2; mean 8/3, deviations -2/3, 4/3, -2/3
    # population std sqrt((4/9 + 16/9 + 4/9) / 3) = sqrt(8/9)
    zl = np.array([-2 / 3, 4 / 3, -2 / 3]) / math.sqrt(8 / 9)
    np.testing.assert_allclose(res.quality_norm, zq)
    np.testing.assert_allclose(res.latency, [2.0, 4.0, 2.0])
    np.testing.assert_allclose(res.latency_raw, [5 / 3, 4.0, 0.5])
    np.testing.assert_allclose(res.latency_norm, zl)
    np.testing.assert_allclose(res.rewards, zq - 2.0 * zl)
    assert abs(res.rewards.mean()) < 1e-12  # ready for r - mean(r)
    assert res.stats["n_below_floor"] == 2 and res.stats["n_empty"] == 0


def test_without_truncation_the_raw_al_is_used():
    res = seqpo_reward(group3(), quality=FixedQuality([70.0, 90.0, 50.0]), truncate=False)
    # L = 5/3, 4, 1/2: mean 37/18, deviations -7/18, 35/18, -28/18
    dev = np.array([-7.0, 35.0, -28.0]) / 18
    zl = dev / math.sqrt(np.mean(dev**2))
    np.testing.assert_allclose(res.latency, [5 / 3, 4.0, 0.5])
    np.testing.assert_allclose(res.latency_norm, zl)


def spam_group():
    honest = episode(SRC, ["a b", "c d"], REF, index=0)  # AL 5/3, below m = 2 by anticipation
    # eight units right after the first chunk: tau = 8, AL = (1/8) sum_{i=1..8} (2 - (i-1))
    spam = episode(SRC, ["a a b b c c d d", ""], REF, index=1)
    return [honest, spam]


def test_spam_has_negative_al_and_is_truncated_to_the_floor():
    group = spam_group()
    res = seqpo_reward(group, quality=FixedQuality([80.0, 40.0]))
    assert res.latency_raw[1] == pytest.approx(2 - 28 / 8)  # = -1.5: the "negative AL" hack
    np.testing.assert_allclose(res.latency, [2.0, 2.0])  # both credited at the floor only
    # latency ties, so quality decides: the honest translation wins
    assert res.rewards[0] > res.rewards[1]
    np.testing.assert_allclose(res.rewards, [1.0, -1.0])


def test_without_truncation_spam_wins_the_ablation():
    res = seqpo_reward(spam_group(), quality=FixedQuality([80.0, 40.0]), truncate=False)
    np.testing.assert_allclose(res.latency, [5 / 3, -1.5])
    # z(Q) = (1, -1), z(L) = (1, -1): r = (1 - 2, -1 + 2)
    np.testing.assert_allclose(res.rewards, [-1.0, 1.0])


def test_explicit_floor_overrides_the_first_chunk():
    res = seqpo_reward(group3(), quality=FixedQuality([1.0, 2.0, 3.0]), floor=3.0)
    np.testing.assert_allclose(res.latency, [3.0, 4.0, 3.0])


def test_floor_for_average_proportion_is_a_fraction_of_the_source():
    # AP = sum(d) / (|X| |Y|): A = 12/16, B = 1, C = 8/16 -> floor 2/4 = 0.5
    res = seqpo_reward(group3(), quality=FixedQuality([1.0, 2.0, 3.0]), latency="AP")
    np.testing.assert_allclose(res.latency_raw, [0.75, 1.0, 0.5])
    np.testing.assert_allclose(res.latency, [0.75, 1.0, 0.5])


def test_laal_is_pluggable():
    # LAAL: gamma = max(|Y|, |Y*|) / |X|; for the spam episode |Y*| = 8, gamma = 2:
    # (1/8) sum_{i=1..8} (2 - (i-1)/2) = 2 - 14/8
    res = seqpo_reward(
        spam_group(), quality=FixedQuality([1.0, 1.0]), latency="LAAL", truncate=False
    )
    assert res.latency_raw[1] == pytest.approx(2 - 14 / 8)


def test_empty_translation_waited_for_everything():
    group = [episode(SRC, ["a b", "c d"], REF), episode(SRC, [], REF, index=1)]
    res = seqpo_reward(group, quality=build_quality("chrf"))
    assert math.isnan(res.latency_raw[1])  # AL is undefined without target units
    assert res.latency[1] == 4.0  # source length
    assert res.quality[1] == 0.0  # what chrF gives an empty string
    assert res.stats["n_empty"] == 1 and res.stats["n_nonfinite_latency"] == 0
    assert np.isfinite(res.rewards).all() and res.rewards[0] > res.rewards[1]


def test_nan_quality_does_not_poison_the_group(caplog):
    with caplog.at_level(logging.WARNING, logger="simulpo.rewards.group"):
        res = seqpo_reward(group3(), quality=FixedQuality([float("nan"), 90.0, 50.0]))
    assert np.isfinite(res.rewards).all()
    assert math.isnan(res.quality[0])  # the raw score is kept for inspection ...
    assert res.quality_norm[0] == res.quality_norm[2]  # ... and ranked with the worst (50)
    assert res.stats["n_nonfinite_quality"] == 1 and "non-finite quality" in caplog.text


def test_all_nan_quality_falls_back_to_the_metric_worst():
    res = seqpo_reward(group3(), quality=FixedQuality([float("nan")] * 3))
    np.testing.assert_array_equal(res.quality_norm, [0.0, 0.0, 0.0])
    assert np.isfinite(res.rewards).all()


def test_nan_latency_ranks_with_the_latest():
    group = group3()
    group[0].delays = [float("nan")] * len(group[0].delays)
    res = seqpo_reward(group, quality=FixedQuality([1.0, 1.0, 1.0]))
    assert res.latency[0] == 4.0 and res.stats["n_nonfinite_latency"] == 1
    assert np.isfinite(res.rewards).all()


def test_lower_is_better_metrics_are_oriented():
    res = seqpo_reward(group3(), quality=FixedQuality([3.0, 1.0, 2.0], higher_is_better=False))
    assert res.quality_norm[1] > res.quality_norm[2] > res.quality_norm[0]


def test_a_group_of_one_gets_reward_zero():
    res = seqpo_reward(group3()[:1], quality=FixedQuality([55.0]))
    np.testing.assert_array_equal(res.rewards, [0.0])


def test_errors_are_clear():
    with pytest.raises(ValueError, match="at least one"):
        seqpo_reward([], quality=FixedQuality([]))
    with pytest.raises(ValueError, match="reference"):
        seqpo_reward([episode(SRC, ["a"], None)], quality=FixedQuality([1.0]))
    with pytest.raises(ConfigError, match="EndOffset"):
        seqpo_reward(group3(), quality=FixedQuality([1.0, 2.0, 3.0]), latency="EndOffset")


@pytest.mark.parametrize("seed", range(5))
def test_reward_orders_by_quality_at_equal_latency_and_by_latency_at_equal_quality(seed):
    rng = np.random.default_rng(seed)
    n = 6
    # delays chosen so that the AL values spread above the floor
    pieces = [["", "a b c d"], ["a", "b c d"], ["a b", "c d"], ["a b c", "d"]]
    group = [episode(SRC, pieces[rng.integers(4)], REF, index=i) for i in range(n)]
    group[1] = episode(SRC, pieces[1], REF, index=1)
    group[2] = episode(SRC, pieces[1], REF, index=2)  # same latency as episode 1
    q = rng.uniform(0, 100, n)
    q[3] = q[4] = 42.0  # same quality
    group[3] = episode(SRC, pieces[0], REF, index=3)  # latest
    group[4] = episode(SRC, pieces[3], REF, index=4)  # earlier
    res = seqpo_reward(group, quality=FixedQuality(q))
    assert res.latency[1] == res.latency[2]
    assert (res.rewards[1] > res.rewards[2]) == (q[1] > q[2])
    assert res.latency[4] < res.latency[3] and res.rewards[4] > res.rewards[3]
    # raising one episode's quality never lowers its reward
    q2 = q.copy()
    q2[0] += 10
    assert seqpo_reward(group, quality=FixedQuality(q2)).rewards[0] >= res.rewards[0] - 1e-12

"""RewardConfig and build_reward: the function the trainer calls as ``reward(group)``."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from reward_helpers import TableQuality, episode

from simulpo.config import from_dict
from simulpo.errors import ConfigError
from simulpo.rewards import RewardConfig, build_reward

SRC = "w1 w2 w3 w4"
REF = "the cat sleeps ."


def group():
    return [
        episode(SRC, ["the cat", "sleeps ."], REF, index=0),
        episode(SRC, ["", "the cat sleeps ."], REF, index=1),
        episode(SRC, ["the dog", "sleeps ."], REF, index=2),
        episode(SRC, [], REF, index=3),
    ]


@pytest.mark.parametrize("kind", ["seqpo", "hpo"])
def test_default_rewards_are_centered_and_finite(kind):
    reward = build_reward(RewardConfig(kind=kind))
    res = reward(group())
    assert res.rewards.shape == (4,) and np.isfinite(res.rewards).all()
    assert abs(res.rewards.mean()) < 1e-12  # advantages r - mean(r) keep them as they are
    assert res.rewards[0] == res.rewards.max()  # right and early
    assert res.rewards[3] == res.rewards.min()  # empty
    for key in ("reward_mean", "quality_mean", "latency_mean", "n_empty", "n_nonfinite_quality"):
        assert key in res.stats
    assert res.stats["n_empty"] == 1


def test_seqpo_config_reaches_the_reward():
    base = build_reward(RewardConfig())(group())
    ablation = build_reward(RewardConfig(truncate=False))(group())
    # episode 0: d = 2 2 4 4, |Y| = 4: tau = 3, AL = (2 + 1 + 2) / 3 < floor 2
    assert base.latency[0] == 2.0 and ablation.latency[0] == pytest.approx(5 / 3)
    lam0 = build_reward(RewardConfig(lam=0.0))(group())
    np.testing.assert_allclose(lam0.rewards, lam0.quality_norm)


def test_hpo_gate_uses_the_metric_default_unless_told():
    # one episode right and early, one poor (below chrF's default gate of 30) and earlier
    src = "w1 w2 w3 w4"
    right = episode(src, ["", "the cat sleeps ."], REF, index=0)
    poor = episode(src, ["the cat eats .", ""], REF, index=1)
    table = {("the cat sleeps .", REF): 100.0, ("the cat eats .", REF): 25.0}
    gated = build_reward(RewardConfig(kind="hpo"), quality=TableQuality(table))([right, poor])
    assert gated.latency[1] == 4.0  # failed the gate: the maximum, the source length
    ungated = build_reward(RewardConfig(kind="hpo", gate=False), quality=TableQuality(table))(
        [right, poor]
    )
    assert ungated.latency[1] < ungated.latency[0]
    low = build_reward(RewardConfig(kind="hpo", threshold=20.0), quality=TableQuality(table))(
        [right, poor]
    )
    assert low.latency[1] == ungated.latency[1]


def test_hpo_reward_takes_segments():
    src = "w1 w2 w3 w4 w5 w6"
    e = episode(src, ["the cat", "sleeps .", "a dog barks ."], "unused", index=0)
    res = build_reward(RewardConfig(kind="hpo"))([e], [(0, 3, REF), (3, 6, "a dog barks .")])
    assert [b.ref_segments for b in res.details[0]] == [range(1), range(1, 2)]
    assert res.quality[0] == pytest.approx(100.0)


def test_hpo_config_reaches_the_resegmentation():
    src = "w1 w2 w3 w4 w5 w6"
    e = episode(src, ["the cat", "sleeps", "a dog barks"], "unused", index=0)
    segments = [(0, 3, "the cat sleeps"), (3, 6, "a dog barks")]
    res = build_reward(RewardConfig(kind="hpo", resegment="mwer"))([e], segments)
    assert [b.hypothesis for b in res.details[0]] == ["the cat sleeps", "a dog barks"]
    assert res.quality[0] == pytest.approx(100.0)


def test_config_from_a_recipe_mapping():
    cfg = from_dict(RewardConfig, {"kind": "hpo", "w": 0.25, "threshold": 40, "quality": "bleu"})
    assert cfg.kind == "hpo" and cfg.w == 0.25 and cfg.threshold == 40.0
    reward = build_reward(cfg)
    assert reward.metric.name == "BLEU" and reward.config is cfg
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(RewardConfig, {"lambda": 2})


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"kind": "ppo"}, "reward kind"),
        ({"latency": "EndOffset"}, "latency"),
        ({"lam": -1.0}, ">= 0"),
        ({"max_merge": 0}, "max_merge"),
        ({"max_latency": 0.0}, "max_latency must be > 0"),
        ({"quality": "rouge"}, "quality metric"),
        ({"resegment": "spaces"}, "resegment"),
    ],
)
def test_bad_configs_are_refused(bad, match):
    with pytest.raises(ConfigError, match=match):
        build_reward(RewardConfig(**bad))


@pytest.mark.parametrize("kind", ["seqpo", "hpo"])
def test_reward_functions_pickle_for_worker_processes(kind):
    reward = build_reward(RewardConfig(kind=kind))
    copy = pickle.loads(pickle.dumps(reward))
    np.testing.assert_array_equal(copy(group()).rewards, reward(group()).rewards)

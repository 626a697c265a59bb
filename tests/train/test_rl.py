"""The RL loop: rollout groups through the streaming loop, data order, exact resumption."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from kill import killed_after_checkpoint
from tiny_lm import WORDS, tiny_chat_lm

from simulpo.eval.testset import Sentence
from simulpo.policies.llm import LLMPolicy
from simulpo.stream.segmenter import FixedWords
from simulpo.train.rl import RLConfig, step_sources, train_rl
from simulpo.train.rollout import collate, sample_groups


def segments(n: int, seed: int = 0) -> list[Sentence]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = [WORDS[j] for j in rng.integers(len(WORDS), size=int(rng.integers(2, 5)))]
        out.append(Sentence(str(i), " ".join(words), " ".join(words).upper()))
    return out


def tiny_config(**changes) -> RLConfig:
    config = RLConfig(
        steps=2,
        sources_per_step=2,
        group_size=3,
        max_piece_tokens=6,
        max_final_tokens=16,
        save_every=1,
        eval_segments=2,
    )
    config.grpo.lr = 1e-3
    config.grpo.micro_batch_size = 4
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def test_step_sources_visit_every_source_once_per_epoch():
    config = RLConfig(sources_per_step=4, seed=3)
    seen = np.concatenate([step_sources(10, config, s) for s in range(5)])  # 2 epochs
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:20]) == list(range(10))
    assert not np.array_equal(seen[:10], seen[10:20])  # each epoch has its own order
    again = np.concatenate([step_sources(10, config, s) for s in range(5)])
    np.testing.assert_array_equal(seen, again)


def test_sample_groups_records_policy_tokens_of_every_episode():
    model, tok = tiny_chat_lm()
    policy = LLMPolicy(model, tok, do_sample=True, seed=1, max_piece_tokens=6, max_final_tokens=16)
    data = segments(3)
    rollouts = sample_groups(
        policy, [s.source.split() for s in data], [s.reference for s in data], FixedWords(1), 4
    )
    assert [r.group for r in rollouts] == [0] * 4 + [1] * 4 + [2] * 4
    for r in rollouts:
        assert r.episode.source == data[r.group].source.split()
        assert len(r.token_ids) == len(r.policy_mask) == len(r.logprobs)
        written = [t for t, m in zip(r.token_ids, r.policy_mask) if m]
        # The policy's tokens are its pieces and their end-of-turn tokens, nothing else.
        # (pieces are decoded one by one, so compare without the spaces between them)
        text = tok.decode(written, skip_special_tokens=True)
        assert "".join(text.split()) == "".join("".join(r.episode.pieces).split())
        assert r.num_policy_tokens >= len(r.episode.pieces)  # at least each end-of-turn
        assert all(lp == 0.0 for lp, m in zip(r.logprobs, r.policy_mask) if not m)
        assert all(lp <= 0.0 for lp in r.logprobs)
        assert not r.episode.memory  # the cache handle is released
    batch = collate(rollouts, tok.pad_token_id)
    width = max(len(r.token_ids) for r in rollouts)
    assert batch.input_ids.shape == (12, width)
    assert batch.attention_mask.sum().item() == sum(len(r.token_ids) for r in rollouts)
    assert batch.policy_mask.sum().item() == sum(r.num_policy_tokens for r in rollouts)


def test_groups_differ_when_sampling():
    model, tok = tiny_chat_lm()
    policy = LLMPolicy(model, tok, do_sample=True, temperature=1.5, seed=0, max_piece_tokens=6)
    src = ["the", "big", "dog", "sees", "a", "cat"]
    rollouts = sample_groups(policy, [src], [None], FixedWords(1), 6)
    assert len({tuple(r.token_ids) for r in rollouts}) > 1


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_killed_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    base, tok = tiny_chat_lm()
    data, config = segments(6), tiny_config()

    straight = copy.deepcopy(base)
    result = train_rl(straight, tok, data, data[:2], config, tmp_path / "a", progress=False)
    assert result["steps"] == 2 and set(result["dev"]) >= {"BLEU", "chrF", "AL"}
    assert any(not torch.equal(v, weights(base)[k]) for k, v in weights(straight).items())

    with killed_after_checkpoint(monkeypatch):
        train_rl(copy.deepcopy(base), tok, data, data[:2], config, tmp_path / "b", progress=False)
    resumed = copy.deepcopy(base)
    train_rl(resumed, tok, data, data[:2], config, tmp_path / "b", progress=False)
    for k, v in weights(straight).items():
        torch.testing.assert_close(weights(resumed)[k], v, rtol=0, atol=0)
    log = (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()
    assert sum('"quality"' in line for line in log) == 2  # one event per step, none repeated


def test_group_of_one_is_refused():
    from simulpo.errors import ConfigError

    with pytest.raises(ConfigError, match="group_size"):
        RLConfig(group_size=1).check()


def test_rerunning_a_finished_run_keeps_its_dev_scores(tmp_path):
    base, tok = tiny_chat_lm()
    data, config = segments(6), tiny_config()
    first = train_rl(copy.deepcopy(base), tok, data, data[:2], config, tmp_path, progress=False)
    assert first["dev"]
    again = train_rl(copy.deepcopy(base), tok, data, data[:2], config, tmp_path, progress=False)
    assert again["dev"] == first["dev"]
    assert json.loads((tmp_path / "result.json").read_text())["dev"] == first["dev"]

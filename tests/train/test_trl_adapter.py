"""TRL interoperability: rollouts in the format of TRL's ``rollout_func``, TRL's GRPO loss equal
to ours on the same episodes, and ``trl.GRPOTrainer`` training the streaming environment."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch

from simulpo.data.synthetic import generate_corpus
from simulpo.errors import ConfigError
from simulpo.models.lm import add_lora, build_tiny_lm
from simulpo.models.tokenizer import train_tokenizer
from simulpo.policies.llm import LLMPolicy
from simulpo.stream.episode import Episode
from simulpo.stream.segmenter import FixedWords
from simulpo.train.grpo import GRPOConfig, grpo_loss, token_logprobs
from simulpo.train.rollout import collate, sample_groups
from simulpo.train.trl_adapter import (
    StreamingRolloutFunc,
    to_trl,
    trl_config,
    trl_dataset,
    trl_loss_inputs,
    trl_reward,
)

trl = pytest.importorskip("trl", reason="TRL is an optional extra: pip install 'simulpo[trl]'")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental in TRL


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def lm():
    pairs = generate_corpus(60, seed=5)
    tok = train_tokenizer([" ".join(p.src) for p in pairs] + [" ".join(p.tgt) for p in pairs], 300)
    model = build_tiny_lm(tok, hidden_size=32, num_layers=2, num_heads=2, max_positions=512)
    return model.eval(), tok, pairs


def sample(model, tok, pairs, group_size=2, sources=3):
    policy = LLMPolicy(
        model, tok, do_sample=True, temperature=0.9, max_piece_tokens=3, max_final_tokens=5, seed=2
    )
    srcs = [list(p.src[: 4 + i]) for i, p in enumerate(pairs[:sources])]
    refs = [" ".join(p.tgt) for p in pairs[:sources]]
    return sample_groups(policy, srcs, refs, FixedWords(2), group_size)


def test_to_trl_splits_each_dialogue_at_its_first_policy_token(lm):
    model, tok, pairs = lm
    rollouts = sample(model, tok, pairs)
    batch = to_trl(rollouts)
    assert set(batch) == {"prompt_ids", "completion_ids", "logprobs", "env_mask", "episode"}
    for i, r in enumerate(rollouts):
        prompt, completion = batch["prompt_ids"][i], batch["completion_ids"][i]
        assert prompt + completion == r.token_ids
        assert tok.decode(prompt).endswith("<|im_start|>assistant\n")  # the generation prompt
        start = len(prompt)
        assert batch["env_mask"][i] == [int(m) for m in r.policy_mask[start:]]
        assert batch["env_mask"][i][0] == 1 and sum(batch["env_mask"][i]) == r.num_policy_tokens
        assert batch["logprobs"][i] == pytest.approx(r.logprobs[start:])
        assert batch["episode"][i] is r.episode
        # Later source chunks sit inside the completion, masked out.
        chunks = [j for j, m in enumerate(batch["env_mask"][i]) if m == 0]
        assert "<|im_start|>user" in tok.decode([completion[j] for j in chunks])


def completion_view(x: torch.Tensor, starts: list[int], width: int) -> torch.Tensor:
    """Dialogue-aligned ``(N, T)`` values moved to TRL's completion layout ``(N, width)``."""
    out = torch.zeros(x.shape[0], width, dtype=x.dtype)
    for i, s in enumerate(starts):
        part = x[i, s : s + width]
        out[i, : len(part)] = part
    return out


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_trls_loss_equals_ours_on_the_same_episodes(lm, loss_type, tmp_path):
    base, tok, pairs = lm
    rollouts = sample(base, tok, pairs, group_size=3)
    model = add_lora(copy.deepcopy(base), r=4)
    with torch.no_grad():  # move the adapters off the identity so the KL term is not 0
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model.train()
    cfg = GRPOConfig(loss_type=loss_type, beta=0.1, eps_low=0.2, eps_high=0.28, temperature=0.9)
    args = trl_config(
        cfg, group_size=3, max_tokens=40, output_dir=str(tmp_path), use_cpu=True,
        report_to="none", per_device_train_batch_size=len(rollouts),
        bf16=False,
    )  # fmt: skip
    trainer = trl.GRPOTrainer(
        model=model, processing_class=tok, reward_funcs=lambda **kw: [0.0], args=args,
        train_dataset=trl_dataset(["a"], ["b"]),
    )  # fmt: skip
    trainer.current_gradient_accumulation_steps = 1

    tensors = collate(rollouts, tok.pad_token_id)
    mask = tensors.policy_mask
    advantages = torch.linspace(-1.5, 1.5, len(rollouts))
    g = torch.Generator().manual_seed(0)
    old = torch.where(mask, tensors.old_logprobs + 0.3 * torch.randn(mask.shape, generator=g), 0.0)
    with torch.no_grad(), model.disable_adapter():
        ref = token_logprobs(model, tensors.input_ids, tensors.attention_mask, 0.9, mask)

    batch = to_trl(rollouts)
    starts = [len(p) for p in batch["prompt_ids"]]
    width = max(len(c) for c in batch["completion_ids"])
    inputs = trl_loss_inputs(
        batch, advantages, tok.pad_token_id, old_logprobs=completion_view(old, starts, width)
    )
    inputs["ref_per_token_logps"] = completion_view(ref, starts, width)
    theirs = trainer.compute_loss(model, inputs)
    theirs.backward()
    their_grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    model.zero_grad()

    logp = token_logprobs(model, tensors.input_ids, tensors.attention_mask, 0.9, mask)
    ours, _ = grpo_loss(
        logp, old, advantages, mask, ref, beta=0.1, eps_low=0.2, eps_high=0.28,
        loss_type=loss_type, max_tokens=40,
    )  # fmt: skip
    ours.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-4, abs=1e-6)
    for a, b in zip(their_grads, [p.grad for p in model.parameters() if p.requires_grad]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_trl_reward_scores_consecutive_groups_with_their_references():
    seen = []

    def reward(group):
        seen.append([ep.reference for ep in group])
        return np.array([len(ep.reference) for ep in group], dtype=float)

    episodes = [Episode(i, ["w"], [], 1.0) for i in range(4)]
    func = trl_reward(reward, group_size=2, name="r")
    out = func(["a", "a", "b", "b"], None, episodes, reference=["x", "x", "yyy", "yyy"])
    assert out == [1.0, 1.0, 3.0, 3.0] and seen == [["x", "x"], ["yyy", "yyy"]]
    assert func.__name__ == "r"
    with pytest.raises(ConfigError, match="mixes sources"):
        func(["a", "b", "b", "b"], None, episodes)


def test_grpo_trainer_trains_the_streaming_environment(lm, tmp_path):
    from simulpo.rewards import build_reward

    base, tok, pairs = lm
    model = copy.deepcopy(base)
    before = [p.detach().clone() for p in model.parameters()]
    outputs = []

    class Spy(StreamingRolloutFunc):
        def __call__(self, prompts, trainer):
            outputs.append(super().__call__(prompts, trainer))
            return outputs[-1]

    data = trl_dataset(
        [" ".join(p.src[:5]) for p in pairs[:2]], [" ".join(p.tgt) for p in pairs[:2]]
    )
    args = trl_config(
        GRPOConfig(loss_type="dapo", lr=1e-2, temperature=0.9), group_size=3, max_tokens=40,
        output_dir=str(tmp_path), use_cpu=True, report_to="none", per_device_train_batch_size=6,
        max_steps=1, logging_steps=1, save_strategy="no",
        disable_tqdm=True, bf16=False,
    )  # fmt: skip
    trainer = trl.GRPOTrainer(
        model=model, processing_class=tok, reward_funcs=trl_reward(build_reward(), 3),
        args=args, train_dataset=data,
        rollout_func=Spy(FixedWords(2), max_piece_tokens=3, max_final_tokens=5),
    )  # fmt: skip
    trainer.train()
    assert len(outputs) == 1 and len(outputs[0]["episode"]) == 6
    log = trainer.state.log_history[0]
    # TRL counted only the policy's tokens (env_mask), not the source chunks in between.
    policy_tokens = [sum(m) for m in outputs[0]["env_mask"]]
    assert log["completions/mean_length"] == pytest.approx(np.mean(policy_tokens))
    assert all(ep.reference for ep in outputs[0]["episode"])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))

"""GRPO: advantages, the loss against a hand computation, log-probs equal to the sampler's,
gradient accumulation equal to one big batch, and the LoRA reference (adapters disabled)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from grpo_dp_worker import random_batch, tiny_model

from simulpo.data.synthetic import generate_corpus
from simulpo.errors import ConfigError
from simulpo.models.lm import add_lora, build_tiny_lm
from simulpo.models.tokenizer import train_tokenizer
from simulpo.policies.llm import LLMPolicy
from simulpo.stream.segmenter import FixedWords
from simulpo.train import grpo
from simulpo.train.grpo import (
    GRPOConfig,
    group_advantages,
    grpo_loss,
    grpo_update,
    token_logprobs,
)
from simulpo.train.rollout import collate, sample_groups

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ---------------------------------------------------------------------------- advantages


def test_group_advantages_subtract_the_group_mean():
    adv = group_advantages([1.0, 3.0, 10.0, 10.0, 4.0], [0, 0, 1, 1, 2])
    assert adv.tolist() == pytest.approx([-1.0, 1.0, 0.0, 0.0, 0.0])
    assert adv.dtype == torch.float32


def test_group_advantages_scaled_by_the_unbiased_group_std():
    # group 0: mean 2, unbiased std sqrt(((1-2)^2 + (3-2)^2) / 1) = sqrt(2)
    adv = group_advantages([1.0, 3.0, 5.0, 5.0, 7.0], [0, 0, 1, 1, 2], scale=True)
    s = math.sqrt(2) + 1e-4
    assert adv.tolist() == pytest.approx([-1 / s, 1 / s, 0.0, 0.0, 0.0], abs=1e-6)


def test_group_advantages_refuse_non_finite_rewards():
    with pytest.raises(ValueError, match="NaN or infinite"):
        group_advantages([1.0, float("nan")], [0, 0])


# ---------------------------------------------------------------------------- the loss

# Two episodes, four positions; episode 0 has 3 policy tokens, episode 1 has 2. The masked
# positions hold values that would overflow exp() if they were used.
MASK = [[False, True, True, True], [False, True, True, False]]
ADV = [1.0, -0.5]
LOGP = [[-50.0, -1.0, -2.0, -0.5], [-50.0, -1.5, -0.7, -60.0]]
LOG_RATIO = [[0.0, 0.3, -0.1, -0.5], [0.0, -0.5, 0.3, 0.0]]  # logp - old
REF_MINUS_LOGP = [[80.0, 0.2, -0.3, 0.0], [0.0, 0.1, -0.2, 90.0]]
BETA, EPS_LOW, EPS_HIGH = 0.1, 0.2, 0.2


def hand_token_losses() -> list[list[float]]:
    """l = -min(ratio * A, clip(ratio, 0.8, 1.2) * A) + beta * (e^d - d - 1), token by token."""

    def kl(d):
        return math.exp(d) - d - 1

    e = math.exp
    return [
        [
            # A = +1: ratio e^0.3 = 1.3499 > 1.2 is clipped to 1.2
            -min(e(0.3) * 1, 1.2 * 1) + BETA * kl(0.2),  # = -1.2 + ...
            # ratio e^-0.1 = 0.9048 is inside the clip range
            -(e(-0.1) * 1) + BETA * kl(-0.3),
            # ratio e^-0.5 = 0.6065 < 0.8, but with A > 0 the unclipped term is the smaller
            -(e(-0.5) * 1) + BETA * kl(0.0),
        ],
        [
            # A = -0.5: ratio 0.6065 < 0.8, min(-0.3033, -0.4) = -0.4, the clipped one
            -(0.8 * -0.5) + BETA * kl(0.1),
            # ratio 1.3499 > 1.2 but with A < 0 the unclipped term is the smaller
            -(e(0.3) * -0.5) + BETA * kl(-0.2),
        ],
    ]


def loss_inputs():
    logp = torch.tensor(LOGP, requires_grad=True)
    old = logp.detach() - torch.tensor(LOG_RATIO)
    ref = logp.detach() + torch.tensor(REF_MINUS_LOGP)
    return logp, old, torch.tensor(ADV), torch.tensor(MASK), ref


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_grpo_loss_matches_a_hand_computation(loss_type):
    l0, l1 = hand_token_losses()
    expected = {
        "grpo": (sum(l0) / 3 + sum(l1) / 2) / 2,  # per-episode mean, then over episodes
        "dr_grpo": (sum(l0) + sum(l1)) / (2 * 7),  # sum / (episodes * max_tokens = 7)
        "dapo": (sum(l0) + sum(l1)) / 5,  # sum / policy tokens
    }[loss_type]
    logp, old, adv, mask, ref = loss_inputs()
    loss, stats = grpo_loss(
        logp, old, adv, mask, ref, BETA, EPS_LOW, EPS_HIGH, loss_type, max_tokens=7
    )
    assert loss.item() == pytest.approx(expected, rel=1e-5)  # float32 inputs
    assert float(stats["clip_fraction"]) == pytest.approx(2 / 5)  # (0, 1) and (1, 1)
    kls = [0.2, -0.3, 0.0, 0.1, -0.2]
    assert float(stats["kl"]) == pytest.approx(sum(math.exp(d) - d - 1 for d in kls) / 5, rel=1e-5)
    loss.backward()
    assert torch.isfinite(logp.grad).all()
    assert (logp.grad[~mask] == 0).all()


def test_clipped_tokens_get_no_policy_gradient():
    logp, old, adv, mask, _ = loss_inputs()
    loss, _ = grpo_loss(logp, old, adv, mask, loss_type="dapo")
    loss.backward()
    g = logp.grad
    assert g[0, 1] == 0 and g[1, 1] == 0  # the two clipped tokens
    # d/dlogp of -ratio * A / 5 = -ratio * A / 5 on the others
    assert float(g[0, 2]) == pytest.approx(-math.exp(-0.1) / 5, rel=1e-6)
    assert float(g[1, 2]) == pytest.approx(math.exp(0.3) * 0.5 / 5, rel=1e-6)


def test_global_normalizers_split_a_batch_into_parts_that_sum_to_it():
    logp, old, adv, mask, ref = loss_inputs()
    for loss_type in ("grpo", "dr_grpo", "dapo"):
        kw = {"beta": BETA, "loss_type": loss_type, "max_tokens": 7}
        whole, _ = grpo_loss(logp, old, adv, mask, ref, **kw)
        parts = sum(
            grpo_loss(
                logp[i : i + 1], old[i : i + 1], adv[i : i + 1], mask[i : i + 1],
                ref[i : i + 1], num_sequences=2, num_tokens=5, **kw,
            )[0]
            for i in range(2)
        )  # fmt: skip
        assert parts.item() == pytest.approx(whole.item(), rel=1e-6)


def test_unknown_loss_type_is_refused():
    with pytest.raises(ConfigError, match="loss_type"):
        GRPOConfig(loss_type="ppo")


# ---------------------------------------------------------------------------- log-probs


@pytest.fixture(scope="module")
def lm():
    pairs = generate_corpus(100, seed=3)
    tok = train_tokenizer([p.source for p in pairs] + [p.target for p in pairs], vocab_size=300)
    model = build_tiny_lm(tok, hidden_size=32, num_layers=2, num_heads=2, max_positions=512)
    return model.eval(), tok, pairs


def rollouts(lm, temperature, top_p=1.0, group_size=3, sources=3):
    model, tok, pairs = lm
    policy = LLMPolicy(
        model, tok, do_sample=True, temperature=temperature, top_p=top_p,
        max_piece_tokens=4, max_final_tokens=6, seed=1,
    )  # fmt: skip
    srcs = [list(p.src[:5]) for p in pairs[:sources]]
    refs = [" ".join(p.tgt) for p in pairs[:sources]]
    return sample_groups(policy, srcs, refs, FixedWords(2), group_size)


def test_token_logprobs_equal_the_samplers_at_temperature(lm):
    model, tok, _ = lm
    batch = collate(rollouts(lm, temperature=0.7), tok.pad_token_id)
    assert batch.policy_mask.sum() > 20
    with torch.no_grad():
        logp = token_logprobs(model, batch.input_ids, batch.attention_mask, temperature=0.7)
    m = batch.policy_mask
    assert torch.allclose(logp[m], batch.old_logprobs[m], atol=1e-4)
    ratio = torch.exp(logp[m] - batch.old_logprobs[m])
    assert (ratio - 1).abs().max() < 1e-4
    # A different temperature is a different distribution: the check above is not vacuous.
    with torch.no_grad():
        other = token_logprobs(model, batch.input_ids, batch.attention_mask, temperature=1.0)
    assert (other[m] - batch.old_logprobs[m]).abs().max() > 1e-2


def test_top_p_rollouts_get_their_old_logprobs_recomputed(lm):
    model, tok, _ = lm
    batch = collate(rollouts(lm, temperature=0.7, top_p=0.6), tok.pad_token_id)
    m = batch.policy_mask
    with torch.no_grad():
        logp = token_logprobs(model, batch.input_ids, batch.attention_mask, temperature=0.7)
    # The nucleus renormalizes: the sampler's log-probs are higher than the full softmax's.
    assert (batch.old_logprobs[m] >= logp[m] - 1e-5).all()
    assert (batch.old_logprobs[m] - logp[m]).max() > 1e-2
    # The update knows top_p < 1 and takes pi_old from its own forward pass: ratio 1.
    trained = copy.deepcopy(model)
    opt = torch.optim.SGD(trained.parameters(), lr=0.0)
    adv = torch.linspace(-1, 1, batch.input_ids.shape[0])
    cfg = GRPOConfig(temperature=0.7, top_p=0.6)
    stats = grpo_update(trained, opt, batch, adv, cfg)
    assert stats["ratio"] == pytest.approx(1.0, abs=1e-6)
    assert stats["clip_fraction"] == 0.0


# ---------------------------------------------------------------------------- the update


def params_after(model, batch, adv, cfg, ref_model=None):
    model = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    stats = grpo_update(model, opt, batch, adv, cfg, ref_model=ref_model)
    return [p.detach().clone() for p in model.parameters()], stats


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_gradient_accumulation_equals_one_big_batch(loss_type):
    model = tiny_model()
    ref = tiny_model(seed=1)
    batch = random_batch(model)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, -2.0])
    cfg = {"loss_type": loss_type, "beta": 0.05, "num_iterations": 2, "max_grad_norm": 0.0}
    big, s_big = params_after(model, batch, adv, GRPOConfig(micro_batch_size=6, **cfg), ref)
    small, s_small = params_after(model, batch, adv, GRPOConfig(micro_batch_size=4, **cfg), ref)
    moved = sum(float((a - b.detach()).abs().max()) for a, b in zip(big, model.parameters()))
    assert moved > 1e-3
    for a, b in zip(big, small):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for key in ("loss", "kl", "clip_fraction", "entropy", "grad_norm"):
        assert s_small[key] == pytest.approx(s_big[key], rel=1e-5, abs=1e-7)
    assert s_big["clip_fraction"] > 0 and s_big["kl"] > 0 and s_big["entropy"] > 0


def test_the_reported_loss_is_that_of_the_first_forward():
    model = tiny_model()
    batch = random_batch(model)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, -2.0])
    with torch.no_grad():
        logp = token_logprobs(model, batch.input_ids, batch.attention_mask)
    expected, _ = grpo_loss(logp, batch.old_logprobs, adv, batch.policy_mask)
    _, stats = params_after(model, batch, adv, GRPOConfig(micro_batch_size=4))
    assert stats["loss"] == pytest.approx(float(expected), rel=1e-5)


def test_kl_needs_a_reference():
    model = tiny_model()
    batch = random_batch(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ConfigError, match="reference"):
        grpo_update(model, opt, batch, torch.zeros(6), GRPOConfig(beta=0.1))


def test_lora_reference_is_the_model_with_adapters_disabled():
    base = tiny_model()
    frozen = copy.deepcopy(base)
    model = add_lora(base, r=4)
    batch = random_batch(frozen)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, -2.0])
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=2.0)
    cfg = GRPOConfig(beta=0.1, micro_batch_size=4)
    first = grpo_update(model, opt, batch, adv, cfg)
    assert first["kl"] == pytest.approx(0.0, abs=1e-9)  # LoRA starts as the identity
    # The adapters moved; the KL the update reports is to the untouched base model.
    with torch.no_grad():
        logp = token_logprobs(model, batch.input_ids, batch.attention_mask)
        ref = token_logprobs(frozen, batch.input_ids, batch.attention_mask)
    _, expected = grpo_loss(logp, batch.old_logprobs, adv, batch.policy_mask, ref, beta=0.1)
    second = grpo_update(model, opt, batch, adv, cfg)
    assert float(expected["kl"]) > 1e-6
    assert second["kl"] == pytest.approx(float(expected["kl"]), rel=1e-4)


def naive_logprobs(model, ids, attn, temperature):
    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1] / temperature
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
    return torch.nn.functional.pad(logp, (1, 0))


def soft_capped_model():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(0)
    config = Gemma2Config(
        vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, head_dim=8,
        final_logit_softcapping=0.5, pad_token_id=0,
    )  # fmt: skip
    return Gemma2ForCausalLM(config).eval()


@pytest.mark.parametrize("build", [tiny_model, soft_capped_model])
def test_token_logprobs_at_the_mask_equal_a_full_log_softmax(build):
    model = build()
    batch = random_batch(tiny_model())
    m = batch.policy_mask
    with torch.no_grad():
        ours = token_logprobs(model, batch.input_ids, batch.attention_mask, 0.8, mask=m)
        full = naive_logprobs(model, batch.input_ids, batch.attention_mask, 0.8)
    torch.testing.assert_close(ours[m], full[m], rtol=1e-5, atol=1e-5)
    assert (ours[~m] == 0).all()


def test_logits_in_checkpointed_chunks_give_the_same_gradient(monkeypatch):
    model = tiny_model()
    batch = random_batch(model)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, -2.0])
    cfg = GRPOConfig(micro_batch_size=6, max_grad_norm=0.0)
    whole, s_whole = params_after(model, batch, adv, cfg)
    monkeypatch.setattr(grpo, "_LOGITS_BUDGET", 8 * model.config.vocab_size)  # chunks of 8 rows
    chunked, s_chunked = params_after(model, batch, adv, cfg)
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert s_chunked["entropy"] == pytest.approx(s_whole["entropy"], rel=1e-6)


def test_a_micro_batch_without_policy_tokens_is_harmless():
    model = tiny_model()
    batch = random_batch(model)
    batch.policy_mask[:3] = False  # the first micro-batch trains nothing
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, -2.0])
    _, stats = params_after(model, batch, adv, GRPOConfig(micro_batch_size=3))
    assert all(math.isfinite(v) for v in stats.values())
    assert stats["num_tokens"] == float(batch.policy_mask.sum())


def test_windowed_rollouts_get_their_old_logprobs_recomputed(lm):
    """A bounded cache that evicted turns: the sampler saw less context than the update's
    whole-dialogue forward, so pi_old is taken from that forward (ratio 1), unasked."""
    model, tok, pairs = lm
    policy = LLMPolicy(
        model, tok, do_sample=True, temperature=0.7, max_piece_tokens=4, max_final_tokens=6,
        seed=1, cache_window=96,
    )  # fmt: skip
    srcs = [list(p.src[:12]) for p in pairs[:2]]
    batch = collate(sample_groups(policy, srcs, [None, None], FixedWords(1), 2), tok.pad_token_id)
    assert batch.windowed
    m = batch.policy_mask
    with torch.no_grad():
        whole = token_logprobs(model, batch.input_ids, batch.attention_mask, temperature=0.7)
    assert (whole[m] - batch.old_logprobs[m]).abs().max() > 1e-3
    trained = copy.deepcopy(model)
    opt = torch.optim.SGD(trained.parameters(), lr=0.0)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    stats = grpo_update(trained, opt, batch, adv, GRPOConfig(temperature=0.7))
    assert stats["ratio"] == pytest.approx(1.0, abs=1e-6)

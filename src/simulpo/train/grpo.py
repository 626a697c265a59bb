"""GRPO over whole streaming episodes: advantages, token log-probs, the clipped loss, the update.

One rollout batch holds ``G`` groups of ``B`` episodes (one group per source, see
:mod:`simulpo.train.rollout`); each episode ``i`` is a dialogue whose policy tokens
``o_i,t`` (its pieces and the end-of-turn tokens it chose) are trained, never the source
chunks or the template. With ``r_i`` the episode's reward,

    A_i     = r_i - mean(r_group)                  (/ std(r_group) with ``scale_rewards``)
    ratio   = pi_theta(o_i,t | .) / pi_old(o_i,t | .)
    clipped = clip(ratio, 1 - eps_low, 1 + eps_high)
    kl      = exp(ref - logp) - (ref - logp) - 1   (k3 estimator of KL(pi_theta || pi_ref))
    l_i,t   = -min(ratio * A_i, clipped * A_i) + beta * kl
    L       = aggregate(l_i,t over the policy tokens of the *whole* rollout batch)

with three aggregations (``loss_type``, as TRL's ``GRPOTrainer`` defines them):

- ``"grpo"``:    mean over each episode's policy tokens, then mean over episodes;
- ``"dr_grpo"``: sum over all policy tokens / (episodes * ``max_tokens``), a constant
  (Dr. GRPO: no length bias);
- ``"dapo"``:    sum over all policy tokens / number of policy tokens (token-level mean).

Every aggregation is normalized by counts of the *global* batch (all micro-batches, all
processes), so gradient accumulation and data parallelism give the gradient of one big
batch. ``pi_old`` is the rollout's sampling distribution: ``softmax(logits / temperature)``,
the log-probs the sampler recorded; with ``top_p < 1`` the sampler renormalized over the
nucleus, which ``log_softmax(logits / temperature)`` cannot reproduce, so the old log-probs
are then recomputed by the same forward pass as the training ones (see :class:`GRPOConfig`).
So are they with ``recompute_old_logprobs``: for rollouts whose sampler saw another context
than the whole dialogue (the LLM policy's bounded ``cache_window``), or another numeric
path (a vLLM-style engine). The sampling mismatch is then ignored, as in TRL without its
importance-sampling correction. A batch sampled with a bounded cache that actually evicted
part of a dialogue (``RolloutTensors.windowed``) recomputes them too, whatever the config.

Speech batches (``RolloutTensors.speech``): the model is a
:class:`~simulpo.models.projector.SpeechLM` (the LM and its projector as one module; a
frozen projector is one whose parameters do not require grad) and every forward here puts
the projected encoder frames at the placeholders, as the rollout's prefill did, so the
log-probs are the sampler's and the gradient reaches the projector.
"""

from __future__ import annotations

import weakref
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

from simulpo.config import check_ranges, option
from simulpo.decoding import eval_mode
from simulpo.errors import ConfigError
from simulpo.models.lm import is_peft
from simulpo.models.projector import SpeechLM
from simulpo.train.rollout import RolloutTensors

LOSS_TYPES = ("grpo", "dr_grpo", "dapo")


@dataclass
class GRPOConfig:
    loss_type: str = option("dapo", "aggregation of the token losses: grpo, dr_grpo or dapo")
    beta: float = option(
        0.0, "weight of the KL penalty to the reference (SFT) policy; 0 = none", "[0, )"
    )
    eps_low: float = option(0.2, "the ratio is clipped below at 1 - eps_low", "[0, 1)")
    eps_high: float = option(0.2, "and above at 1 + eps_high (DAPO's clip-higher: 0.28)", "[0, )")
    num_iterations: int = option(
        1, "optimization epochs (optimizer steps) per rollout batch", "[1, )"
    )
    micro_batch_size: int = option(
        8, "episodes per forward/backward (gradient accumulation)", "[1, )"
    )
    max_grad_norm: float = option(1.0, "gradient clipping; 0 = none", "[0, )")
    temperature: float = option(
        1.0, "the rollout's sampling temperature (log-probs use logits / T)", "(0, )"
    )
    top_p: float = option(
        1.0, "the rollout's nucleus; < 1 recomputes the old log-probs (module docs)", "(0, 1]"
    )
    recompute_old_logprobs: bool = option(
        False, "pi_old from the update's own forward (auto: top_p<1)"
    )
    scale_rewards: bool = option(
        False, "divide advantages by the group's reward std (TRL's default)"
    )
    max_tokens: int | None = option(
        None, "dr_grpo's constant; None = longest episode in the batch", "[1, )"
    )
    lr: float = option(1e-6, "learning rate of the optimizer the RL loop builds", "(0, )")

    def __post_init__(self) -> None:
        if self.loss_type not in LOSS_TYPES:
            raise ConfigError(
                f"unknown loss_type {self.loss_type!r}; choose one of {', '.join(LOSS_TYPES)}"
            )
        check_ranges(self, "grpo ")


# ---------------------------------------------------------------------------- advantages


def group_advantages(rewards, group_ids, scale: bool = False) -> torch.Tensor:
    """``A_i = r_i - mean(r_g)`` over each group ``g`` of episodes (``/ (std(r_g) + 1e-4)``
    with ``scale``, TRL's ``scale_rewards="group"``; the std is unbiased, and 0 for a group
    of one). Returns a float32 tensor of shape ``(N,)``."""
    r = np.asarray(rewards, dtype=np.float64)
    g = np.asarray(group_ids)
    if r.shape != g.shape or r.ndim != 1:
        raise ValueError(f"rewards {r.shape} and group_ids {g.shape} must be 1-d of one length")
    if not np.isfinite(r).all():
        raise ValueError(
            f"{int((~np.isfinite(r)).sum())} rewards are NaN or infinite; the reward function "
            "must replace them (e.g. by the worst score) before advantages are computed"
        )
    _, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
    mean = np.bincount(inverse, weights=r) / counts
    advantages = r - mean[inverse]
    if scale:
        sq = np.bincount(inverse, weights=advantages**2)
        std = np.sqrt(sq / np.maximum(counts - 1, 1))
        advantages = advantages / (std[inverse] + 1e-4)
    return torch.as_tensor(advantages, dtype=torch.float32)


# ---------------------------------------------------------------------------- log-probs


def token_logprobs(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
    speech: list[list[torch.Tensor]] | None = None,
) -> torch.Tensor:
    """``(N, T)``: log-prob of token ``t`` given tokens ``< t`` under ``log_softmax(logits /
    temperature)``, the sampler's distribution, at the positions of ``mask`` (default: every
    real token); 0 elsewhere and at position 0. Differentiable. ``speech`` (per row, its
    speech turns' encoder frames) needs a :class:`SpeechLM` ``model``."""
    return _logprobs_and_entropy(
        model, input_ids, attention_mask, temperature, mask, speech=speech
    )[0]


#: full-vocabulary logits alive at once (elements): 2**26 float32 = 256 MiB
_LOGITS_BUDGET = 1 << 26
#: per LM head: does it alone turn hidden states into the model's logits? (checked once)
_PLAIN_HEADS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def language_model(model):
    """The causal LM inside ``model``: through a DDP wrapper, and a :class:`SpeechLM`'s LM."""
    model = getattr(model, "module", model)
    return model.lm if isinstance(model, SpeechLM) else model


def _logprobs_and_entropy(
    model, input_ids, attention_mask, temperature, mask=None, entropy=False, speech=None
):
    """Token log-probs at ``mask`` (and, without gradient, the entropies there).

    Only the hidden states that predict a masked token go through the LM head, so the
    source chunks and template tokens of a dialogue never become full-vocabulary logits;
    those are made a chunk of rows at a time and, under autograd, not kept but recomputed
    in the backward pass (activation checkpointing), so at most one chunk is alive.
    """
    targets = (attention_mask.bool() if mask is None else mask.bool()).clone()
    targets[:, 0] = False  # nothing predicts the first token
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
    if speech is not None:
        if not isinstance(getattr(model, "module", model), SpeechLM):
            raise ConfigError(
                "the batch holds speech turns but the model reads no speech: pass a SpeechLM "
                "(the LM and its projector as one module)"
            )
        inputs["speech"] = speech
    out = model(**inputs, output_hidden_states=True, logits_to_keep=1)
    head = language_model(model).get_output_embeddings()
    hidden = out.hidden_states[-1]
    if head is not None and head not in _PLAIN_HEADS:
        with torch.no_grad():  # is the LM head all that makes logits of the last hidden state?
            rtol = 1e-5 if out.logits.dtype == torch.float32 else 2e-2  # one rounding of the dtype
            _PLAIN_HEADS[head] = torch.allclose(
                head(hidden[:, -1]).float(), out.logits[:, -1].float(), rtol=rtol, atol=1e-5
            )
    tokens = input_ids[targets]
    if head is not None and _PLAIN_HEADS[head]:
        states, project = hidden[:, :-1][targets[:, 1:]], head  # (K, hidden): K masked tokens
    else:  # the model post-processes its logits (soft-capping, scaling): take them whole
        full = model(**inputs).logits
        states, project = full[:, :-1][targets[:, 1:]], torch.nn.Identity()

    def chunk(x, y):  # log p(y | x) and the entropy of p(. | x), for a chunk of rows
        logits = project(x).float()
        if temperature != 1.0:
            logits = logits / temperature
        lse = logits.logsumexp(dim=-1)
        logp = logits.gather(-1, y[:, None])[:, 0] - lse
        with torch.no_grad():
            ent = lse - (logits.softmax(dim=-1) * logits).sum(dim=-1) if entropy else lse
        return logp, ent

    vocab = out.logits.shape[-1]
    rows = max(1, _LOGITS_BUDGET // vocab)
    parts = list(zip(states.split(rows), tokens.split(rows))) or [(states, tokens)]
    if torch.is_grad_enabled() and len(parts) > 1:
        results = [checkpoint(chunk, x, y, use_reentrant=False) for x, y in parts]
    else:
        results = [chunk(x, y) for x, y in parts]
    logp = torch.cat([r[0] for r in results])
    zeros = torch.zeros(targets.shape, dtype=logp.dtype, device=logp.device)
    ent = zeros.masked_scatter(targets, torch.cat([r[1] for r in results])) if entropy else None
    return zeros.masked_scatter(targets, logp), ent


# ---------------------------------------------------------------------------- the loss


def grpo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_logprobs: torch.Tensor | None = None,
    beta: float = 0.0,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    loss_type: str = "dapo",
    max_tokens: int | None = None,
    num_sequences: int | None = None,
    num_tokens: int | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped GRPO objective (module docstring) of a batch of ``(N, T)`` token log-probs.

    ``advantages`` is ``(N,)``; ``mask`` is True on the policy tokens. ``num_sequences``
    and ``num_tokens`` are the normalizers of the whole batch this one is a part of
    (default: this batch), ``max_tokens`` dr_grpo's constant (default: this batch's
    longest episode). Returns the loss and token means over the mask of ``kl``,
    ``clip_fraction`` (tokens whose clipped term is the active one) and ``ratio``.
    """
    mask = mask.bool()
    m = mask.to(logprobs.dtype)
    A = advantages.to(logprobs.dtype)[:, None]
    # Differences are taken on the policy tokens only: elsewhere log-probs are meaningless
    # (0 for old ones) and exp() of them could overflow into NaNs.
    log_ratio = torch.where(mask, logprobs - old_logprobs, 0.0)
    ratio = torch.exp(log_ratio)
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    pg_loss = -torch.min(ratio * A, clipped * A)
    per_token = pg_loss
    kl = torch.zeros_like(logprobs)
    if ref_logprobs is not None and beta != 0.0:
        d = torch.where(mask, ref_logprobs - logprobs, 0.0)
        kl = torch.exp(d) - d - 1
        per_token = pg_loss + beta * kl

    lengths = m.sum(dim=1)
    n_seq = num_sequences if num_sequences is not None else logprobs.shape[0]
    if loss_type == "grpo":
        loss = ((per_token * m).sum(dim=1) / lengths.clamp(min=1)).sum() / n_seq
    elif loss_type == "dr_grpo":
        L = max_tokens if max_tokens is not None else int(lengths.max().clamp(min=1))
        loss = (per_token * m).sum() / (n_seq * L)
    elif loss_type == "dapo":
        n_tok = num_tokens if num_tokens is not None else int(lengths.sum().clamp(min=1))
        loss = (per_token * m).sum() / max(n_tok, 1)
    else:
        raise ConfigError(f"unknown loss_type {loss_type!r}; choose one of {', '.join(LOSS_TYPES)}")

    with torch.no_grad():
        n = m.sum().clamp(min=1)
        is_clipped = ((ratio < 1 - eps_low) & (A < 0)) | ((ratio > 1 + eps_high) & (A > 0))
        stats = {
            "kl": (kl * m).sum() / n,
            "clip_fraction": (is_clipped.to(m.dtype) * m).sum() / n,
            "ratio": (ratio * m).sum() / n,
        }
    return loss, stats


# ---------------------------------------------------------------------------- the update


def grpo_update(
    model,
    optimizer: torch.optim.Optimizer,
    tensors: RolloutTensors,
    advantages: torch.Tensor,
    config: GRPOConfig,
    accelerator=None,
    ref_model=None,
) -> dict[str, float]:
    """``config.num_iterations`` optimizer steps on one rollout batch; returns mean stats.

    Each step accumulates the gradient of the whole batch over micro-batches of
    ``config.micro_batch_size`` episodes. With an ``accelerate`` ``accelerator`` (model and
    optimizer passed through ``accelerator.prepare``), ``tensors`` and ``advantages`` are
    this process's share of the batch: the loss is normalized by the counts of the global
    batch, so the update equals that of one process holding everything.

    The KL reference (only when ``config.beta > 0``): a ``peft`` model (or a
    :class:`SpeechLM` around one) is its own reference with its adapters disabled (no
    second copy); any other model needs ``ref_model``, a frozen copy of the starting (SFT)
    policy. Dropout is off during the update, as during sampling: at the first epoch the
    importance ratio is then exactly 1.
    """
    device = accelerator.device if accelerator is not None else _device(model)
    world = accelerator.num_processes if accelerator is not None else 1
    bare = accelerator.unwrap_model(model) if accelerator is not None else model
    lora = is_peft(language_model(bare))
    if config.beta > 0 and ref_model is None and not lora:
        raise ConfigError("beta > 0 needs a reference: pass ref_model, or use a LoRA (peft) model")
    t = tensors.to(device)
    advantages = advantages.to(device)
    mask = t.policy_mask & t.attention_mask.bool()
    n = t.input_ids.shape[0]
    if n == 0:
        raise ValueError("no episodes to train on (every process needs at least one)")
    if advantages.shape != (n,):
        raise ValueError(f"advantages have shape {tuple(advantages.shape)}, expected ({n},)")

    # Normalizers of the global batch: episodes, policy tokens, longest episode.
    lengths = mask.sum(dim=1)
    counts = torch.stack([torch.tensor(n, device=device), lengths.sum()])
    longest = lengths.max()
    if world > 1:
        counts = accelerator.reduce(counts, reduction="sum")
        longest = accelerator.gather(longest[None]).max()
    num_sequences, num_tokens = int(counts[0]), int(counts[1])
    max_tokens = config.max_tokens or max(int(longest), 1)

    slices = [slice(i, i + config.micro_batch_size) for i in range(0, n, config.micro_batch_size)]

    def logprobs_of(net, s, entropy=False):
        ids, attn = t.input_ids[s], t.attention_mask[s]
        speech = t.speech[s] if t.speech is not None else None
        return _logprobs_and_entropy(net, ids, attn, config.temperature, mask[s], entropy, speech)

    totals: dict[str, torch.Tensor] = {}
    with eval_mode(model):
        with torch.no_grad():
            ref = None
            if config.beta > 0:
                ref_ctx = language_model(bare).disable_adapter() if lora else nullcontext()
                with ref_ctx, eval_mode(ref_model or bare):
                    ref = torch.cat([logprobs_of(ref_model or bare, s)[0] for s in slices])
            old = t.old_logprobs
            if config.top_p < 1.0 or config.recompute_old_logprobs or t.windowed:
                # pi_old = the model before this update, on the whole dialogue
                old = torch.cat([logprobs_of(bare, s)[0] for s in slices])

        for _ in range(config.num_iterations):
            for k, s in enumerate(slices):
                last = k == len(slices) - 1
                sync = accelerator.no_sync(model) if accelerator and not last else nullcontext()
                with sync:
                    logp, ent = logprobs_of(model, s, entropy=True)
                    loss, stats = grpo_loss(
                        logp,
                        old[s],
                        advantages[s],
                        mask[s],
                        ref[s] if ref is not None else None,
                        beta=config.beta,
                        eps_low=config.eps_low,
                        eps_high=config.eps_high,
                        loss_type=config.loss_type,
                        max_tokens=max_tokens,
                        num_sequences=num_sequences,
                        num_tokens=num_tokens,
                    )
                    # DDP averages gradients over processes; the loss already sums to the
                    # global one across them, so undo the average.
                    (accelerator.backward if accelerator else torch.Tensor.backward)(loss * world)
                # Token sums of the stats, kept on the device (no sync per micro-batch).
                tokens = mask[s].sum()
                stats["entropy"] = (ent * mask[s]).sum() / tokens.clamp(min=1)
                for key, value in stats.items():
                    totals[key] = totals.get(key, 0.0) + value.double() * tokens
                totals["loss"] = totals.get("loss", 0.0) + loss.detach().double()
            params = [p for p in model.parameters() if p.requires_grad]
            clip = accelerator.clip_grad_norm_ if accelerator else torch.nn.utils.clip_grad_norm_
            grad_norm = clip(params, config.max_grad_norm or float("inf"))  # 0: measure only
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    # Global means: token-weighted stats over all epochs and processes; the loss per epoch.
    keys = sorted(totals)
    summed = torch.stack([totals[k] for k in keys])
    if world > 1:
        summed = accelerator.reduce(summed, reduction="sum")
    out = {
        k: float(v) / (config.num_iterations * (1 if k == "loss" else max(num_tokens, 1)))
        for k, v in zip(keys, summed)
    }
    out["grad_norm"] = float(grad_norm)
    out["num_tokens"] = float(num_tokens)
    return out


def _device(model) -> torch.device:
    return next(model.parameters()).device

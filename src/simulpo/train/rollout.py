"""RL rollouts: B sampled episodes per source through the same streaming loop as evaluation.

The trainer never re-implements streaming: it hands a sampling :class:`LLMPolicy` to
:func:`run_stream` with every source repeated ``group_size`` times, then reads each
episode's dialogue record (token ids, the mask of tokens the policy wrote, their log-probs
under the sampling distribution) that the policy left in ``episode.memory``.

:func:`collate` turns a list of rollouts into right-padded tensors for the update:
``input_ids`` and ``attention_mask`` of shape ``(N, T)``, ``policy_mask`` (True where token
``t`` was written by the policy, so its log-prob is trained) and ``old_logprobs`` (the
sampling log-probs, 0 elsewhere), aligned with ``input_ids``.

Speech rollouts (a policy with a speech front end, audio sources cut by a ms segmenter)
are the same episodes: their user turns are ``<|speech|>`` placeholders, and each rollout
also keeps the encoder frames of its turns, which the batch carries as ``speech`` so the
update can put the same projected frames at the same placeholders
(:func:`~simulpo.models.projector.speech_inputs_embeds`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from simulpo.policies.llm import DialogueRecord, LLMPolicy
from simulpo.stream.episode import Episode
from simulpo.stream.loop import run_stream
from simulpo.stream.segmenter import Segmenter


@dataclass
class Rollout:
    """One sampled episode of a group, with what the GRPO update needs."""

    group: int  # index of its source in the rollout batch; episodes of a group share it
    episode: Episode
    token_ids: list[int]
    policy_mask: list[bool]
    logprobs: list[float]
    #: some piece ran out of token budget and was closed by the policy, not the model
    truncated: bool = False
    #: speech: the encoder frames ``[n, dim]`` of each user turn, in order (else empty)
    speech: list[torch.Tensor] = field(default_factory=list)
    #: some piece was written with part of the dialogue evicted from a bounded cache
    windowed: bool = False

    @property
    def num_policy_tokens(self) -> int:
        return sum(self.policy_mask)


def sample_groups(
    policy: LLMPolicy,
    sources: Sequence[Any],
    references: Sequence[str | None],
    segmenter: Segmenter,
    group_size: int,
    unit: str = "word",
    batch_size: int = 256,
    progress: bool = False,
) -> list[Rollout]:
    """``group_size`` episodes of every source (consecutive, group ``g`` = ``sources[g]``).

    Sources are whatever ``segmenter`` cuts: lists of words, or float32 16 kHz audio for a
    speech policy (with :class:`~simulpo.stream.segmenter.FixedMilliseconds` and
    ``unit`` the target's latency unit, as in evaluation)."""
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    if len(references) != len(sources):
        raise ValueError(f"{len(sources)} sources but {len(references)} references")
    if policy.speech is not None and not policy.record_speech:
        raise ValueError("speech rollouts need the policy's record_speech=True (the frames)")
    repeated = [s for s in sources for _ in range(group_size)]
    refs = [r for r in references for _ in range(group_size)]
    episodes = run_stream(
        repeated,
        policy,
        segmenter,
        refs,
        unit=unit,
        batch_size=batch_size,
        progress=progress,
        desc="rollouts",
    )
    rollouts = []
    for i, ep in enumerate(episodes):
        rec: DialogueRecord | None = ep.memory.get("dialogue")
        if rec is None:  # an empty source: no turn was taken
            rollouts.append(Rollout(i // group_size, ep, [], [], []))
            continue
        rollouts.append(
            Rollout(
                i // group_size,
                ep,
                list(rec.token_ids),
                list(rec.policy_mask),
                list(rec.logprobs),
                any(rec.truncated),
                # Frames made under inference mode cannot enter autograd (the update
                # backpropagates into the projector): plain copies.
                [f.clone() for f in rec.speech],
                any(rec.evicted),
            )
        )
        ep.memory.clear()  # drop the cache handle and messages: only the tokens are needed
    return rollouts


@dataclass
class RolloutTensors:
    input_ids: torch.Tensor  # (N, T) long, right-padded
    attention_mask: torch.Tensor  # (N, T) long
    policy_mask: torch.Tensor  # (N, T) bool
    old_logprobs: torch.Tensor  # (N, T) float
    #: speech batches: per episode, its user turns' encoder frames (None: a text batch)
    speech: list[list[torch.Tensor]] | None = None
    #: some episode was sampled with a bounded cache that had evicted part of its dialogue,
    #: so its old log-probs are not those of a forward over the whole dialogue
    windowed: bool = False

    def to(self, device) -> RolloutTensors:
        speech = (
            None if self.speech is None else [[f.to(device) for f in row] for row in self.speech]
        )
        tensors = (self.input_ids, self.attention_mask, self.policy_mask, self.old_logprobs)
        return RolloutTensors(*(t.to(device) for t in tensors), speech, self.windowed)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def __getitem__(self, rows: slice) -> RolloutTensors:
        """The episodes ``rows`` (a micro-batch, or a process's share)."""
        tensors = (self.input_ids, self.attention_mask, self.policy_mask, self.old_logprobs)
        speech = None if self.speech is None else self.speech[rows]
        return RolloutTensors(*(t[rows] for t in tensors), speech, self.windowed)


def collate(rollouts: Sequence[Rollout], pad_id: int) -> RolloutTensors:
    """Right-pad the rollouts' dialogues into one batch (positions stay 0..len-1 per row)."""
    if not rollouts:
        raise ValueError("no rollouts to collate")
    width = max(len(r.token_ids) for r in rollouts) or 1
    n = len(rollouts)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.bool)
    logp = torch.zeros((n, width), dtype=torch.float32)
    for i, r in enumerate(rollouts):
        k = len(r.token_ids)
        ids[i, :k] = torch.tensor(r.token_ids, dtype=torch.long)
        attn[i, :k] = 1
        mask[i, :k] = torch.tensor(r.policy_mask, dtype=torch.bool)
        logp[i, :k] = torch.tensor(r.logprobs, dtype=torch.float32)
    speech = [r.speech for r in rollouts] if any(r.speech for r in rollouts) else None
    return RolloutTensors(ids, attn, mask, logp, speech, any(r.windowed for r in rollouts))

"""Train the streaming environment with TRL's ``GRPOTrainer`` (optional extra ``simulpo[trl]``).

Our own update (:mod:`simulpo.train.grpo`) is the default and the reference; this adapter
lets users who already run TRL (vLLM, DeepSpeed, its logging) train the *same*
environment — the streaming loop of :mod:`simulpo.stream.loop` driven by the LLM policy —
with the same rewards (:mod:`simulpo.rewards`). Tested against TRL 1.16.

TRL's contract (``rollout_func``, experimental in TRL): ``rollout_func(prompts, trainer)``
gets this process's prompts — each repeated ``num_generations`` times in a row — and
returns one completion per prompt entry, as a dict of lists:

- ``prompt_ids``: the tokens before the first one the policy wrote (system prompt, first
  source chunk, the template's generation prompt);
- ``completion_ids``: every later token of the dialogue: pieces, end-of-turn tokens, the
  following source chunks and template tokens;
- ``logprobs``: the sampler's log-prob of each completion token (0 where the policy did
  not write it); TRL reads them only for its vLLM importance-sampling correction;
- ``env_mask``: 1 on the tokens the policy wrote, 0 on source chunks and template tokens
  (and on an end-of-turn token the policy added when a piece ran out of budget), so TRL
  trains exactly the tokens our update trains;
- any other key is handed to the reward functions: ``episode`` (the :class:`Episode`).

A dataset row is ``{"prompt": source text, "reference": reference text}``; the source is
split into words and cut into chunks by the segmenter. :func:`trl_reward` turns a simulpo
reward (a function of a group of episodes) into a TRL reward function::

    from trl import GRPOTrainer
    from simulpo.rewards import build_reward

    trainer = GRPOTrainer(
        model=model, processing_class=tokenizer, train_dataset=trl_dataset(sources, refs),
        reward_funcs=trl_reward(build_reward(), group_size=8),
        rollout_func=StreamingRolloutFunc(FixedWords(2)),
        args=trl_config(GRPOConfig(loss_type="dapo"), group_size=8, max_tokens=512,
                        output_dir="runs/trl", per_device_train_batch_size=16),
    )
    trainer.train()

The per-device batch must hold whole groups (a multiple of ``group_size``): simulpo
rewards normalize within a group, so a group may not straddle processes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from simulpo.errors import ConfigError
from simulpo.policies.build import PolicySpec, build_policy
from simulpo.stream.dialogue import SYSTEM_PROMPT
from simulpo.stream.episode import Episode
from simulpo.stream.segmenter import Segmenter
from simulpo.train.grpo import GRPOConfig
from simulpo.train.rollout import Rollout, sample_groups

__all__ = [
    "StreamingRolloutFunc",
    "to_trl",
    "trl_config",
    "trl_dataset",
    "trl_loss_inputs",
    "trl_reward",
]


def to_trl(rollouts: Sequence[Rollout]) -> dict[str, list]:
    """Rollouts in the format of TRL's ``rollout_func`` output (module docstring), with
    the episodes under ``"episode"``."""
    out: dict[str, list] = {k: [] for k in ("prompt_ids", "completion_ids", "logprobs")}
    out["env_mask"], out["episode"] = [], []
    for r in rollouts:
        if not any(r.policy_mask):
            raise ValueError(
                f"episode {r.episode.index} has no token written by the policy (an empty "
                "source?); TRL needs a completion for every prompt"
            )
        start = r.policy_mask.index(True)
        out["prompt_ids"].append(list(r.token_ids[:start]))
        out["completion_ids"].append(list(r.token_ids[start:]))
        out["logprobs"].append([float(x) for x in r.logprobs[start:]])
        out["env_mask"].append([int(m) for m in r.policy_mask[start:]])
        out["episode"].append(r.episode)
    return out


class StreamingRolloutFunc:
    """A TRL ``rollout_func``: runs the streaming loop with the trainer's current model.

    Sampling follows the trainer's ``temperature`` and ``top_p``; a fresh seed per
    optimizer step (``seed`` + the trainer's global step) keeps runs reproducible without
    replaying the same samples at every step.
    """

    def __init__(
        self,
        segmenter: Segmenter,
        max_piece_tokens: int = 32,
        max_final_tokens: int = 256,
        unit: str = "word",
        system_prompt: str = SYSTEM_PROMPT,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        self.segmenter = segmenter
        self.max_piece_tokens = max_piece_tokens
        self.max_final_tokens = max_final_tokens
        self.unit = unit
        self.system_prompt = system_prompt
        self.batch_size = batch_size
        self.seed = seed
        self.__name__ = "simulpo_streaming_rollout"

    def __call__(self, prompts: list, trainer) -> dict[str, list]:
        if not all(isinstance(p, str) for p in prompts):
            raise ConfigError(
                "the streaming rollout needs plain-text prompts (the source text), not chat "
                "messages: the dialogue is built turn by turn from the source chunks"
            )
        model = trainer.accelerator.unwrap_model(trainer.model)
        spec = PolicySpec(
            kind="llm",
            do_sample=True,
            temperature=trainer.temperature,
            top_p=trainer.top_p,
            max_piece_tokens=self.max_piece_tokens,
            max_new_tokens=self.max_final_tokens,
            system_prompt=self.system_prompt,
            seed=self.seed
            + 1_000_003 * trainer.state.global_step
            + trainer.accelerator.process_index,
        )
        policy = build_policy(spec, model=model, tokenizer=trainer.processing_class)
        sources = [p.split() for p in prompts]
        # TRL already repeated every prompt num_generations times: one episode per entry.
        rollouts = sample_groups(
            policy, sources, [None] * len(sources), self.segmenter, 1, self.unit, self.batch_size
        )
        return to_trl(rollouts)


def trl_reward(
    reward: Callable[[Sequence[Episode]], Any], group_size: int, name: str = "simulpo_reward"
) -> Callable[..., list[float]]:
    """A TRL reward function scoring groups of ``group_size`` consecutive episodes with
    ``reward(group)`` (a :mod:`simulpo.rewards` reward returning a ``RewardResult``, or any
    function returning one number per episode). References come from the dataset's
    ``reference`` column."""

    def reward_func(prompts, completions, episode, reference=None, **kwargs) -> list[float]:
        episodes = list(episode)
        if len(episodes) % group_size:
            raise ConfigError(
                f"{len(episodes)} episodes on this process is not a multiple of the group size "
                f"{group_size}: make the per-device generation batch a multiple of num_generations"
            )
        rewards = []
        for start in range(0, len(episodes), group_size):
            group = episodes[start : start + group_size]
            if len({str(p) for p in prompts[start : start + group_size]}) != 1:
                raise ConfigError(
                    "a group of episodes mixes sources: the episodes of one prompt must be "
                    "consecutive and on one process (per-device batch a multiple of "
                    "num_generations)"
                )
            if reference is not None:
                for ep, ref in zip(group, reference[start : start + group_size]):
                    ep.reference = ref
            result = reward(group)
            values = np.asarray(getattr(result, "rewards", result), dtype=np.float64)
            if values.shape != (len(group),):
                raise ValueError(f"the reward returned {values.shape} values for {len(group)}")
            rewards += values.tolist()
        return rewards

    reward_func.__name__ = name
    return reward_func


def trl_loss_inputs(
    batch: dict[str, list], advantages, pad_id: int, device="cpu", old_logprobs=None
) -> dict[str, Any]:
    """The padded tensors TRL's ``GRPOTrainer.compute_loss`` takes, built from a
    :func:`to_trl` batch as TRL's ``_generate_and_score_completions`` builds them (prompts
    left-padded, completions right-padded, ``env_mask`` as ``tool_mask``). For comparing
    our update with TRL's on the same episodes (tests, ``benchmarks/grpo_step.py``);
    ``old_logprobs`` (per completion token) plays TRL's ``old_per_token_logps``."""
    import torch

    def pad(rows, value, left=False, dtype=torch.long):
        width = max(len(r) for r in rows)
        out = torch.full((len(rows), width), value, dtype=dtype)
        for i, r in enumerate(rows):
            span = slice(width - len(r), width) if left else slice(0, len(r))
            out[i, span] = torch.as_tensor(r, dtype=dtype)
        return out.to(device)

    prompts, completions = batch["prompt_ids"], batch["completion_ids"]
    env_mask = pad(batch["env_mask"], 1)
    completion_mask = pad([[1] * len(c) for c in completions], 0)
    inputs = {
        "prompt_ids": pad(prompts, pad_id, left=True),
        "prompt_mask": pad([[1] * len(p) for p in prompts], 0, left=True),
        "completion_ids": pad(completions, pad_id),
        "completion_mask": completion_mask,
        "tool_mask": env_mask,
        "advantages": torch.as_tensor(advantages, dtype=torch.float32, device=device),
        "num_items_in_batch": (completion_mask * env_mask).sum(),
    }
    if old_logprobs is not None:
        inputs["old_per_token_logps"] = pad(old_logprobs, 0.0, dtype=torch.float32)
    return inputs


def trl_dataset(sources: Sequence[str], references: Sequence[str]):
    """A ``datasets.Dataset`` of ``prompt`` (source text) and ``reference`` columns."""
    from datasets import Dataset

    if len(sources) != len(references):
        raise ValueError(f"{len(sources)} sources but {len(references)} references")
    return Dataset.from_dict({"prompt": list(sources), "reference": list(references)})


def trl_config(config: GRPOConfig, group_size: int, max_tokens: int, **kwargs):
    """TRL's ``GRPOConfig`` with the hyper-parameters of our :class:`GRPOConfig`.

    ``max_tokens`` is TRL's ``max_completion_length`` (dr_grpo's constant). Rewards are
    not rescaled (``scale_rewards="none"``: simulpo rewards are already group z-scores
    and our advantages are ``r - mean``, unless ``config.scale_rewards``), and the KL term
    is the plain k3 estimator (TRL's default multiplies it by the ratio). ``kwargs`` go to
    TRL (``output_dir``, ``per_device_train_batch_size``, ``max_steps``, ``bf16``, ...);
    on CPU pass ``use_cpu=True, bf16=False``.
    """
    try:
        from trl import GRPOConfig as TRLConfig
    except ImportError as e:  # pragma: no cover - depends on the extra
        raise ConfigError("TRL is not installed: pip install 'simulpo[trl]'") from e
    settings = {
        "loss_type": config.loss_type,
        "beta": config.beta,
        "epsilon": config.eps_low,
        "epsilon_high": config.eps_high,
        "num_iterations": config.num_iterations,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "max_grad_norm": config.max_grad_norm,
        "learning_rate": config.lr,
        "scale_rewards": "group" if config.scale_rewards else "none",
        "use_bias_correction_kl": False,  # our KL term is GRPO's plain k3, not ratio-weighted
        "num_generations": group_size,
        "max_completion_length": max_tokens,
    }
    # Like our update, no activation checkpointing (TRL turns it on by default); the field
    # was renamed in transformers 5.x, so set whichever this version has.
    fields = {f.name for f in dataclasses.fields(TRLConfig)}
    settings[next(k for k in _CHECKPOINTING if k in fields)] = False
    settings.update(kwargs)
    return TRLConfig(**settings)


_CHECKPOINTING = ("activation_checkpointing", "gradient_checkpointing")

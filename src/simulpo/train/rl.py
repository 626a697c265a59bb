"""The RL loop (SeqPO / HPO): sample groups of streaming episodes, reward them, GRPO update.

One step, as in both papers:

1. take ``sources_per_step`` training sources (a fixed, seeded order over epochs);
2. **rollout** — stream each source ``group_size`` times with the sampling LLM policy,
   through the same loop as evaluation (:mod:`simulpo.train.rollout`);
3. **reward** — score each group of episodes with a plain reward function
   (:mod:`simulpo.rewards`: SeqPO's fused quality/latency reward or HPO's hierarchical
   one); the advantage of an episode is its reward minus its group's mean;
4. **update** — GRPO on the tokens the policy wrote (:mod:`simulpo.train.grpo`).

Everything a run needs to continue exactly is in its checkpoints: the weights, the
optimizer, the step; the data order and each step's sampling seed are functions of the
config's seed and the step, so a run killed at any point and resumed produces the same
weights as one that never stopped. Data parallel through ``accelerate``: each process
streams its share of the step's sources; the update normalizes over the global batch.

Layout of ``out_dir``: ``checkpoints/``, ``train_log.jsonl`` (one line per step: reward,
quality, latency, KL, entropy, ...; dev scores at ``eval_every``), ``dev/step-N/``
(instance logs and scores of each dev evaluation), ``final/`` (the trained policy) and
``result.json``.

Speech rides the same loop: ``train_rl(lm, tokenizer, items, speech=front_end)`` with the
speech policy's LM and front end (frozen encoder + projector, as
:class:`~simulpo.policies.llm.LLMPolicy` takes them) streams audio in ``stream.chunk_ms`` chunks.
Training items are spoken sentences or, for HPO over unbounded speech, whole recordings
whose episodes the reward scores sentence by sentence against their reference segments
(:mod:`simulpo.train.rl_data`). Turns are ``config.stream``'s (a recipe's ``stream``
section), which ``final/`` records in ``stream.json``. The LM and the projector train as one
:class:`~simulpo.models.projector.SpeechLM` (``train_projector=False`` freezes the
projector); checkpoints and ``final/`` hold both, so ``load_speech_model`` reads them back.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from simulpo.config import check_ranges, option
from simulpo.errors import ConfigError, SimulpoError
from simulpo.eval.runner import evaluate
from simulpo.io import atomic_write_json
from simulpo.models.lm import is_peft, save_model
from simulpo.models.projector import SpeechLM, speech_token_id
from simulpo.policies.build import PolicySpec, build_policy
from simulpo.policies.llm import LLMPolicy
from simulpo.policies.speech_front import SpeechFrontEnd
from simulpo.rewards import RewardConfig, build_reward
from simulpo.stream.settings import StreamConfig, save_stream
from simulpo.train.bookkeeping import TrainingRun
from simulpo.train.checkpoint import latest_checkpoint
from simulpo.train.grpo import GRPOConfig, group_advantages, grpo_update, language_model
from simulpo.train.rl_data import Recording, fingerprint, is_speech, stream_input
from simulpo.train.rollout import Rollout, collate, sample_groups

log = logging.getLogger(__name__)


@dataclass
class RLConfig:
    """One RL run; the defaults are the embedded demo's (tiny model, 2 CPU cores)."""

    steps: int = option(40, "rollout + update rounds", "[1, )")
    sources_per_step: int = option(16, "training sources per step (over all processes)", "[1, )")
    group_size: int = option(8, "episodes sampled per source (GRPO's group, B)", "[2, )")
    stream: StreamConfig = option(
        StreamConfig, "rollout and dev turns; in a recipe, its stream section"
    )
    cache_window: int | None = option(
        None, "bounded KV cache in tokens (long streams); None = all", "[1, )"
    )
    train_projector: bool = option(True, "speech: train the projector with the LM (False: frozen)")
    max_piece_tokens: int = option(32, "token budget of a piece before the source ends", "[1, )")
    max_final_tokens: int = option(160, "token budget of the last piece", "[1, )")
    weight_decay: float = option(0.0, "AdamW weight decay (the learning rate is grpo.lr)", "[0, )")
    reward: RewardConfig = field(default_factory=RewardConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)  # also rollouts' temperature, top_p
    eval_every: int = option(
        0, "greedy dev evaluation every this many steps (0 = at the end only)", "[0, )"
    )
    eval_segments: int = option(200, "dev segments evaluated (0 = all)", "[0, )")
    save_every: int = option(10, "checkpoint every this many steps (and at the end)", "[0, )")
    keep_checkpoints: int = option(
        2, "checkpoints kept on disk, newest first (0 = keep all)", "[0, )"
    )
    seed: int = option(0, "seed of the data order and of every rollout")

    #: keys that moved into the stream section
    MOVED: ClassVar[dict[str, str]] = {
        "chunk_words": "stream.chunk_words",
        "chunk_ms": "stream.chunk_ms",
    }

    def check(self) -> None:
        check_ranges(self, "RL ")
        self.stream.check()


#: fields that change no number of the training: only when it evaluates and checkpoints
BOOKKEEPING = frozenset({"eval_every", "eval_segments", "save_every", "keep_checkpoints"})
#: fields that may change when a run is resumed
_RESUMABLE = BOOKKEEPING | {"steps"}


def load_rl_config(path: str | Path | None, overrides: Sequence[str] = ()) -> RLConfig:
    """An RLConfig from a YAML file of its fields (a recipe's ``rl`` section: see
    :func:`simulpo.recipes.load_rl_section`) and ``overrides``."""
    from simulpo.config import load_config

    return load_config(RLConfig, path, overrides)


def step_sources(n_sources: int, config: RLConfig, step: int) -> np.ndarray:
    """Indices of the sources of ``step``: epoch after epoch of seeded permutations."""
    per = config.sources_per_step
    first = step * per
    out = []
    while len(out) < per:
        epoch, offset = divmod(first + len(out), n_sources)
        order = np.random.default_rng([config.seed, epoch]).permutation(n_sources)
        out.extend(order[offset : offset + per - len(out)].tolist())
    return np.asarray(out)


def rollout_seed(config: RLConfig, step: int, rank: int) -> int:
    return int(np.random.default_rng([config.seed, step, rank, 7]).integers(2**62))


def train_rl(
    model,
    tokenizer,
    train: Sequence[Any],
    dev: Sequence[Any] | None = None,
    config: RLConfig | None = None,
    out_dir: str | Path = "runs/rl",
    resume: bool = True,
    progress: bool = True,
    speech: SpeechFrontEnd | None = None,
) -> dict[str, Any]:
    """Post-train the policy ``model`` (an SFT checkpoint) with GRPO; returns a summary.

    The model is trained in place and saved to ``out_dir/final``; ``resume=True`` goes on
    from the last checkpoint in ``out_dir/checkpoints`` (same data and config). ``train``
    and ``dev`` hold text sentences (:class:`~simulpo.eval.testset.Sentence`); with
    ``speech`` (the speech policy's front end; ``model`` is its LM), ``train`` holds
    spoken sentences (:class:`~simulpo.data.speech.SpeechUtterance`) or long-form
    recordings (:class:`~simulpo.train.rl_data.Recording`) and ``dev`` utterances.
    """
    from accelerate import Accelerator

    config = config or RLConfig()
    config.check()
    if not train:
        raise SimulpoError("RL needs at least one training source")
    _check_sources(train, dev, speech)
    out_dir = Path(out_dir)
    accelerator = Accelerator()
    rank, world = accelerator.process_index, accelerator.num_processes
    if config.sources_per_step % world:
        raise ConfigError(
            f"RL sources_per_step ({config.sources_per_step}) must be a multiple of the "
            f"number of processes ({world})"
        )
    reward_fn = build_reward(config.reward)
    if speech is not None:  # one module, so the update and the checkpoints hold both
        speech.projector.requires_grad_(config.train_projector)
        speech_id = speech_token_id(tokenizer)
        model = SpeechLM(model, speech.projector, speech_id)
    # The KL reference is the starting policy; a LoRA model serves as its own reference
    # with its adapters disabled (see grpo_update), anything else needs a frozen copy.
    ref_model = None
    if config.grpo.beta > 0 and not is_peft(language_model(model)):
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.grpo.lr, weight_decay=config.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    if ref_model is not None:
        ref_model.to(accelerator.device)
    run = TrainingRun(
        accelerator, unwrapped, tokenizer, optimizer, None, config, out_dir, {"step": 0}, _RESUMABLE
    )
    run.start(fingerprint(train), resume)
    state = run.state
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    segmenter = config.stream.segmenter(speech is not None)
    bar = tqdm(
        total=config.steps,
        initial=state["step"],
        desc="rl",
        unit="step",
        disable=not progress or not accelerator.is_main_process,
    )
    run.bar = bar
    last_dev = _last_dev(run.history)  # a finished run, resumed, keeps its dev scores
    while state["step"] < config.steps:
        step = state["step"]
        tic = time.perf_counter()
        mine = step_sources(len(train), config, step)[rank::world]
        inputs = [stream_input(train[i]) for i in mine]
        rollouts = _rollouts(unwrapped, tokenizer, inputs, segmenter, config, step, rank, speech)
        rewards, reward_stats = _rewards(rollouts, reward_fn, [x.segments for x in inputs])
        advantages = group_advantages(
            rewards, [r.group for r in rollouts], scale=config.grpo.scale_rewards
        )
        rollout_s = time.perf_counter() - tic
        model.train()
        stats = grpo_update(
            model,
            optimizer,
            collate(rollouts, pad_id),
            advantages,
            config.grpo,
            accelerator=accelerator,
            ref_model=ref_model,
        )
        if not math.isfinite(float(stats.get("loss", 0.0))):
            bar.close()
            raise SimulpoError(
                f"the GRPO loss became NaN or infinite at step {step + 1}; stopped. The last good "
                f"checkpoint is {latest_checkpoint(run.ckpt_dir) or 'none'}. Lower grpo.lr (now {config.grpo.lr})."
            )
        state["step"] = step + 1
        event = {
            "step": step + 1,
            **_mean_over_processes(accelerator, {**reward_stats, **_float_stats(stats)}),
            "rollout_s": rollout_s,
            "step_s": time.perf_counter() - tic,
        }
        run.record(**event)
        bar.update(1)
        bar.set_postfix(
            {k: f"{event[k]:.3g}" for k in ("quality", "latency", "kl", "entropy") if k in event}
        )
        at_end = state["step"] == config.steps
        if dev and (at_end or (config.eval_every and state["step"] % config.eval_every == 0)):
            last_dev = _dev_eval(
                unwrapped, tokenizer, dev, config, out_dir, state["step"], accelerator, speech
            )
            run.record(step=state["step"], **{f"dev_{k}": v for k, v in last_dev.items()})
            run.say(_dev_line(state["step"], last_dev))
        if at_end or (config.save_every and state["step"] % config.save_every == 0):
            run.checkpoint()
    bar.close()

    final_dir = out_dir / "final"
    if accelerator.is_main_process:
        save_model(unwrapped, tokenizer, final_dir)
        save_stream(final_dir, config.stream)
    accelerator.wait_for_everyone()
    result = {
        "steps": state["step"],
        "final_dir": str(final_dir),
        "dev": last_dev,
        "config": asdict(config),  # what trained this policy (experiments reuse by it)
    }
    if accelerator.is_main_process:
        atomic_write_json(out_dir / "result.json", result)
    return result


def _check_sources(train: Sequence[Any], dev: Sequence[Any] | None, speech) -> None:
    kinds = {is_speech(x) for x in [*train, *(dev or [])]}
    if kinds == {True} and speech is None:
        raise ConfigError("speech training sources need the speech policy's front end (speech=)")
    if kinds != {True} and speech is not None:
        raise ConfigError("a speech policy trains on speech: every source must be audio")
    if any(isinstance(x, Recording) for x in dev or []):
        raise ConfigError(
            "dev evaluation takes utterances; score recordings with `simulpo eval --speech`"
        )


def _policy(model, tokenizer, config: RLConfig, speech, **sampling) -> LLMPolicy:
    """The LLM policy of ``model`` (the LM of a SpeechLM, with the front end)."""
    spec = PolicySpec(
        kind="llm",
        speech=speech is not None,
        max_piece_tokens=config.max_piece_tokens,
        max_new_tokens=config.max_final_tokens,
        cache_window=config.cache_window,
        record_speech=True,  # the update re-scores each turn's frames
        system_prompt=config.stream.prompts()[0],
        **sampling,
    )
    return build_policy(spec, model=language_model(model), tokenizer=tokenizer, front=speech)


def _rollouts(
    model, tokenizer, inputs, segmenter, config: RLConfig, step: int, rank: int, speech
) -> list[Rollout]:
    policy = _policy(
        model,
        tokenizer,
        config,
        speech,
        do_sample=True,
        temperature=config.grpo.temperature,
        top_p=config.grpo.top_p,
        seed=rollout_seed(config, step, rank),
        name="rollout",
    )
    model.eval()
    return sample_groups(
        policy,
        [x.source for x in inputs],
        [x.reference for x in inputs],
        segmenter,
        config.group_size,
    )


def _rewards(
    rollouts: Sequence[Rollout], reward_fn, segments: Sequence[Any] | None = None
) -> tuple[np.ndarray, dict[str, float]]:
    """Rewards of every rollout (group by group; ``segments[g]``, when not None, the
    reference segments of group ``g``'s source) and what the log shows of them: mean
    quality, mean latency before (``latency``) and after truncation or gating
    (``latency_reward``), and the reward function's own group statistics, averaged."""
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(rollouts):
        groups.setdefault(r.group, []).append(i)
    rewards = np.zeros(len(rollouts))
    quality, latency, latency_reward = (np.full(len(rollouts), np.nan) for _ in range(3))
    sums: dict[str, list[float]] = {}
    for g, members in groups.items():
        episodes = [rollouts[i].episode for i in members]
        group_segments = segments[g] if segments is not None else None
        result = reward_fn(episodes, segments=group_segments)
        rewards[members] = result.rewards
        quality[members], latency[members] = result.quality, result.latency_raw
        latency_reward[members] = result.latency
        for key, value in result.stats.items():
            sums.setdefault(f"reward/{key}", []).append(float(value))
    stats = {k: float(np.mean(v)) for k, v in sums.items()}
    with np.errstate(all="ignore"):
        stats.update(
            quality=float(np.nanmean(quality)) if np.isfinite(quality).any() else float("nan"),
            latency=float(np.nanmean(latency)) if np.isfinite(latency).any() else float("nan"),
            latency_reward=float(np.nanmean(latency_reward)),
        )
    stats["reward_std"] = float(np.std(rewards))
    stats["policy_tokens"] = float(np.mean([r.num_policy_tokens for r in rollouts]))
    stats["truncated_pieces"] = float(np.mean([r.truncated for r in rollouts]))
    return rewards, stats


def _float_stats(stats: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in stats.items() if isinstance(v, (int, float, torch.Tensor))}


def _mean_over_processes(accelerator, stats: dict[str, float]) -> dict[str, float]:
    if accelerator.num_processes == 1 or not stats:
        return stats
    keys = sorted(stats)
    values = torch.tensor([stats[k] for k in keys], dtype=torch.float64, device=accelerator.device)
    values = accelerator.reduce(values, reduction="mean")
    return dict(zip(keys, values.tolist()))


def _dev_eval(
    model, tokenizer, dev, config: RLConfig, out_dir: Path, step: int, accelerator, speech
):
    """Greedy decoding of the dev segments (main process); BLEU, chrF and latency."""
    result: dict[str, Any] = {}
    if accelerator.is_main_process:
        segments = list(dev[: config.eval_segments] if config.eval_segments else dev)
        policy = _policy(model, tokenizer, config, speech, name="rl")
        model.eval()
        where = out_dir / "dev" / f"step-{step}"
        if speech is None:
            turn = config.stream.segmenter(False)
            row = evaluate(policy, segments, where, "dev", turn.m, progress=False)
        else:
            from simulpo.eval.speech import evaluate_utterances

            turn = config.stream.segmenter(True)
            row = evaluate_utterances(policy, segments, where, "dev", turn.ms, progress=False)
        result = {k: row[k] for k in ("BLEU", "chrF", "AL", "LAAL") if k in row}
    accelerator.wait_for_everyone()
    return result


def _last_dev(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The scores of the last dev evaluation the log holds (``dev_BLEU`` → ``BLEU``)."""
    for event in reversed(history):
        scores = {k[4:]: v for k, v in event.items() if k.startswith("dev_")}
        if scores:
            return scores
    return None


def _dev_line(step: int, scores: dict[str, Any]) -> str:
    return f"step {step}: dev " + "  ".join(f"{k} {v:.2f}" for k, v in scores.items())


__all__ = ["RLConfig", "load_rl_config", "rollout_seed", "step_sources", "train_rl"]

"""Supervised fine-tuning on dialogues: loss on the assistant turns only.

A training example is a dialogue in the chat format of :mod:`simulpo.stream.dialogue`
(JSONL lines ``{"messages": [...]}``): a simultaneous episode (user turn = source chunk,
assistant turn = piece written, empty = wait) or an offline translation (one turn each).
It is tokenized by the one rendering the LLM policy uses too
(:class:`~simulpo.models.chat.ChatFormat`: the tokenizer's own chat template around the
pieces, turn by turn), so SFT trains on exactly the tokens the policy later writes, and
the loss covers exactly the tokens the model writes at inference: each assistant turn's
content and the token that closes it. An empty assistant turn still trains its
end-of-turn token — that is how the model learns to wait.

Training is an ``accelerate`` loop (the same code runs on one CPU or data-parallel under
``accelerate launch``): length-grouped batches with a token budget and dynamic padding,
AdamW with warmup and a cosine (or linear) decay, a checkpoint per epoch (and every
``save_every`` steps) written atomically by :mod:`simulpo.train.checkpoint`. A run
restarted with ``resume=True`` continues from its last complete checkpoint with the same
data order and RNG states, so 2 epochs in one go and 1 epoch + kill + resume end with the
same weights.

Speech dialogues (:mod:`simulpo.train.speech_sft`) ride the same loop: the model is a
:class:`~simulpo.models.projector.SpeechLM`, each dialogue's user turns hold speech
placeholder tokens, and ``train_speech`` gives per dialogue the encoder frames of those
turns, carried through batching to the model's ``speech`` input.

Layout of ``out_dir``::

    checkpoints/checkpoint-{step:08d}/   model + tokenizer + optimizer/scheduler/RNG state
    final/                               the trained model + tokenizer (save_model)
    train_log.jsonl                      one line per log event (train loss, dev loss, speed);
                                         a resumed run rewrites it up to its checkpoint
    result.json                          what train_sft returns
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from simulpo.config import check_ranges, option
from simulpo.errors import ConfigError, InputError, SimulpoError
from simulpo.io import atomic_write_json, read_lines
from simulpo.models.chat import ChatFormat, check_alternating
from simulpo.models.lm import save_model
from simulpo.train.bookkeeping import TrainingRun
from simulpo.train.checkpoint import latest_checkpoint

log = logging.getLogger(__name__)

IGNORE = -100  # the label of a token that takes no loss (PyTorch's cross-entropy default)
Messages = list[dict[str, str]]


@dataclass
class SFTConfig:
    """Hyper-parameters of :func:`train_sft`; the defaults train the tiny embedded model.

    Each field's ``metadata["help"]`` is its one-line help (see :func:`config_help`).
    """

    lr: float = option(
        1e-3, "peak AdamW learning rate (tiny model from scratch; ~1e-4 for LoRA)", "(0, )"
    )
    epochs: int = option(1, "passes over the training dialogues", "[1, )")
    batch_tokens: int = option(
        8192, "tokens per micro-batch and process, padding included", "[1, )"
    )
    grad_accum: int = option(1, "micro-batches accumulated into one optimizer step", "[1, )")
    warmup_ratio: float = option(
        0.03, "fraction of the steps warming the learning rate up from 0", "[0, 1)"
    )
    schedule: str = option("cosine", "learning-rate decay after warmup: cosine, linear or constant")
    weight_decay: float = option(
        0.01, "AdamW weight decay on matrices and embeddings (not norms)", "[0, )"
    )
    adam_beta2: float = option(
        0.95, "AdamW beta2 (0.95: steadier than 0.999 on short LM runs)", "(0, 1)"
    )
    max_grad_norm: float = option(1.0, "clip the gradient norm to this (0 = no clipping)", "[0, )")
    max_length: int = option(
        1024, "longest dialogue in tokens (<= batch_tokens); see overlong", "[1, )"
    )
    overlong: str = option("skip", "dialogues over max_length: skip (logged) or truncate the end")
    seed: int = option(0, "seed of the data order (and of torch's RNG when a run starts)")
    eval_every: int = option(
        0, "dev loss every this many steps (0 = at each epoch's end only)", "[0, )"
    )
    log_every: int = option(
        50, "log the running train loss every this many steps (0 = never)", "[0, )"
    )
    save_every: int = option(
        0, "also checkpoint every this many steps (0 = at epoch ends only)", "[0, )"
    )
    keep_checkpoints: int = option(
        2, "checkpoints kept on disk, newest first (0 = keep all)", "[0, )"
    )
    mixed_precision: str = option("no", "accelerate mixed precision: no, bf16 or fp16")

    def check(self) -> None:
        """Raise a ConfigError for an impossible value."""
        check_ranges(self, "SFT ")
        if self.batch_tokens < self.max_length:
            raise ConfigError(
                f"SFT batch_tokens ({self.batch_tokens}) must be >= max_length "
                f"({self.max_length}) so that every dialogue fits in a batch"
            )
        if self.schedule not in ("cosine", "linear", "constant"):
            raise ConfigError(
                f"SFT schedule must be cosine, linear or constant, not {self.schedule!r}"
            )
        if self.overlong not in ("skip", "truncate"):
            raise ConfigError(f"SFT overlong must be skip or truncate, not {self.overlong!r}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ConfigError(
                f"SFT mixed_precision must be no, bf16 or fp16, not {self.mixed_precision!r}"
            )


def config_help() -> dict[str, str]:
    """Each SFTConfig field's one-line help (for the CLI and docs)."""
    return {f.name: f.metadata.get("help", "") for f in fields(SFTConfig)}


#: config fields that may change between a run and its resumption (they change no number).
_RESUMABLE = frozenset({"eval_every", "log_every", "save_every", "keep_checkpoints"})


# ------------------------------------------------------------------------------ data


def load_dialogues(path: str | Path) -> list[Messages]:
    """The dialogues of a JSONL file, one ``{"messages": [{"role", "content"}, ...]}`` a line."""
    dialogues = []
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(path, f"not valid JSON ({err.msg})", number) from None
        if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
            raise InputError(path, 'expected an object {"messages": [...]}', number)
        try:
            check_messages(record["messages"])
        except (TypeError, ValueError) as err:
            raise InputError(path, str(err), number) from None
        dialogues.append(record["messages"])
    return dialogues


def check_messages(messages: Any) -> None:
    """Raise TypeError/ValueError unless ``messages`` is a list of role/content dicts with an
    assistant turn, shaped as a dialogue (an optional system message, then user and
    assistant turns alternating)."""
    if not isinstance(messages, list) or not messages:
        raise TypeError("a dialogue must be a non-empty list of messages")
    for m in messages:
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("role"), str)
            or not isinstance(m.get("content"), str)
        ):
            raise TypeError(f'every message needs a "role" and a "content" string, got {m!r:.80}')
        if m["role"] not in ("system", "user", "assistant"):
            raise ValueError(
                f"unknown role {m['role']!r}: a message is from system, user or assistant"
            )
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError("the dialogue has no assistant turn, so nothing to learn from")
    check_alternating(messages)


def tokenize_dialogue(
    tokenizer, messages: Messages, max_length: int | None = None
) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of a dialogue, tokenized as the LLM policy writes it.

    The tokens are :meth:`~simulpo.models.chat.ChatFormat.transcript`'s (the one rendering
    the policy uses too): the template's text around the pieces, each piece's content
    encoded on its own, each turn closed by the end-of-turn token, the sequence ending at
    the last one. ``labels`` is ``input_ids`` where the policy would have written the
    token (each assistant turn's content and its end-of-turn token; for an empty turn,
    only that token, which is how the model learns to wait; not the end-of-turn of a turn
    marked ``"truncated": true``) and -100 everywhere else. With ``max_length``, the
    sequence is cut to its first ``max_length`` tokens.
    """
    ids, labels = _tokenize(ChatFormat(tokenizer), messages)
    if max_length is not None:
        ids, labels = ids[:max_length], labels[:max_length]
    return ids, labels


def _tokenize(chat: ChatFormat, messages: Messages) -> tuple[list[int], list[int]]:
    try:
        check_messages(messages)
    except (TypeError, ValueError) as err:
        raise SimulpoError(str(err)) from None
    t = chat.transcript(messages)
    labels = [i if m else IGNORE for i, m in zip(t.token_ids, t.policy_mask)]
    return t.token_ids, labels


@dataclass
class TokenizedSet:
    """Tokenized dialogues: parallel lists of id and label arrays."""

    input_ids: list[np.ndarray]
    labels: list[np.ndarray]
    skipped: int = 0  # left out: over max_length (overlong="skip"), or nothing left to learn
    truncated: int = 0  # cut to max_length (overlong="truncate")
    #: per example, the encoder frames of its speech turns (None: a text set)
    speech: list[list[np.ndarray]] | None = None
    _label_counts: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(x) for x in self.input_ids], dtype=np.int64)

    @property
    def label_counts(self) -> np.ndarray:
        """Per example, the tokens that take loss (the first token never does: nothing precedes it)."""
        if self._label_counts is None:
            self._label_counts = np.array(
                [int((y[1:] != IGNORE).sum()) for y in self.labels], dtype=np.int64
            )
        return self._label_counts

    def fingerprint(self) -> str:
        h = hashlib.sha1()
        for ids, labels in zip(self.input_ids, self.labels):
            h.update(ids.tobytes())
            h.update(labels.tobytes())
        for chunks in self.speech or []:
            for frames in chunks:
                h.update(np.ascontiguousarray(frames).tobytes())
        return h.hexdigest()


def tokenize_dialogues(
    tokenizer,
    dialogues: Sequence[Messages],
    max_length: int,
    overlong: str = "skip",
    name: str = "train",
    speech: Sequence[list[np.ndarray]] | None = None,
) -> TokenizedSet:
    """Tokenize every dialogue; over-long ones are skipped or truncated (and counted).

    ``speech[i]``, when given, is dialogue ``i``'s encoder frames per speech turn; it stays
    with its dialogue (speech dialogues are skipped, never truncated, when over-long).
    """
    if not dialogues:
        raise SimulpoError(f"the {name} set has no dialogues")
    if speech is not None and len(speech) != len(dialogues):
        raise SimulpoError(f"{len(dialogues)} {name} dialogues but speech for {len(speech)}")
    if speech is not None and overlong == "truncate":
        raise ConfigError(
            "speech dialogues cannot be truncated (a cut would split a speech turn); "
            "use overlong='skip' or a larger max_length"
        )
    chat = ChatFormat(tokenizer)
    out = TokenizedSet([], [], speech=[] if speech is not None else None)
    unlabelled = 0
    for k, messages in enumerate(dialogues):
        try:
            ids, labels = _tokenize(chat, messages)
        except SimulpoError as err:
            raise SimulpoError(f"{name} dialogue {k}: {err}") from None
        if len(ids) > max_length:
            if overlong == "skip":
                out.skipped += 1
                continue
            ids, labels = ids[:max_length], labels[:max_length]
            out.truncated += 1
            if all(y == IGNORE for y in labels[1:]):  # cut before any assistant token
                unlabelled += 1
                continue
        out.input_ids.append(np.asarray(ids, dtype=np.int64))
        out.labels.append(np.asarray(labels, dtype=np.int64))
        if out.speech is not None:
            out.speech.append(list(speech[k]))
    if out.skipped or out.truncated:
        log.warning(
            "%s set: %d of %d dialogues longer than max_length=%d tokens were %s",
            name,
            out.skipped + out.truncated,
            len(dialogues),
            max_length,
            "skipped" if overlong == "skip" else "truncated",
        )
    if unlabelled:
        log.warning(
            "%s set: %d truncated dialogues kept no assistant token and were skipped",
            name,
            unlabelled,
        )
        out.skipped += unlabelled
    if not len(out):
        raise SimulpoError(
            f"no {name} dialogue fits in max_length={max_length} tokens; raise max_length"
        )
    return out


def length_grouped_batches(
    lengths: np.ndarray, batch_tokens: int, seed: int | None = None, epoch: int = 0
) -> list[np.ndarray]:
    """Batches of example indices with at most ``batch_tokens`` tokens once padded.

    Examples are sorted by length (ties broken at random) and packed greedily, so a batch
    holds dialogues of nearly the same length and padding stays small; the batch order is
    then shuffled. Everything is drawn from ``(seed, epoch)``: the same epoch always gets
    the same batches. ``seed=None``: sorted, not shuffled (for evaluation).
    """
    if seed is None:
        order = np.argsort(lengths, kind="stable")
    else:
        rng = np.random.default_rng([seed, epoch])
        order = np.lexsort((rng.random(len(lengths)), lengths))
    batches, current, longest = [], [], 0
    for i in order:
        n = int(lengths[i])
        if current and max(longest, n) * (len(current) + 1) > batch_tokens:
            batches.append(np.array(current))
            current, longest = [], 0
        current.append(i)
        longest = max(longest, n)
    if current:
        batches.append(np.array(current))
    if seed is not None:
        perm = rng.permutation(len(batches))
        batches = [batches[k] for k in perm]
    return batches


def collate(data: TokenizedSet, indices: np.ndarray, pad_id: int) -> dict[str, Any]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding); for a
    speech set also ``speech``, per row the list of its speech turns' frames."""
    width = max(len(data.input_ids[i]) for i in indices)
    ids = np.full((len(indices), width), pad_id, dtype=np.int64)
    labels = np.full((len(indices), width), IGNORE, dtype=np.int64)
    mask = np.zeros((len(indices), width), dtype=np.int64)
    for row, i in enumerate(indices):
        n = len(data.input_ids[i])
        ids[row, :n] = data.input_ids[i]
        labels[row, :n] = data.labels[i]
        mask[row, :n] = 1
    batch: dict[str, Any] = {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(mask),
        "labels": torch.from_numpy(labels),
    }
    if data.speech is not None:
        batch["speech"] = [[torch.from_numpy(f) for f in data.speech[i]] for i in indices]
    return batch


def to_device(batch: dict[str, Any], device) -> dict[str, Any]:
    """The batch's tensors (and speech frames, kept in their float16 until the projector) on
    ``device``."""
    out = {k: v.to(device) for k, v in batch.items() if k != "speech"}
    if "speech" in batch:
        out["speech"] = [[f.to(device) for f in row] for row in batch["speech"]]
    return out


def label_tokens(data: TokenizedSet, indices: np.ndarray) -> int:
    """The number of tokens that take loss in these examples."""
    return int(data.label_counts[indices].sum())


def token_loss_sum(model, batch: dict[str, Any]) -> torch.Tensor:
    """Summed next-token cross-entropy over the labelled tokens of a batch."""
    speech = {"speech": batch["speech"]} if "speech" in batch else {}
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        use_cache=False,
        **speech,
    ).logits
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE  # only these positions: a fraction of the tokens in dialogues
    return F.cross_entropy(logits[:, :-1][keep].float(), targets[keep], reduction="sum")


@torch.no_grad()
def evaluate_loss(
    model, data: TokenizedSet, batch_tokens: int, pad_id: int, accelerator=None
) -> float:
    """Mean cross-entropy per labelled token over ``data`` (all processes' shares reduced)."""
    was_training = model.training
    model.eval()
    batches = length_grouped_batches(data.lengths, batch_tokens)
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    device = accelerator.device if accelerator else next(model.parameters()).device
    total = torch.zeros(2, dtype=torch.float64, device=device)
    for indices in batches[rank::world]:
        batch = to_device(collate(data, indices, pad_id), device)
        ctx = accelerator.autocast() if accelerator else nullcontext()
        with ctx:
            total[0] += token_loss_sum(model, batch).double()
        total[1] += label_tokens(data, indices)
    if accelerator is not None and world > 1:
        total = accelerator.reduce(total, reduction="sum")
    model.train(was_training)
    return float(total[0] / total[1].clamp(min=1))


# ------------------------------------------------------------------------------ training


@dataclass
class _Plan:
    """The whole run's batches, fixed in advance so a resumed run replays the same order."""

    epochs: list[list[list[np.ndarray]]]  # epoch -> optimizer step -> this process's micro-batches
    step_tokens: list[list[int]]  # epoch -> optimizer step -> labelled tokens over all processes

    @property
    def total_steps(self) -> int:
        return sum(len(e) for e in self.epochs)


def _plan(data: TokenizedSet, config: SFTConfig, rank: int, world: int) -> _Plan:
    epochs, step_tokens = [], []
    lengths = data.lengths
    per_step = world * config.grad_accum
    for epoch in range(config.epochs):
        batches = length_grouped_batches(lengths, config.batch_tokens, config.seed, epoch)
        if world > 1:  # every process needs as many micro-batches: drop the last few
            batches = batches[: len(batches) // world * world]
            if not batches:
                raise SimulpoError(f"too few batches ({world} processes); lower batch_tokens")
        steps, tokens = [], []
        for s in range(0, len(batches), per_step):
            group = batches[s : s + per_step]
            steps.append(group[rank::world])
            tokens.append(sum(label_tokens(data, b) for b in group))
        epochs.append(steps)
        step_tokens.append(tokens)
    return _Plan(epochs, step_tokens)


def _optimizer(model, config: SFTConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise SimulpoError("the model has no trainable parameters")
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    betas = (0.9, config.adam_beta2)
    try:  # the fused kernel: one pass over all parameters, on CPU as on GPU
        return torch.optim.AdamW(groups, lr=config.lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=config.lr, betas=betas)


def _scheduler(optimizer: torch.optim.Optimizer, config: SFTConfig, total_steps: int):
    from transformers import get_scheduler

    name = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}[
        config.schedule
    ]
    warmup = int(config.warmup_ratio * total_steps)
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


def train_sft(
    model,
    tokenizer,
    train: Sequence[Messages],
    dev: Sequence[Messages] | None = None,
    config: SFTConfig | None = None,
    out_dir: str | Path = "runs/sft",
    resume: bool = True,
    progress: bool = True,
    train_speech: Sequence[list[np.ndarray]] | None = None,
    dev_speech: Sequence[list[np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Fine-tune ``model`` on the assistant turns of ``train``; return the final losses.

    Speech dialogues: ``model`` is a :class:`~simulpo.models.projector.SpeechLM` and
    ``train_speech`` / ``dev_speech`` hold each dialogue's speech-turn frames (see
    :func:`tokenize_dialogues`).

    The model is trained in place and saved to ``out_dir/final``. With ``resume=True`` a
    run finds its last complete checkpoint in ``out_dir/checkpoints`` and goes on from
    there (the data and config must be the same); ``resume=False`` deletes old
    checkpoints and starts over. Returns ``{"train_loss", "dev_loss", "steps", "epochs",
    "tokens_per_s", "final_dir", ...}`` (losses: mean cross-entropy per labelled token
    over the last epoch; ``dev_loss`` None without a dev set).
    """
    from accelerate import Accelerator

    config = config or SFTConfig()
    config.check()
    out_dir = Path(out_dir)
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    world = accelerator.num_processes
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )

    train_set = tokenize_dialogues(
        tokenizer, train, config.max_length, config.overlong, "train", train_speech
    )
    dev_set = (
        tokenize_dialogues(tokenizer, dev, config.max_length, config.overlong, "dev", dev_speech)
        if dev
        else None
    )
    plan = _plan(train_set, config, accelerator.process_index, world)

    optimizer = _optimizer(model, config)
    scheduler = _scheduler(optimizer, config, plan.total_steps)
    # The scheduler stays out of prepare(): accelerate would step it once per process.
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    initial = {"step": 0, "epoch": 0, "step_in_epoch": 0, "epoch_loss": 0.0, "epoch_tokens": 0}
    run = TrainingRun(
        accelerator,
        unwrapped,
        tokenizer,
        optimizer,
        scheduler,
        config,
        out_dir,
        initial,
        _RESUMABLE,
    )
    run.start(train_set.fingerprint(), resume)

    def dev_loss() -> float | None:
        if dev_set is None:
            return None
        return evaluate_loss(run.model, dev_set, config.batch_tokens, pad_id, accelerator)

    state = run.state
    bar = tqdm(
        total=plan.total_steps,
        initial=state["step"],
        desc="sft",
        unit="step",
        disable=not progress or not accelerator.is_main_process,
    )
    run.bar = bar
    model.train()
    clock = {"time": 0.0, "tokens": 0}
    window = [0.0, 0]  # summed loss and labelled tokens since the last log line
    for epoch in range(state["epoch"], config.epochs):
        steps = plan.epochs[epoch]
        for s in range(state["step_in_epoch"], len(steps)):
            tic = time.perf_counter()
            labelled = plan.step_tokens[epoch][s]  # over all processes
            loss_sum, tokens = _train_step(
                model, accelerator, train_set, steps[s], labelled, pad_id, config.max_grad_norm
            )
            if not math.isfinite(loss_sum):
                bar.close()
                last = latest_checkpoint(run.ckpt_dir)
                raise SimulpoError(
                    f"the training loss (or its gradient) became NaN or infinite at step "
                    f"{state['step'] + 1} (epoch {epoch + 1}); stopped without applying that step. The last good "
                    f"checkpoint is {last or 'none (none was written yet)'}. Lower the learning "
                    f"rate (now {config.lr}) or check the data."
                )
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            clock["time"] += time.perf_counter() - tic
            clock["tokens"] += tokens
            state["step"] += 1
            state["step_in_epoch"] = s + 1
            state["epoch_loss"] += loss_sum
            state["epoch_tokens"] += labelled
            window[0] += loss_sum
            window[1] += labelled
            speed = clock["tokens"] / clock["time"]
            bar.update(1)
            if state["step"] % 10 == 0 or s == len(steps) - 1:
                bar.set_postfix(loss=f"{window[0] / max(window[1], 1):.3f}", tok_s=f"{speed:.0f}")
            if config.log_every and state["step"] % config.log_every == 0:
                train_loss, lr = window[0] / max(window[1], 1), scheduler.get_last_lr()[0]
                run.record(
                    step=state["step"],
                    epoch=epoch + 1,
                    train_loss=train_loss,
                    lr=lr,
                    tokens_per_s=speed,
                )
                if bar.disable:  # the bar shows the loss already
                    run.say(
                        f"step {state['step']}  loss {train_loss:.4f}  lr {lr:.2e}  {speed:.0f} tok/s"
                    )
                window = [0.0, 0]
            if dev_set is not None and config.eval_every and state["step"] % config.eval_every == 0:
                loss = dev_loss()
                run.record(step=state["step"], epoch=epoch + 1, dev_loss=loss)
                run.say(f"step {state['step']}: dev loss {loss:.4f}")
            if config.save_every and state["step"] % config.save_every == 0 and s < len(steps) - 1:
                run.checkpoint()
        # end of epoch: its mean train loss, the dev loss, a checkpoint at the next epoch's start
        train_loss, loss = state["epoch_loss"] / max(state["epoch_tokens"], 1), dev_loss()
        run.record(
            step=state["step"],
            epoch=epoch + 1,
            epoch_train_loss=train_loss,
            **({"dev_loss": loss} if loss is not None else {}),
        )
        run.say(
            f"epoch {epoch + 1}/{config.epochs}: train loss {train_loss:.4f}"
            + (f", dev loss {loss:.4f}" if loss is not None else "")
        )
        state.update(
            epoch=epoch + 1,
            step_in_epoch=0,
            epoch_loss=0.0,
            epoch_tokens=0,
            last_train_loss=train_loss,
            last_dev_loss=loss,
            tokens_per_s=clock["tokens"] * world / clock["time"] if clock["time"] else None,
        )
        run.checkpoint()
    bar.close()

    final_dir = out_dir / "final"
    if accelerator.is_main_process:
        save_model(run.model, tokenizer, final_dir)
    accelerator.wait_for_everyone()
    result = {
        "train_loss": state.get("last_train_loss"),
        "dev_loss": state.get("last_dev_loss"),
        "steps": state["step"],
        "epochs": config.epochs,
        "train_dialogues": len(train_set),
        "skipped": train_set.skipped,
        "truncated": train_set.truncated,
        # of the session that trained last (a finished run, resumed, trains nothing now)
        "tokens_per_s": state.get("tokens_per_s"),
        "final_dir": str(final_dir),
    }
    if accelerator.is_main_process:
        atomic_write_json(out_dir / "result.json", result)
    return result


def _train_step(
    model,
    accelerator,
    data: TokenizedSet,
    micro_batches,
    step_tokens: int,
    pad_id: int,
    max_norm: float,
) -> tuple[float, int]:
    """Forward and backward over one optimizer step's micro-batches, then clip the gradient.

    Returns the loss summed over the step's labelled tokens on every process (NaN if the
    loss or the gradient went bad anywhere, so all processes stop together) and the
    tokens this process read.
    """
    world = accelerator.num_processes
    loss_sum, tokens = 0.0, 0
    for j, indices in enumerate(micro_batches):
        batch = to_device(collate(data, indices, pad_id), accelerator.device)
        # Gradients are synchronized once per optimizer step, on its last micro-batch.
        sync = nullcontext() if j == len(micro_batches) - 1 else accelerator.no_sync(model)
        with sync:
            with accelerator.autocast():
                loss = token_loss_sum(model, batch)
            # Every token weighs the same whatever its batch: the sum over all the step's
            # tokens (DDP then averages the processes' gradients, hence * world).
            accelerator.backward(loss * world / max(step_tokens, 1))
        loss_sum += loss.item()
        tokens += int(batch["attention_mask"].sum())
    if world > 1:
        total = torch.tensor([loss_sum], dtype=torch.float64, device=accelerator.device)
        loss_sum = float(accelerator.reduce(total, reduction="sum"))
    if max_norm > 0:
        norm = accelerator.clip_grad_norm_(model.parameters(), max_norm)
        if not torch.isfinite(norm):
            loss_sum = float("nan")
    return loss_sum, tokens


__all__ = [
    "SFTConfig",
    "config_help",
    "evaluate_loss",
    "length_grouped_batches",
    "load_dialogues",
    "tokenize_dialogue",
    "tokenize_dialogues",
    "train_sft",
]

"""The bookkeeping of a training run, shared by SFT and RL: its state, atomic checkpoints,
its JSONL log and its messages; a run started again resumes from its last checkpoint.

``out_dir/checkpoints`` holds the checkpoints (:mod:`simulpo.train.checkpoint`) and
``out_dir/train_log.jsonl`` one line per logged event; a resumed run rewrites the log up
to its checkpoint, so the log never holds events the weights have forgotten. A run
resumes from the newest checkpoint that loads (an unreadable one is reported and skipped),
and first deletes the temporary files that writes killed with the last run left.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from simulpo.errors import SimulpoError
from simulpo.io import atomic_write_text, remove_partial_writes
from simulpo.train.checkpoint import (
    CorruptCheckpoint,
    list_checkpoints,
    load_checkpoint,
    read_state,
    save_checkpoint,
)

log = logging.getLogger(__name__)


class TrainingRun:
    """The bookkeeping of one training run: its state, checkpoints, log file and messages."""

    def __init__(
        self,
        accelerator,
        model,
        tokenizer,
        optimizer,
        scheduler,
        config,
        out_dir: Path,
        initial_state: dict[str, Any],
        resumable: frozenset[str] = frozenset(),
    ) -> None:
        self.accelerator, self.model, self.tokenizer = accelerator, model, tokenizer
        self.optimizer, self.scheduler, self.config = optimizer, scheduler, config
        self.out_dir, self.ckpt_dir = out_dir, out_dir / "checkpoints"
        # fields in ``resumable`` may change between a run and its resumption
        self.config_dict = {k: v for k, v in asdict(config).items() if k not in resumable}
        # a checkpoint written before a field existed was written with its default
        self.defaults = asdict(type(config)())
        self.state: dict[str, Any] = dict(initial_state)
        self.history: list[dict[str, Any]] = []
        self.fingerprint = ""
        self.bar = None
        self._board = None  # a TensorBoard writer, when tensorboard is installed

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    def start(self, fingerprint: str, resume: bool) -> None:
        """Resume from the newest checkpoint that loads, or start afresh (deleting old ones)."""
        self.fingerprint = fingerprint
        if self.main:
            remove_partial_writes(self.out_dir)
        found = list_checkpoints(self.ckpt_dir)
        if found and not resume:
            if self.main:
                log.warning(
                    "resume=False: deleting %d old checkpoints in %s", len(found), self.ckpt_dir
                )
                shutil.rmtree(self.ckpt_dir, ignore_errors=True)
            found = []
        self.accelerator.wait_for_everyone()
        if found:
            self._resume(found)
        else:
            torch.manual_seed(getattr(self.config, "seed", 0))
        if self.main:  # the log holds what the checkpoint knows, nothing after it
            text = "".join(json.dumps(e) + "\n" for e in self.history)
            atomic_write_text(self.out_dir / "train_log.jsonl", text)

    def _resume(self, checkpoints: list[Path]) -> None:
        """Load the newest of ``checkpoints`` that loads, saying which were skipped."""
        broken = []
        for path in reversed(checkpoints):
            try:
                saved = read_state(path)
                saved["config"] = _with_defaults(saved.get("config", {}), self.defaults)
                _check_resumable(saved, self.config_dict, self.fingerprint, path)
                state = load_checkpoint(path, self.model, self.optimizer, self.scheduler)
            except CorruptCheckpoint as err:
                log.warning("cannot resume from %s: %s", path.name, err)
                broken.append(str(err))
                continue
            self.history = state.pop("history", [])
            for key in ("extra", "path", "config", "fingerprint"):
                state.pop(key, None)
            self.state = state
            older = f", the newest that loads ({len(broken)} newer unreadable)" if broken else ""
            log.log(
                logging.WARNING if broken else logging.INFO,
                "resuming from %s (step %d)%s",
                path,
                state["step"],
                older,
            )
            return
        raise SimulpoError(
            f"no checkpoint in {self.ckpt_dir} can be read ({broken[0]}); start over with "
            "--restart (resume=False), which deletes them"
        )

    def checkpoint(self) -> None:
        if self.main:
            state = dict(
                self.state,
                config=self.config_dict,
                fingerprint=self.fingerprint,
                history=self.history,
            )
            save_checkpoint(
                self.ckpt_dir,
                self.model,
                state,
                self.optimizer,
                self.scheduler,
                self.tokenizer,
                keep=getattr(self.config, "keep_checkpoints", 2),
            )
        self.accelerator.wait_for_everyone()

    def record(self, **event: Any) -> None:
        """Log one event (it must hold ``step``): to ``train_log.jsonl`` and, when the
        ``tensorboard`` package is installed, to ``out_dir/tensorboard``."""
        self.history.append(event)
        if self.main:
            with open(self.out_dir / "train_log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")
            board = self._tensorboard()
            if board is not None:
                for key, value in event.items():
                    if key != "step" and isinstance(value, (int, float)):
                        board.add_scalar(key, value, event.get("step", 0))
                board.flush()

    def _tensorboard(self):
        if self._board is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                self._board = False
            else:
                self._board = SummaryWriter(str(self.out_dir / "tensorboard"))
        return self._board or None

    def say(self, message: str) -> None:
        if self.main:
            (self.bar.write if self.bar is not None and not self.bar.disable else log.info)(message)


def _with_defaults(saved: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``saved`` with the fields it lacks (added to the config since) at their defaults."""
    out = dict(saved)
    for key, default in defaults.items():
        if key not in out:
            out[key] = default
        elif isinstance(out[key], dict) and isinstance(default, dict):
            out[key] = _with_defaults(out[key], default)
    return out


def _check_resumable(
    saved: dict[str, Any], config: dict[str, Any], fingerprint: str, path: Path
) -> None:
    hint = "use another out_dir, or resume=False to start over"
    if saved.get("fingerprint") != fingerprint:
        raise SimulpoError(f"{path} was written for other training data; {hint}")
    changed = [k for k in config if saved.get("config", {}).get(k) != config[k]]
    if changed:
        was = ", ".join(
            f"{k}={saved.get('config', {}).get(k)!r} (now {config[k]!r})" for k in changed
        )
        raise SimulpoError(f"{path} was written with another config: {was}; {hint}")


__all__ = ["TrainingRun"]

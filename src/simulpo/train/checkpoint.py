"""Atomic training checkpoints: a killed run resumes from its last complete checkpoint.

A checkpoint is a directory ``checkpoint-{step:08d}`` holding

- the model, written by ``save_pretrained`` (full weights; only the adapters for a
  ``peft`` model) and, when given, the tokenizer: a full checkpoint is itself a model
  directory that :func:`simulpo.models.lm.load_model` can open;
- ``training_state.pt``: optimizer, scheduler and RNG states (python, numpy, torch and
  CUDA) and any extra objects of the trainer;
- ``trainer_state.json``: the step, the position in the data (epoch, step in the epoch)
  and whatever else the trainer wants to find again, written last.

The directory is filled under a hidden temporary name and renamed into place, so a
checkpoint either exists complete or not at all; a run killed mid-write leaves at most a
hidden ``.checkpoint-*`` directory, which :func:`latest_checkpoint` ignores and the next
:func:`save_checkpoint` removes. A checkpoint damaged afterwards (a truncated or garbled
file) raises :class:`CorruptCheckpoint` naming the file, before anything is restored, so
a trainer can fall back to an older one. Nothing here knows about SFT: the RL trainer
uses the same functions with its own ``state``.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from simulpo.errors import SimulpoError
from simulpo.io import remove_partial_writes
from simulpo.models.lm import atomic_write_dir, is_peft, quiet_progress

log = logging.getLogger(__name__)

PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"
TRAINING_STATE_FILE = "training_state.pt"
_NAME = re.compile(rf"^{PREFIX}(\d+)$")
T = TypeVar("T")


class CorruptCheckpoint(SimulpoError):
    """A file of a checkpoint cannot be read (truncated, garbled or missing)."""


def _read(file: Path, reader: Callable[[Path], T]) -> T:
    """``reader(file)``, any failure to read it a :class:`CorruptCheckpoint` naming it."""
    try:
        return reader(file)
    except Exception as err:  # json, pickle, zip and safetensors each fail their own way
        reason = "missing" if isinstance(err, FileNotFoundError) else f"unreadable ({err})"
        raise CorruptCheckpoint(f"{file}: {reason}") from err


def read_state(path: str | Path) -> dict[str, Any]:
    """The ``trainer_state.json`` of checkpoint ``path``."""
    state = _read(Path(path) / STATE_FILE, lambda f: json.loads(f.read_text(encoding="utf-8")))
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise CorruptCheckpoint(f"{Path(path) / STATE_FILE}: holds no training step")
    return state


def checkpoint_path(directory: str | Path, step: int) -> Path:
    return Path(directory) / f"{PREFIX}{step:08d}"


def save_checkpoint(
    directory: str | Path,
    model,
    state: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    tokenizer: Any | None = None,
    extra: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write a checkpoint of ``model`` at ``state["step"]`` into ``directory``, atomically.

    ``state`` is a JSON-able dict that must hold ``step`` (an int); ``extra`` holds other
    objects — tensors and plain containers of numbers and strings (they are read back with
    ``torch.load(weights_only=True)``). After the new checkpoint is in place, all but the
    ``keep`` newest are deleted (``keep=0`` keeps all).
    """
    if not isinstance(state.get("step"), int):
        raise TypeError("state must hold the training step as an int under 'step'")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    remove_partial_writes(directory)
    path = checkpoint_path(directory, state["step"])
    payload = {
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_state(),
        "extra": extra or {},
    }
    text = json.dumps(state, ensure_ascii=False, indent=2) + "\n"

    def write(tmp: Path) -> None:
        with quiet_progress():
            model.save_pretrained(str(tmp))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        torch.save(payload, tmp / TRAINING_STATE_FILE)
        (tmp / STATE_FILE).write_text(text, encoding="utf-8")  # last: marks the files complete

    atomic_write_dir(path, write)
    if keep > 0:
        for old in list_checkpoints(directory)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return path


def list_checkpoints(directory: str | Path) -> list[Path]:
    """The complete checkpoints in ``directory``, oldest (lowest step) first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for child in directory.iterdir():
        m = _NAME.match(child.name)
        if m and child.is_dir() and (child / STATE_FILE).is_file():
            found.append((int(m.group(1)), child))
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The newest complete checkpoint in ``directory``, or None."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


def load_checkpoint(
    path: str | Path,
    model=None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Restore what :func:`save_checkpoint` wrote into the given objects; return the state.

    The returned dict is the saved ``state``, plus ``"extra"`` (the saved extra objects)
    and ``"path"``. Model weights are loaded in place into ``model``, whose architecture
    must match. Every file is read before anything is restored: a
    :class:`CorruptCheckpoint` leaves the objects as they were.
    """
    path = Path(path)
    if not (path / STATE_FILE).is_file():
        raise SimulpoError(f"{path}: not a complete checkpoint (no {STATE_FILE})")
    state = read_state(path)
    # weights_only: the payload holds only tensors and plain Python containers.
    payload = _read(
        path / TRAINING_STATE_FILE,
        lambda f: torch.load(f, map_location="cpu", weights_only=True),
    )
    if model is not None:
        load_weights(model, path)
    if optimizer is not None:
        if payload["optimizer"] is None:
            raise SimulpoError(f"{path}: the checkpoint holds no optimizer state")
        optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None:
        if payload["scheduler"] is None:
            raise SimulpoError(f"{path}: the checkpoint holds no scheduler state")
        scheduler.load_state_dict(payload["scheduler"])
    if restore_rng:
        set_rng_state(payload["rng"])
    state["extra"] = payload.get("extra", {})
    state["path"] = str(path)
    return state


def load_weights(model, path: str | Path) -> None:
    """Load the weights that ``model.save_pretrained(path)`` wrote back into ``model``, in place."""
    from safetensors.torch import load_file

    path = Path(path)
    if is_peft(model):
        from peft import set_peft_model_state_dict

        adapter = path / "adapter_model.safetensors"
        if not adapter.is_file():
            raise SimulpoError(f"{path}: no LoRA adapter weights (adapter_model.safetensors)")
        set_peft_model_state_dict(model, _read(adapter, lambda f: load_file(str(f))))
        return
    files = sorted(p for p in path.glob("*.safetensors") if not p.name.startswith("adapter_"))
    if not files:
        raise SimulpoError(f"{path}: no model weights (*.safetensors)")
    weights: dict[str, torch.Tensor] = {}
    for f in files:
        weights.update(_read(f, lambda f: load_file(str(f))))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    # save_pretrained leaves out tied copies (the output head tied to the embeddings).
    params = dict(model.named_parameters(remove_duplicate=False))
    saved = {params[k].data_ptr() for k in weights if k in params}
    untied = [k for k in missing if k not in params or params[k].data_ptr() not in saved]
    if not unexpected and not untied:
        return
    # Some architectures rename weights on save: let transformers read them back instead.
    try:
        fresh = type(model).from_pretrained(str(path), config=model.config, local_files_only=True)
        model.load_state_dict(fresh.state_dict())
    except (OSError, RuntimeError, ValueError) as err:
        raise SimulpoError(
            f"{path}: the checkpoint does not fit the model (missing {untied[:3]}, "
            f"unexpected {unexpected[:3]}); was it written for another architecture? ({err})"
        ) from err


# ---------------------------------------------------------------------------- RNG states


def rng_state() -> dict[str, Any]:
    """The states of every random generator a training run draws from."""
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": _listify(random.getstate()),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"]).astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(_tuplify(state["python"]))
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": np_state["bit_generator"],
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            log.warning(
                "not restoring CUDA RNG: saved for %d devices, %d now",
                len(cuda),
                torch.cuda.device_count(),
            )


def _listify(x):
    return [_listify(v) for v in x] if isinstance(x, tuple) else x


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, list) else x

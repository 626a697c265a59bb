"""The run directory every recipe writes into, and its one skip-if-done rule.

A recipe is a sequence of steps; each step owns one folder under the run's root and is
**done when that folder holds ``result.json``** (:data:`~simulpo.io.RESULT_FILE`), which
:meth:`RunDir.step` writes last, atomically, with what the step returned. A killed run
started again skips the done steps and redoes the others (training steps resume from
their own checkpoints inside their folders). A step may give a ``key`` (what its result
depends on, e.g. which policy an evaluation scored): a result made under another key is
made again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulpo.io import read_result, write_result

log = logging.getLogger(__name__)

#: where a result.json keeps the key it was made under
_KEY = "step_key"


class RunDir:
    """The root of one run; :meth:`step` runs or skips one step in its folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    def done(self, name: str, key: Any = None) -> dict | None:
        """The result of step ``name`` if it is done (under ``key``), else None."""
        result = read_result(self.root / name)
        if result is None or (key is not None and result.get(_KEY) != key):
            return None
        return {k: v for k, v in result.items() if k != _KEY}

    def step(self, name: str, make: Callable[[Path], dict], key: Any = None) -> dict:
        """The result of step ``name``: the saved one if the step is done, otherwise
        ``make(folder)``'s (a JSON-able dict), saved as the folder's ``result.json``."""
        saved = self.done(name, key)
        if saved is not None:
            log.debug("%s: done, skipped", self.root / name)
            return saved
        folder = self.root / name
        result = dict(make(folder))
        write_result(folder, result if key is None else {**result, _KEY: key})
        return result


def identity(model_dir: str | Path) -> str:
    """A digest of what trained the model in ``model_dir`` (the result of its training
    step, its parent folder), or of its path if no step trained it (a pretrained model):
    rows that evaluated it are made again when it is retrained or replaced."""
    trained = read_result(Path(model_dir).parent)
    text = json.dumps(trained if trained is not None else str(model_dir), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


__all__ = ["RunDir", "identity"]

"""COMET / XCOMET (the neural quality metric) from a local checkpoint, in its own environment.

unbabel-comet 2.2 pins numpy<2 and transformers<5, so it lives in a separate virtualenv
(``bash scripts/setup.sh --comet`` makes ``.venv-comet``) and :mod:`comet_worker` runs
there as a subprocess: the sentences go to it as a JSON file, the segment and system
scores come back as one. The numbers are COMET's own ``model.predict`` ones; nothing of
torch is imported here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from simulpo.errors import SimulpoError
from simulpo.io import read_lines

__all__ = ["RESULT_NAME", "CometModel", "CometResult", "checkpoint_file", "comet_python", "read_sources"]

WORKER = Path(__file__).with_name("comet_worker.py")
#: where ``scripts/setup.sh --comet`` puts COMET's environment (in the project folder)
VENV_NAME = ".venv-comet"
ENV_VAR = "SIMULPO_COMET_PYTHON"
#: COMET's file beside scores.json: the model and one score per segment
RESULT_NAME = "comet.json"


@dataclass(frozen=True)
class CometResult:
    """What COMET says of a system: ``name`` is ``XCOMET`` for XCOMET models, else ``COMET``."""

    name: str
    system_score: float
    scores: list[float]  # one per segment, in input order
    checkpoint: str
    class_identifier: str
    pretrained_model: str | None

    def as_json(self) -> dict:
        return {
            "metric": self.name, "checkpoint": self.checkpoint,
            "class_identifier": self.class_identifier,
            "pretrained_model": self.pretrained_model, "system_score": self.system_score,
            "scores": self.scores,
        }

    def add_to(self, scores: dict[str, float], quality: Sequence[str]) -> None:
        """Put the system score into ``scores`` right after the ``quality`` metrics there."""
        keys = list(scores)
        at = max((keys.index(k) + 1 for k in quality if k in scores), default=0)
        items = list(scores.items())
        items.insert(at, (self.name, self.system_score))
        scores.clear()
        scores.update(items)


def comet_python(python: str | Path | None = None) -> Path:
    """COMET's Python: ``python``, else ``$SIMULPO_COMET_PYTHON``, else ``.venv-comet`` in the
    current folder or in the source checkout simulpo runs from."""
    if python is None:
        python = os.environ.get(ENV_VAR)
    if python is not None:
        path = Path(python)
        if not path.is_file():
            raise SimulpoError(f"no COMET Python at {path} (it is a virtualenv's bin/python)")
        return path
    checkout = Path(__file__).resolve().parents[3]
    for folder in (Path.cwd(), checkout):
        candidate = folder / VENV_NAME / "bin" / "python"
        if candidate.is_file():
            return candidate
    raise SimulpoError(
        f"COMET's environment is not installed (no {VENV_NAME}/bin/python here or in "
        f"{checkout}): run `bash scripts/setup.sh --comet`, or pass --comet-python "
        f"(or set {ENV_VAR})"
    )


def checkpoint_file(path: str | Path) -> Path:
    """The ``model.ckpt`` of ``path``: that file, or a model folder's
    ``checkpoints/model.ckpt``; COMET reads ``hparams.yaml`` from the folder above it."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "model.ckpt"
    if not path.is_file():
        raise SimulpoError(f"COMET checkpoint {path} not found (a model folder holds "
                           "checkpoints/model.ckpt and hparams.yaml)")
    hparams = path.parent.parent / "hparams.yaml"
    if not hparams.is_file():
        raise SimulpoError(f"COMET checkpoint {path}: {hparams} is missing")
    return path.resolve()


def read_sources(path: str | Path, n: int, what: str) -> list[str]:
    """The source sentences of ``path``, one a line, which must be ``n`` (one per ``what``)."""
    lines = read_lines(path)  # no byte-order mark; bad UTF-8 named by line
    if len(lines) != n:
        raise SimulpoError(f"{path}: {len(lines)} source sentences for {n} {what}; "
                           "give one a line")
    return [line.strip() for line in lines]


@dataclass(frozen=True)
class CometModel:
    """A COMET checkpoint and the Python that runs it (both checked when made)."""

    checkpoint: Path
    python: Path
    batch_size: int = 16

    @classmethod
    def find(cls, checkpoint: str | Path, python: str | Path | None = None,
             batch_size: int = 16) -> CometModel:
        if batch_size < 1:
            raise SimulpoError(f"the COMET batch size must be at least 1, not {batch_size}")
        return cls(checkpoint_file(checkpoint), comet_python(python), batch_size)

    def score(
        self,
        hypotheses: Sequence[str],
        references: Sequence[str],
        sources: Sequence[str] | None = None,
    ) -> CometResult:
        """COMET's segment and system scores of the hypotheses (``sources`` None: none given)."""
        if len(hypotheses) != len(references) or (
            sources is not None and len(sources) != len(hypotheses)
        ):
            counts = f"{len(hypotheses)} hypotheses, {len(references)} references" + (
                "" if sources is None else f", {len(sources)} sources")
            raise SimulpoError(f"COMET needs one of each per segment: {counts}")
        if not hypotheses:
            raise SimulpoError("there are no segments for COMET to score")
        samples = [{"mt": h, "ref": r} for h, r in zip(hypotheses, references)]
        if sources is not None:
            for sample, src in zip(samples, sources):
                sample["src"] = src
        request = {"checkpoint": str(self.checkpoint), "samples": samples,
                   "batch_size": self.batch_size}
        with tempfile.TemporaryDirectory(prefix="simulpo-comet-") as tmp:
            req, res = Path(tmp) / "request.json", Path(tmp) / "result.json"
            req.write_text(json.dumps(request, ensure_ascii=False), encoding="utf-8")
            print(f"COMET: scoring {len(samples)} segments with {self.checkpoint}",
                  file=sys.stderr, flush=True)
            done = subprocess.run(
                [str(self.python), "-I", str(WORKER), str(req), str(res)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                text=True, errors="replace", check=False,
            )
            if done.returncode != 0 or not res.is_file():
                raise SimulpoError(f"the COMET worker ({self.python}) failed with exit status "
                                   f"{done.returncode}: {_last_line(done.stderr)}")
            out = json.loads(res.read_text(encoding="utf-8"))
        kind = out["class_identifier"]
        return CometResult(
            "XCOMET" if kind == "xcomet_metric" else "COMET", out["system_score"],
            out["scores"], str(self.checkpoint), kind, out["pretrained_model"],
        )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(it printed nothing)"

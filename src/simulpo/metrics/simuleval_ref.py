"""SimulEval's own scorers, loaded as the reference that tests and benchmarks compare against.

SimulEval is a test-only dependency (``scripts/setup.sh --test`` installs it without its
dependencies, which pin an old tqdm). Its ``simuleval.evaluator`` package imports pandas
only to print tables; when that import fails, the package is registered bare so that its
scorer and instance modules still load.
"""

from __future__ import annotations

import importlib
import logging
import sys
import types
from pathlib import Path


def load_simuleval() -> types.SimpleNamespace | None:
    """SimulEval's ``latency``, ``quality`` and ``instance`` modules, or None when not installed."""
    try:
        import simuleval
    except ImportError:
        return None
    try:
        importlib.import_module("simuleval.evaluator")
    except ImportError:
        bare = types.ModuleType("simuleval.evaluator")
        bare.__path__ = [str(Path(simuleval.__file__).parent / "evaluator")]
        sys.modules["simuleval.evaluator"] = bare
    logging.getLogger("simuleval").setLevel(logging.ERROR)  # "no delay information. Skipped"
    return types.SimpleNamespace(
        latency=importlib.import_module("simuleval.evaluator.scorers.latency_scorer"),
        quality=importlib.import_module("simuleval.evaluator.scorers.quality_scorer"),
        instance=importlib.import_module("simuleval.evaluator.instance"),
    )

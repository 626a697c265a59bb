"""Run the installed ``simuleval`` command (1.1.4, a test-only dependency) on a folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def simuleval_score_only(folder: Path, *options: str) -> dict[str, float]:
    """The scores ``simuleval --score-only --output FOLDER`` prints, by name."""
    exe = shutil.which("simuleval", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the simuleval command is not installed")
    done = subprocess.run(
        [exe, "--score-only", "--output", str(folder), *options],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "400", "PATH": str(Path(sys.executable).parent)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    header, values = done.stdout.strip().splitlines()[-2:]
    names, numbers = header.split(), values.split()[-len(header.split()) :]
    return {name: float(v) for name, v in zip(names, numbers)}

"""Data parallelism: 2 CPU processes (gloo, through accelerate), each holding half the rollout
batch, make the same GRPO update as one process holding all of it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from grpo_dp_worker import update

from simulpo.train.grpo import LOSS_TYPES

WORKER = Path(__file__).with_name("grpo_dp_worker.py")


def test_two_gloo_processes_make_the_update_of_one(tmp_path):
    out = tmp_path / "dp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(rank), "2", str(tmp_path / "rdv"), str(out)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=120)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("the data-parallel workers did not finish in 120 s")
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)
    parallel = torch.load(out)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for loss_type in LOSS_TYPES:
            single = update(loss_type)
            for a, b in zip(single["params"], parallel[loss_type]["params"]):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
            s, p = single["stats"], parallel[loss_type]["stats"]
            assert s["grad_norm"] > 0.5  # clipping was active on both sides
            for key in ("loss", "kl", "clip_fraction", "entropy", "grad_norm", "num_tokens"):
                assert p[key] == pytest.approx(s[key], rel=1e-5, abs=1e-7), key
    finally:
        torch.set_num_threads(threads)

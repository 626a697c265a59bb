"""benchmarks/serve.py runs end to end on one tiny stream (no timing is checked)."""

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_serve_benchmark_smoke(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    sys.modules.pop("serve", None)  # benchmarks/serve.py, not any other module of that name
    import serve as bench

    args = ["--sessions", "1,2", "--seconds", "2.5", "--encoder", "random", "--live"]
    result = bench.main([*args, "--piece-tokens", "2", "--final-tokens", "3"])
    sys.modules.pop("serve", None)
    assert [r["sessions"] for r in result["rows"]] == [1, 2]
    assert all(r["same_text"] for r in result["rows"])  # batched = one at a time (greedy)
    assert result["audio_s"] == 2.5
    row = result["rows"][1]
    # 2.5 s in 1120 ms chunks: 3 turns a stream, all of them taken one at a time
    assert row["one"]["mean_batch"] == 1.0
    assert 1.0 <= row["batched"]["mean_batch"] <= 2.0
    assert "batched/one" in capsys.readouterr().out

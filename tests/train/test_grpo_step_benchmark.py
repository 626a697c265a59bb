"""benchmarks/grpo_step.py runs end to end on the tiny LM (no timing is checked)."""

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_benchmark(monkeypatch, capsys, *args: str) -> dict:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    sys.modules.pop("grpo_step", None)
    import grpo_step as bench

    try:
        assert (
            bench.main(["--sources", "2", "--group", "2", "--repeats", "1", "--json", *args]) == 0
        )
    finally:
        sys.modules.pop("grpo_step", None)
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_grpo_step_benchmark_against_trl(monkeypatch, capsys):
    pytest.importorskip("trl")
    result = run_benchmark(monkeypatch, capsys, "--loss-types", "dapo")
    (row,) = result["results"]
    assert result["episodes"] == 4  # 2 sources x 2
    assert row["loss_type"] == "dapo"
    assert row["loss_abs_diff"] < 1e-5  # TRL's loss on the same episodes and weights
    assert 0 < row["simulpo_optimizer_ms"] < row["simulpo_ms"]  # the AdamW step is part of it


@pytest.mark.slow
def test_grpo_step_benchmark_without_trl(monkeypatch, capsys):
    result = run_benchmark(
        monkeypatch, capsys, "--no-trl", "--loss-types", "grpo,dr_grpo", "--words", "8"
    )
    assert [r["loss_type"] for r in result["results"]] == ["grpo", "dr_grpo"]
    assert all("trl_ms" not in r for r in result["results"])
    assert result["trl"] is None
    assert result["trainable_parameters"] == result["parameters"]  # the tiny LM trains all
    assert result["peak_rss_mib"] > 0


@pytest.mark.slow
def test_grpo_step_benchmark_on_a_model_folder_trains_lora_only(monkeypatch, capsys, tmp_path):
    from tiny_lm import build_tokenizer, random_qwen2

    from simulpo.models.lm import save_model

    tokenizer = build_tokenizer()
    saved = save_model(random_qwen2(tokenizer), tokenizer, tmp_path / "m")
    result = run_benchmark(
        monkeypatch, capsys, "--model", str(saved), "--no-trl", "--loss-types", "dapo"
    )
    assert result["model"] == str(saved)
    assert result["episodes"] == 4
    assert 0 < result["trainable_parameters"] < result["parameters"]  # the LoRA adapters only

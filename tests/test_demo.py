"""The demo's every step on a tiny configuration (the numbers mean nothing; the plumbing does)."""

import json

import pytest

from simulpo.demo import run_demo


@pytest.mark.skipif(
    __import__("shutil").which("apertium") is None, reason="apertium is not installed"
)
def test_quick_demo_writes_report_plot_and_models_and_resumes(tmp_path):
    rows = run_demo(tmp_path, quick=True, progress=False)
    names = {(r["dataset"], r["name"]) for r in rows}
    assert {("synthetic", "sft"), ("synthetic", "seqpo"), ("synthetic", "wait-3")} <= names
    assert ("synthetic", "offline") in names
    assert {("bible", f"wait-{k}") for k in (1, 3, 5, 7)} | {("bible", "offline")} <= names
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report) == len(rows)
    assert (tmp_path / "quality_latency.png").stat().st_size > 0
    for step in ("offline", "sft", "seqpo"):
        assert (tmp_path / step / "final" / "config.json").exists()
    dialogues = (tmp_path / "sft_data" / "train.jsonl").read_text().splitlines()
    assert len(dialogues) == 300 and json.loads(dialogues[0])["messages"][0]["role"] == "system"
    log = (tmp_path / "synthetic" / "sft" / "instances.log").read_text().splitlines()
    assert len(log) == 8
    # A second run finds every trained artefact and does not train again.
    before = [(tmp_path / s / "final" / "config.json").stat().st_mtime_ns for s in ("sft", "seqpo")]
    run_demo(tmp_path, quick=True, progress=False)
    after = [(tmp_path / s / "final" / "config.json").stat().st_mtime_ns for s in ("sft", "seqpo")]
    assert after == before

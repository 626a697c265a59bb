"""The demo's every step on a tiny configuration (the numbers mean nothing; the plumbing does)."""

import json

import pytest

from simulpo.recipes.demo import run_demo


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

    # An experiment trains its variants from the run's SFT policy and reports them; the
    # variant equal to the run's own recipe is the run's SeqPO policy, not trained again.
    from simulpo.recipes.demo import QUICK_OVERRIDES
    from simulpo.recipes.experiments import EXPERIMENTS, run_experiment

    rows = run_experiment("truncation", tmp_path, overrides=QUICK_OVERRIDES, progress=False)
    assert [r["name"] for r in rows] == ["seqpo-trunc", "seqpo-no-trunc"]
    assert (tmp_path / "seqpo" / "final" / "config.json").stat().st_mtime_ns == after[1]
    out = tmp_path / "experiments" / "truncation"
    report = json.loads((out / "report.json").read_text())
    assert {"seqpo-trunc", "seqpo-no-trunc", "sft", "seqpo", "wait-3"} <= {
        r["name"] for r in report
    }
    assert all((out / f).stat().st_size > 0 for f in ("chrF_AL.png", "BLEU_LAAL.png"))
    (no_trunc,) = (tmp_path / "experiments" / "policies").iterdir()
    stamp = (no_trunc / "final" / "config.json").stat().st_mtime_ns
    # Another experiment with the same variant reuses its policy.
    EXPERIMENTS["share-test"] = {"again": ["rl.reward.truncate=false"]}
    try:
        run_experiment("share-test", tmp_path, overrides=QUICK_OVERRIDES, progress=False)
    finally:
        del EXPERIMENTS["share-test"]
    assert [p.name for p in (tmp_path / "experiments" / "policies").iterdir()] == [no_trunc.name]
    assert (no_trunc / "final" / "config.json").stat().st_mtime_ns == stamp


def test_recipe_key_depends_on_every_rl_field_and_only_on_rl():
    from simulpo.recipes import load_recipe
    from simulpo.recipes.experiments import recipe_key
    from simulpo.recipes.text import TextRecipe

    base = recipe_key(load_recipe(TextRecipe, None, []))
    assert recipe_key(load_recipe(TextRecipe, None, ["rl.reward.lam=0.5"])) == base  # the default
    assert recipe_key(load_recipe(TextRecipe, None, ["sft.epochs=9"])) == base
    for change in (
        "rl.reward.lam=1.0",
        "rl.reward.truncate=false",
        "rl.grpo.lr=1e-4",
        "rl.steps=3",
    ):
        assert recipe_key(load_recipe(TextRecipe, None, [change])) != base, change

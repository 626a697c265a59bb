import json

import numpy as np
import pytest
import soundfile
from tiny_lm import save_tiny_whisper

import simulpo.eval.speech
import simulpo.train.rl
import simulpo.train.speech_sft
from simulpo.models.speech_encoder import SpeechEncoder
from simulpo.recipes import load_recipe
from simulpo.recipes.speech import SpeechRecipe, run_speech_recipe

TINY = [
    "data.train=6", "data.dev=2", "data.test=2", "data.workers=1",
    "model.lm=''", "model.vocab_size=300", "model.hidden_size=16", "model.num_layers=1",
    "model.num_heads=2", "stage1.epochs=1", "stage2.epochs=1", "stage2.batch_tokens=2048",
    "stage2.max_length=2048", "eval.max_piece_tokens=4", "eval.max_new_tokens=8",
    "rl.steps=1", "rl.sources_per_step=2", "rl.group_size=2", "rl.eval_segments=1",
    "rl.max_piece_tokens=4", "rl.max_final_tokens=8", "stream.chunks_per_turn=[1,2]",
    "eval.cascade_longform=true", "synthesis.passages=1", "synthesis.passage_size=2",
    "synthesis.rl_items=passages", "rl.reward.resegment=mwer",
]  # fmt: skip


@pytest.fixture
def recipe(tmp_path):
    save_tiny_whisper(tmp_path / "whisper")
    return load_recipe(SpeechRecipe, None, [*TINY, f"encoder.path={tmp_path / 'whisper'}"])


def refuse(*args, **kwargs):
    raise AssertionError("a finished step ran again")


def test_demo_config_spells_out_the_defaults():
    assert load_recipe(SpeechRecipe, "configs/demo-speech.yaml") == SpeechRecipe()


def test_recipe_runs_end_to_end_and_resumes_without_redoing_steps(recipe, tmp_path, monkeypatch):
    out = tmp_path / "run"
    rows = run_speech_recipe(recipe, out, progress=False)
    assert [(r["name"], r["dataset"]) for r in rows] == [
        ("cascade", "synthetic"), ("cascade", "synthetic-longform"),
        ("sft", "synthetic"), ("sft-2", "synthetic"), ("sft", "synthetic-longform"),
        ("hpo", "synthetic"), ("hpo-2", "synthetic"), ("hpo", "synthetic-longform"),
    ]  # fmt: skip
    cascade, row, hpo = rows[0], rows[2], rows[5]
    assert row["segments"] == 2 and row["chunk_ms"] == 1120 and rows[3]["chunk_ms"] == 2240
    assert cascade["segments"] == 2 and "WER" in cascade
    assert hpo["segments"] == 2
    assert json.loads((out / "hpo" / "result.json").read_text())["steps"] == 1
    for longform in rows[1::3]:  # one recording holds the two test utterances
        assert longform["recordings"] == 1 and longform["segments"] == 2
        assert {"StreamLAAL", "StreamLAAL_CA", "LongYAAL", "BLEU", "chrF"} <= set(longform)
    assert {"BLEU", "chrF", "AL", "LAAL"} <= set(row)
    lines = (out / "eval" / "sft" / "instances.log").read_text().splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in (out / "sft_data" / "train.jsonl").open()]
    assert len(records[0]) == 2
    # 4 segmentations of each of the 6 utterances, and of the one passage of two
    assert len(records) == 4 * 7
    assert {r["utterance"] for r in records if "+" in r["utterance"]} == {"train-0+train-1"}
    assert (out / "stage1" / "projector.json").exists()
    assert (out / "stage2" / "final" / "projector.json").exists()
    assert (out / "hpo" / "final" / "projector.json").exists()

    # Again: nothing is synthesized, encoded, trained or evaluated a second time.
    monkeypatch.setattr("simulpo.recipes.speech.build_speech", refuse)
    monkeypatch.setattr(SpeechEncoder, "encode_chunks", refuse)
    monkeypatch.setattr(simulpo.train.speech_sft, "align_projector", refuse)
    monkeypatch.setattr(simulpo.train.speech_sft, "train_speech_sft", refuse)
    monkeypatch.setattr(simulpo.eval.speech, "evaluate_utterances", refuse)
    monkeypatch.setattr(simulpo.eval.speech, "evaluate_longform", refuse)
    monkeypatch.setattr(simulpo.train.rl, "train_rl", refuse)
    again = run_speech_recipe(recipe, out, progress=False)
    assert json.dumps(again) == json.dumps(rows)  # (NaN latencies when nothing was written)


def test_offline_baseline_without_rl(recipe, tmp_path, monkeypatch):
    # the README's offline speech SFT: one turn per utterance, read whole, and no RL step
    recipe.synthesis.c_min = recipe.synthesis.c_max = 12
    recipe.synthesis.passages, recipe.stream.chunks_per_turn = 0, [12]
    recipe.eval.cascade, recipe.eval.longform_recordings, recipe.rl.steps = False, 0, 0
    monkeypatch.setattr(simulpo.train.rl, "train_rl", refuse)
    out = tmp_path / "offline"
    [row] = run_speech_recipe(recipe, out, progress=False)
    assert (row["name"], row["chunk_ms"]) == ("sft-12", 12 * 1120)
    assert not (out / "hpo").exists()
    records = [json.loads(line) for line in (out / "sft_data" / "train.jsonl").open()]
    assert {len(r["messages"]) for r in records} == {3}  # system, the whole speech, translation
    for line in (out / "eval" / "sft-12" / "instances.log").read_text().splitlines():
        instance = json.loads(line)  # everything written once the whole utterance is read
        assert set(instance["delays"]) <= {instance["source_length"]}


def test_rl_items_are_utterances_or_passages(recipe, tmp_path):
    from simulpo.data.speech import SpeechUtterance
    from simulpo.errors import ConfigError
    from simulpo.recipes.speech import rl_items
    from simulpo.train.rl_data import Recording

    wav = tmp_path / "r.wav"
    soundfile.write(wav, np.zeros(16000 * 4, dtype=np.float32), 16000)
    utts = [SpeechUtterance(f"u{k}", "s", "t", wav, k, 0.5, "v", 175, [0]) for k in range(3)]
    passages = rl_items(recipe, utts)  # passages of 2: u0 + u1, then u2
    assert all(isinstance(p, Recording) for p in passages) and len(passages) == 2
    assert [len(p.segments) for p in passages] == [2, 1]
    recipe.synthesis.rl_items = "utterances"
    assert rl_items(recipe, utts) == utts
    recipe.synthesis.rl_items = "recordings"
    with pytest.raises(ConfigError, match="rl_items"):  # refused before any step runs
        run_speech_recipe(recipe, tmp_path / "never", progress=False)
    assert not (tmp_path / "never").exists()


def test_speech_demo_quick_through_the_cli(tmp_path, capsys):
    from simulpo.cli import main

    out = tmp_path / "speech"
    assert main(["demo", "--speech", "--quick", "--output", str(out), "--no-progress"]) == 0
    rows = json.loads((out / "report.json").read_text())
    names = ["cascade", "sft", "sft-2", "hpo", "hpo-2"]
    assert [r["name"] for r in rows if r["dataset"] == "synthetic"] == names
    assert [r["name"] for r in rows if r["dataset"] == "synthetic-longform"] == ["sft", "hpo"]
    rows = [r for r in rows if r["dataset"] == "synthetic"]
    for r in rows:  # latencies in ms: nothing is written before the first 1120 ms chunk ends
        assert r["segments"] == 3 and (
            r["StartOffset"] != r["StartOffset"] or r["StartOffset"] >= 1120
        )
    assert (out / "quality_latency.png").stat().st_size > 0
    assert "cascade" in capsys.readouterr().out


def test_speech_demo_needs_the_text_policy_it_starts_from(tmp_path, capsys):
    from simulpo.cli import main

    missing = tmp_path / "no-text-run"
    args = ["demo", "--speech", "--output", str(tmp_path / "s"), "--set", f"model.lm={missing}"]
    assert main(args) == 2
    assert "run `simulpo demo` first" in capsys.readouterr().err


def test_calibration_recipe_loads_and_asks_for_the_small_pair():
    recipe = load_recipe(SpeechRecipe, "configs/speech-calibration.yaml")
    assert (recipe.data.min_len, recipe.data.max_len, recipe.data.words_per_class) == (3, 8, 6)
    assert recipe.model.lm == "" and recipe.eval.cascade is False
    assert (recipe.data.train, recipe.synthesis.passages) == (4000, 600)


def test_longform_recipe_trains_on_passages_and_scores_their_sentences():
    recipe = load_recipe(SpeechRecipe, "configs/speech-longform.yaml")
    assert (recipe.synthesis.passages, recipe.synthesis.rl_items) == (200, "passages")
    assert recipe.rl.reward.resegment == "mwer" and recipe.rl.reward.kind == "hpo"
    assert recipe.model.lm == SpeechRecipe().model.lm  # the rest is the demo's recipe

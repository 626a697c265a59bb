"""The recipe skeleton: one stream setting, one skip-if-done rule, one layering."""

import ast
import json
from pathlib import Path

import pytest

from simulpo.errors import ConfigError
from simulpo.recipes import load_recipe, load_rl_section
from simulpo.recipes.run import RunDir
from simulpo.recipes.speech import SpeechRecipe
from simulpo.recipes.text import TextRecipe

SRC = Path(__file__).parents[2] / "src" / "simulpo"


def test_the_stream_section_is_the_one_source_of_rollout_turns():
    recipe = load_recipe(SpeechRecipe, None, ["stream.chunk_ms=960"])
    assert recipe.rl.stream.chunk_ms == 960  # rollouts and dev read the recipe's stream
    text = load_recipe(TextRecipe, None, ["stream.chunk_words=3"])
    assert text.rl.stream.chunk_words == 3 and text.rl.stream.segmenter(False).m == 3
    # the same value in both places is not a conflict
    assert load_recipe(SpeechRecipe, None, ["stream.chunk_ms=960", "rl.stream.chunk_ms=960"])


@pytest.mark.parametrize(
    "overrides",
    [["rl.stream.chunk_ms=960"], ["stream.chunk_ms=800", "rl.stream.chunk_ms=960"]],
)
def test_conflicting_chunk_settings_are_refused_naming_both_keys(overrides):
    with pytest.raises(ConfigError) as err:
        load_recipe(SpeechRecipe, None, overrides)
    assert "rl.stream.chunk_ms = 960" in str(err.value) and "stream.chunk_ms = " in str(err.value)


@pytest.mark.parametrize(
    "key, new",
    [
        ("encoder.chunk_ms", "stream.chunk_ms"),
        ("eval.chunk_ms", "stream.chunk_ms"),
        ("rl.chunk_ms", "stream.chunk_ms"),
        ("eval.chunks_per_turn", "stream.chunks_per_turn"),
    ],
)
def test_old_chunk_keys_say_the_new_key(key, new):
    value = "[1]" if "per_turn" in key else "1120"
    with pytest.raises(ConfigError, match=rf"{key} has moved: set {new} instead"):
        load_recipe(SpeechRecipe, None, [f"{key}={value}"])
    with pytest.raises(ConfigError, match=r"eval.chunk_words has moved: set stream.chunk_words"):
        load_recipe(TextRecipe, None, ["eval.chunk_words=1"])


def test_bad_stream_values_are_refused():
    with pytest.raises(ConfigError, match="chunks_per_turn"):
        load_recipe(SpeechRecipe, None, ["stream.chunks_per_turn=[0]"])
    with pytest.raises(ConfigError, match="clock"):
        load_recipe(SpeechRecipe, None, ["stream.clock=wall"])


def test_rl_config_from_a_text_recipe_or_a_plain_file(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(
        "sft:\n  epochs: 1\nstream:\n  chunk_words: 2\nrl:\n  steps: 7\n  grpo:\n    lr: 0.001\n"
    )
    config = load_rl_section(path, ["group_size=4"])
    assert (config.steps, config.group_size, config.grpo.lr) == (7, 4, 0.001)
    assert config.stream.chunk_words == 2  # the recipe's stream
    plain = tmp_path / "rl.yaml"
    plain.write_text("steps: 3\nstream:\n  chunk_words: 4\n")
    config = load_rl_section(plain)
    assert (config.steps, config.stream.chunk_words) == (3, 4)
    plain.write_text("chunk_words: 4\n")
    with pytest.raises(ConfigError, match="chunk_words has moved: set stream.chunk_words"):
        load_rl_section(plain)


def test_a_step_runs_once_and_again_only_under_another_key(tmp_path):
    run = RunDir(tmp_path)
    calls = []

    def make(out):
        calls.append(out)
        (out / "made.txt").parent.mkdir(parents=True, exist_ok=True)
        return {"n": len(calls)}

    assert run.step("a/b", make) == {"n": 1}
    assert run.step("a/b", make) == {"n": 1} and len(calls) == 1
    assert json.loads((tmp_path / "a" / "b" / "result.json").read_text()) == {"n": 1}
    assert run.step("c", make, key={"policy": "x"}) == {"n": 2}
    assert run.step("c", make, key={"policy": "x"}) == {"n": 2}
    assert run.step("c", make, key={"policy": "y"}) == {"n": 3}  # made from something else
    assert calls == [tmp_path / "a" / "b", tmp_path / "c", tmp_path / "c"]


def test_a_failed_step_is_not_done(tmp_path):
    run = RunDir(tmp_path)

    def fail(out):
        out.mkdir(parents=True)
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run.step("s", fail)
    assert run.done("s") is None
    assert run.step("s", lambda out: {"ok": True}) == {"ok": True}


def _imports(package: str) -> set[tuple[str, str]]:
    """(file, imported simulpo module) for every import in ``package``'s files."""
    found = set()
    for path in (SRC / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            found |= {(str(path.relative_to(SRC)), n) for n in names if n.startswith("simulpo")}
    return found


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("train", ("simulpo.recipes", "simulpo.commands", "simulpo.cli")),
        ("metrics", ("simulpo.train", "simulpo.recipes", "simulpo.commands")),
        ("stream", ("simulpo.train", "simulpo.recipes", "simulpo.commands")),
        ("policies", ("simulpo.recipes", "simulpo.commands")),
        ("eval", ("simulpo.recipes", "simulpo.commands")),
        ("recipes", ("simulpo.commands", "simulpo.cli")),
    ],
)
def test_layering(package, forbidden):
    bad = sorted((f, m) for f, m in _imports(package) if m.startswith(forbidden))
    assert bad == []


def test_eval_refuses_a_chunk_the_speech_model_was_not_trained_with(tmp_path, capsys):
    from simulpo.cli import main
    from simulpo.stream.settings import StreamConfig, save_stream

    model = tmp_path / "model"
    save_stream(model, StreamConfig(chunk_ms=960))
    data = tmp_path / "data" / "speech" / "synthetic"
    (data / "wav").mkdir(parents=True)
    (data / "test.jsonl").write_text("")
    args = ["eval", "--speech", str(tmp_path / "data"), "--policy", "llm", "--model", str(model)]
    assert main([*args, "--chunk-ms", "1120"]) == 2
    err = capsys.readouterr().err
    assert "--chunk-ms 1120 conflicts with stream.chunk_ms = 960" in err

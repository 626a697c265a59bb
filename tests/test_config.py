from dataclasses import dataclass, field

import pytest

from simulpo.config import load_config
from simulpo.errors import ConfigError


@dataclass
class Inner:
    lr: float = 1e-3
    epochs: int = 1
    arch: str = "qwen2"


@dataclass
class Outer:
    seed: int = 0
    ks: list[int] = field(default_factory=lambda: [1, 3])
    inner: Inner = field(default_factory=Inner)
    note: str | None = None


def test_defaults_recipe_and_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 4\ninner:\n  lr: 1\n  epochs: 2\n")
    cfg = load_config(Outer, recipe, ["inner.epochs=5", "ks=[2, 4]", "note=hi"])
    assert cfg == Outer(seed=4, ks=[2, 4], inner=Inner(lr=1.0, epochs=5), note="hi")
    assert load_config(Outer) == Outer()


def test_unknown_key_is_named(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("inner:\n  epoch: 2\n")
    with pytest.raises(ConfigError, match=r"unknown key 'epoch' in inner\."):
        load_config(Outer, recipe)


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"inner.epochs: expected int, got 'x'"):
        load_config(Outer, None, ["inner.epochs=x"])
    with pytest.raises(ConfigError, match="expected int"):
        load_config(Outer, None, ["seed=true"])


def test_bad_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(Outer, None, ["seed"])
    with pytest.raises(Exception, match="no such config file"):
        load_config(Outer, tmp_path / "nope.yaml")


def test_demo_recipe_file_spells_out_the_embedded_defaults():
    from pathlib import Path

    from simulpo.pipeline import TextRecipe

    recipe = Path(__file__).parents[1] / "configs" / "demo-text.yaml"
    assert load_config(TextRecipe, recipe) == TextRecipe()


def test_partial_section_keeps_the_parents_defaults_for_that_section():
    @dataclass
    class Parent:
        inner: Inner = field(default_factory=lambda: Inner(lr=5.0, epochs=7))

    cfg = load_config(Parent, None, ["inner.epochs=2"])
    assert cfg.inner == Inner(lr=5.0, epochs=2)


def test_yaml_exponent_floats_without_a_dot_are_floats(tmp_path):
    # YAML 1.1 (PyYAML) reads "1e-5" as a string; a float field still takes it.
    from dataclasses import dataclass

    from simulpo.config import load_config

    @dataclass
    class C:
        lr: float = 1.0

    assert load_config(C, None, ["lr=1e-5"]).lr == 1e-5
    path = tmp_path / "c.yaml"
    path.write_text("lr: 3E+2\n")
    assert load_config(C, path).lr == 300.0
    with pytest.raises(ConfigError):
        load_config(C, None, ["lr=fast"])

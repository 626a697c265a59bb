from dataclasses import dataclass, field

import pytest

from simulpo.config import load_config, option
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

    from simulpo.recipes import load_recipe
    from simulpo.recipes.text import TextRecipe

    recipe = Path(__file__).parents[1] / "configs" / "demo-text.yaml"
    assert load_recipe(TextRecipe, recipe) == TextRecipe()


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


@dataclass
class Ranged:
    beta2: float = option(0.9, "an Adam beta", "(0, 1)")
    norm: float = option(1.0, "a clipping norm", "[0, )")
    steps: int = option(1, "a count", "[1, )")
    floor: float | None = option(None, "optional, positive", "(0, )")
    free: float = 0.5


@pytest.mark.parametrize(
    "override, message",
    [
        ("beta2=1.0", r"beta2 must be in \(0, 1\), got 1.0"),
        ("beta2=0", r"beta2 must be in \(0, 1\), got 0.0"),
        ("norm=-1e-3", r"norm must be >= 0, got -0.001"),
        ("steps=0", r"steps must be >= 1, got 0"),
        ("floor=0", r"floor must be > 0, got 0.0"),
        ("norm=.inf", r"norm: expected a finite float, got inf"),
        ("free=.nan", r"free: expected a finite float, got nan"),
        ("free=-.inf", r"free: expected a finite float, got -inf"),
        (
            "free=nan",
            r"free: expected a finite float, got 'nan' \(YAML spells NaN and infinity .nan",
        ),
        ("norm=inf", r"norm: expected a finite float, got 'inf' \(YAML spells"),
    ],
)
def test_out_of_range_and_non_finite_values_are_refused_by_name(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Ranged, None, [override])


def test_values_inside_their_range_and_none_are_accepted():
    cfg = load_config(Ranged, None, ["beta2=0.999", "norm=0", "steps=3", "floor=~", "free=-2"])
    assert cfg == Ranged(beta2=0.999, norm=0.0, steps=3, floor=None, free=-2.0)


def test_nested_float_in_a_list_must_be_finite():
    @dataclass
    class L:
        xs: list[float] = field(default_factory=list)

    with pytest.raises(ConfigError, match=r"xs\[1\]: expected a finite float, got nan"):
        load_config(L, None, ["xs=[1.0, .nan]"])


@pytest.mark.parametrize(
    "override, key",
    [
        ("adam_beta2=1.0", "adam_beta2"),
        ("weight_decay=.nan", "weight_decay"),
        ("max_grad_norm=.inf", "max_grad_norm"),
        ("lr=-1e-3", "lr"),
        ("warmup_ratio=1", "warmup_ratio"),
    ],
)
def test_sft_config_refuses_bad_values_when_read(override, key):
    from simulpo.train.sft import SFTConfig

    with pytest.raises(ConfigError, match=rf"config: {key}"):
        load_config(SFTConfig, None, [override])


@pytest.mark.parametrize(
    "override, key",
    [
        ("grpo.lr=.nan", "grpo.lr"),
        ("grpo.lr=nan", r"grpo.lr: expected a finite float, got 'nan' \(YAML spells NaN"),
        ("reward.lam=.nan", "reward.lam"),
        ("grpo.max_grad_norm=.inf", "grpo.max_grad_norm"),
        ("grpo.top_p=1.5", r"grpo.top_p must be in \(0, 1\]"),
        ("weight_decay=-1", "weight_decay must be >= 0"),
        ("reward.min_similarity=1", "reward.min_similarity"),
        ("group_size=1", "group_size must be >= 2"),
    ],
)
def test_rl_config_refuses_bad_values_when_read(override, key):
    from simulpo.train.rl import load_rl_config

    with pytest.raises(ConfigError, match=rf"config: {key}"):
        load_rl_config(None, [override])


def test_a_config_built_in_python_is_checked_by_the_same_ranges():
    from simulpo.train.grpo import GRPOConfig
    from simulpo.train.sft import SFTConfig

    with pytest.raises(ConfigError, match=r"SFT adam_beta2 must be in \(0, 1\), got 1.0"):
        SFTConfig(adam_beta2=1.0).check()
    with pytest.raises(ConfigError, match=r"grpo max_grad_norm: expected a finite float, got inf"):
        GRPOConfig(max_grad_norm=float("inf"))


def test_a_bad_range_in_a_field_definition_is_a_programming_error():
    with pytest.raises(ValueError, match="bad range"):
        option(1, "x", "0..1")

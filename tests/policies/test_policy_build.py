"""The one policy builder: every kind from a spec, names with their parameters."""

import pytest

from simulpo.errors import ConfigError, SimulpoError
from simulpo.policies.build import PolicySpec, build_policy, check_kind, policy_name
from simulpo.stream.dialogue import SYSTEM_PROMPT


@pytest.mark.parametrize(
    "kind, extra, name",
    [
        ("wait-k", {"k": 3}, "wait-3"),
        ("wait-5", {}, "wait-5"),
        ("offline", {}, "offline"),
        ("fixed-chunk", {}, "fixed-1"),
        ("fixed-chunk", {"chunk_words": 2}, "fixed-2"),
        ("local-agreement", {"n": 2}, "la-2"),
        ("la", {"n": 3}, "la-3"),
    ],
)
def test_schedules_are_named_with_their_parameters(upper, kind, extra, name):
    spec = PolicySpec(kind=kind, **extra)
    assert build_policy(spec, translator=upper).name == name == policy_name(spec)
    named = PolicySpec(kind=kind, name="mine", **extra)
    assert build_policy(named, translator=upper).name == "mine" == policy_name(named)


def test_translators_come_from_the_spec():
    policy = build_policy(PolicySpec(kind="wait-2", translator="grammar"))
    assert type(policy.translator).__name__ == "GrammarTranslator"
    with pytest.raises(SimulpoError, match="--translator llm needs --model"):
        build_policy(PolicySpec(kind="wait-2", translator="llm"))


def test_llm_policies_from_a_loaded_model_or_a_directory(tmp_path):
    from tiny_lm import build_tokenizer, random_qwen2

    from simulpo.models.lm import save_model

    tokenizer = build_tokenizer()
    model = random_qwen2(tokenizer)
    spec = PolicySpec(kind="llm", do_sample=True, seed=3, temperature=0.7, max_piece_tokens=5,
                      max_new_tokens=9, cache_window=300, name="rollout")  # fmt: skip
    policy = build_policy(spec, model=model, tokenizer=tokenizer)
    assert (policy.name, policy.max_piece_tokens, policy.max_final_tokens) == ("rollout", 5, 9)
    assert policy.cache_window == 300
    saved = save_model(model, tokenizer, tmp_path / "m")
    assert build_policy(PolicySpec(kind="llm", model=saved)).name == "llm"
    assert build_policy(PolicySpec(kind="llm", model=saved)).system_prompt == SYSTEM_PROMPT
    with pytest.raises(SimulpoError, match="needs --model PATH"):
        build_policy(PolicySpec(kind="llm"))


def test_a_policy_directory_brings_the_prompt_it_was_trained_with(tmp_path):
    from tiny_lm import build_tokenizer, random_qwen2

    from simulpo.models.lm import save_model
    from simulpo.stream.settings import StreamConfig, save_stream

    tokenizer = build_tokenizer()
    saved = save_model(random_qwen2(tokenizer), tokenizer, tmp_path / "m")
    stream = StreamConfig(source_lang="en", target_lang="es")
    save_stream(saved, stream)
    assert build_policy(PolicySpec(kind="llm", model=saved)).system_prompt == stream.prompts()[0]
    given = PolicySpec(kind="llm", model=saved, system_prompt="Be brief.")
    assert build_policy(given).system_prompt == "Be brief."
    assert build_policy(PolicySpec(kind="llm", model=saved, system_prompt=None)).system_prompt is None


def test_speech_kinds_are_checked():
    with pytest.raises(SimulpoError, match="not a speech policy"):
        check_kind("wait-k", speech=True)
    with pytest.raises(ConfigError, match="reads speech"):
        check_kind("cascade", speech=False)
    with pytest.raises(SimulpoError, match="multiple of 20"):
        build_policy(PolicySpec(kind="llm", speech=True, model="x", chunk_ms=250))

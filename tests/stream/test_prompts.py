"""The system prompts: generic without languages, naming both languages and the task with them."""

import pytest

from simulpo.errors import ConfigError
from simulpo.recipes import load_recipe
from simulpo.recipes.text import TextRecipe
from simulpo.stream.dialogue import OFFLINE_SYSTEM_PROMPT, SYSTEM_PROMPT, system_prompts
from simulpo.stream.settings import StreamConfig


def test_no_languages_keep_the_embedded_defaults_prompts():
    # the tiny BPE tokenizer has these two prompts as single tokens: they must not change
    assert StreamConfig().prompts() == (SYSTEM_PROMPT, OFFLINE_SYSTEM_PROMPT)
    assert SYSTEM_PROMPT == "Translate the source into the target as it arrives, chunk by chunk."


def test_language_codes_become_names_in_both_prompts():
    streaming, offline = StreamConfig(source_lang="en", target_lang="es").prompts()
    assert streaming.startswith("You are a simultaneous interpreter. Translate the English ")
    assert "into Spanish" in streaming and "arrives in pieces" in streaming
    assert offline == "Translate the English text into Spanish. Reply with the translation only."
    assert system_prompts("deu", "Galician")[1] == (
        "Translate the German text into Galician. Reply with the translation only."
    )


def test_bad_languages_are_refused_by_the_recipe():
    with pytest.raises(ConfigError, match="unknown language code 'xx'"):
        load_recipe(TextRecipe, None, ["stream.source_lang=en", "stream.target_lang=xx"])
    with pytest.raises(ConfigError, match="both languages or neither"):
        load_recipe(TextRecipe, None, ["stream.target_lang=es"])


def test_the_recipes_languages_reach_the_rollouts():
    recipe = load_recipe(TextRecipe, None, ["stream.source_lang=en", "stream.target_lang=fr"])
    assert "into French" in recipe.rl.stream.prompts()[0]

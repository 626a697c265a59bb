"""ApertiumTranslator against the real Apertium (skipped when it is not installed).

Pinned outputs are those of Apertium 3.8.3 with apertium-eng-spa 0.8.1 (Debian 12); an
external, deterministic system, so a few simple sentences can be checked word for word.
"""

from __future__ import annotations

import pytest

from simulpo.errors import SimulpoError
from simulpo.translators.apertium import ApertiumTranslator


def _words(text: str) -> list[str]:
    return text.split()


@pytest.fixture(scope="module")
def translator():
    try:
        t = ApertiumTranslator()
    except SimulpoError as exc:
        pytest.skip(f"Apertium eng-spa is not available: {exc}")
    yield t
    t.close()


@pytest.mark.parametrize(
    ("english", "spanish"),
    [
        ("The dog eats the apple.", "El perro come la manzana."),
        ("Jesus wept.", "Jesus lloró."),
        (
            "In the beginning, God created the heavens and the earth.",
            "En el comienzo, el dios creó los cielos y la tierra.",
        ),
    ],
)
def test_known_translations(translator, english, spanish):
    assert translator.translate(_words(english)) == _words(spanish)


def test_one_output_per_input_in_order(translator):
    # "the red" / "car is here" would come back as "El coche" / "rojo es aquí" if the two
    # segments reached Apertium as consecutive lines of one text.
    sources = [[], _words("the red"), [",", ".", "!"], _words("car is here"), ["", " "], ["Hello"]]
    out = translator.translate_batch(sources)
    assert len(out) == len(sources)
    assert out[0] == [] and out[4] == []
    assert out[1] == ["El", "rojo"]
    assert out[2] == [",", ".", "!"]
    assert out[3] == translator.translate(_words("car is here"))
    assert out[5] == ["Hola"]


def test_batch_equals_one_at_a_time_in_any_order():
    # "drunk" and "I" make Apertium's tagger rewrite its tags for unknown words ("Ahimaaz",
    # "Moabitess"): without the warm-up, results would depend on what came before.
    sentences = [
        "He drank of the wine and got drunk.",
        "Ahimaaz called, and said",
        "Ruth the Moabitess said, “Yes,",
        "I see the big house",
        "Zichri, a mighty man of Ephraim, killed Maaseiah",
        "the red",
    ]
    try:
        batch = ApertiumTranslator(cache_size=0)
        single = ApertiumTranslator(cache_size=0)
    except SimulpoError as exc:
        pytest.skip(f"Apertium eng-spa is not available: {exc}")
    with batch, single:
        together = batch.translate_batch([_words(s) for s in sentences])
        alone = [single.translate(_words(s)) for s in reversed(sentences)][::-1]
    assert together == alone


def test_marks_removed_and_reserved_characters_kept(translator):
    out = translator.translate(_words("He is the redxq man."))
    assert "redxq" in out
    assert not any(word[0] in "*#@" for word in out)
    special = translator.translate(_words("email@x.com {x} [y] ^$ \\z"))
    for word in ["email@x.com", "{x}", "[y]", "^$", "\\z"]:
        assert word in special


def test_long_input(translator):
    source = _words("the man went to the house and he saw a red car .") * 200
    out, after = translator.translate_batch([source, ["Hello"]])
    assert len(out) > len(source) // 2
    assert after == ["Hola"]


def test_cache_answers_repeats_and_is_bounded(translator, monkeypatch):
    t = ApertiumTranslator(cache_size=2)
    with t:
        first = t.translate_batch([_words("the red car"), _words("the dog")])

        def no_pipeline(texts):
            raise AssertionError(f"cached texts sent to Apertium again: {texts}")

        monkeypatch.setattr(t, "_run", no_pipeline)
        assert t.translate_batch([_words("the dog"), _words("the red car")]) == first[::-1]
        monkeypatch.undo()
        t.translate(_words("the cat"))
        assert len(t._cache) == 2


def test_restarts_after_close(translator):
    t = ApertiumTranslator()
    t.translate(["Hello"])
    t.close()
    assert t.translate(["Hello"]) == ["Hola"]
    t.close()


def test_missing_apertium_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SimulpoError, match="not installed.*apertium-eng-spa"):
        ApertiumTranslator()


def test_missing_pair_is_a_clear_error(translator):
    with pytest.raises(SimulpoError, match="no language pair 'xxx-yyy'.*eng-spa"):
        ApertiumTranslator(pair="xxx-yyy")

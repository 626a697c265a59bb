"""GrammarTranslator: the gold translation of every generated sentence, hand-checked
sentences and prefixes, robustness on arbitrary word sequences."""

from __future__ import annotations

import random

import pytest

from simulpo.data.synthetic import generate_corpus, get_grammar, third_person
from simulpo.translators import build_translator
from simulpo.translators.grammar import GrammarTranslator


def gloss(reorder: float, words: str) -> list[str]:
    """Expected target written by hand as source words (their translations) and particle names."""
    g = get_grammar(reorder)
    names = {"SUBJ": "subj", "OBJ": "obj", "NEG": "neg", "Q": "q"}
    return [g.particles[names[w]] if w in names else g.translate_word(w) for w in words.split()]


# (reorder, source, expected target as glosses, expected alignment) — all written by hand
# from the rules in the docstring of simulpo.data.synthetic.
HAND = [
    (1.0, "the big dog sees a small cat",
     "dog big SUBJ cat small OBJ sees",
     [(1, 1), (2, 0), (2, 2), (3, 6), (5, 4), (6, 3), (6, 5)]),
    (0.0, "the big dog sees a small cat",
     "big dog SUBJ sees small cat OBJ",
     [(1, 0), (2, 1), (2, 2), (3, 3), (5, 4), (6, 5), (6, 6)]),
    (1.0, "my friend does not often walk to the old house",
     "my friend SUBJ house old to often walk NEG",
     [(0, 0), (1, 1), (1, 2), (2, 8), (3, 8), (4, 6), (5, 7), (6, 5), (8, 4), (9, 3)]),
    (0.0, "my friend does not often walk to the old house",
     "my friend SUBJ often walk NEG to old house",
     [(0, 0), (1, 1), (1, 2), (2, 5), (3, 5), (4, 3), (5, 4), (6, 6), (8, 7), (9, 8)]),
    (1.0, "the man that reads the letter sleeps",
     "man that letter OBJ reads SUBJ sleeps",
     [(1, 0), (1, 5), (2, 1), (3, 4), (5, 2), (5, 3), (6, 6)]),
    (1.0, "does anna like the red ball",
     "anna SUBJ ball red OBJ like Q",
     [(0, 6), (1, 0), (1, 1), (2, 5), (4, 3), (5, 2), (5, 4)]),
    (0.0, "the dog runs and the cat sleeps in the garden",
     "dog SUBJ runs and cat SUBJ sleeps in garden",
     [(1, 0), (1, 1), (2, 2), (3, 3), (5, 4), (5, 5), (6, 6), (7, 7), (9, 8)]),
    (1.0, "the dog runs and the cat sleeps in the garden",
     "dog SUBJ runs and cat SUBJ garden in sleeps",
     [(1, 0), (1, 1), (2, 2), (3, 3), (5, 4), (5, 5), (6, 8), (7, 7), (9, 6)]),
    # flipped adjectives follow the noun in mirror order; the relative clause is verb-final too
    (1.0, "a red big dog that gives an apple to ben quickly sleeps",
     "dog big red that apple OBJ ben to gives SUBJ quickly sleeps",
     [(1, 2), (2, 1), (3, 0), (3, 9), (4, 3), (5, 8), (7, 4), (7, 5), (8, 7), (9, 6), (10, 10),
      (11, 11)]),
]


@pytest.mark.parametrize("reorder, source, expected, alignment", HAND)
def test_hand_written_sentences(reorder, source, expected, alignment):
    tgt, links = GrammarTranslator(reorder=reorder).translate_with_alignment(source.split())
    assert tgt == gloss(reorder, expected)
    assert links == alignment


def test_only_flipping_words_reorder_at_intermediate_reorder():
    g = get_grammar(0.5)
    flip_adj = next(a for a in g.adjectives if g.flips(a))
    still_adj = next(a for a in g.adjectives if not g.flips(a))
    verbs = [next(v for v in g.verbs[1] if g.flips(v) == flips) for flips in (True, False)]
    tr = GrammarTranslator(reorder=0.5)
    for verb in verbs:
        src = f"the {flip_adj} {still_adj} cat {third_person(verb)} anna"
        if g.flips(verb):
            expected = f"{still_adj} cat {flip_adj} SUBJ anna OBJ {third_person(verb)}"
        else:
            expected = f"{still_adj} cat {flip_adj} SUBJ {third_person(verb)} anna OBJ"
        assert tr.translate(src.split()) == gloss(0.5, expected)


PREFIXES = [  # (reorder, prefix, expected glosses)
    (1.0, "the big", "big"),
    (1.0, "the big dog", "dog big SUBJ"),
    (1.0, "the big dog sees", "dog big SUBJ sees"),  # the verb goes to the clause end at once
    (1.0, "the big dog sees a small", "dog big SUBJ small sees"),  # no noun yet: no particle
    (0.0, "the big dog sees a small", "big dog SUBJ sees small"),
    (1.0, "my friend does", "my friend SUBJ"),  # "does" alone gives nothing
    (1.0, "my friend does not", "my friend SUBJ NEG"),
    (1.0, "the man that reads", "man that reads SUBJ"),
    (1.0, "the man that reads the letter", "man that letter OBJ reads SUBJ"),
    (1.0, "does", "Q"),
    (1.0, "the dog runs and", "dog SUBJ runs and"),
    (1.0, "the dog walks to the", "dog SUBJ to walks"),
    (0.0, "the dog walks to the", "dog SUBJ walks to"),
    (1.0, "the", ""),
]


@pytest.mark.parametrize("reorder, prefix, expected", PREFIXES)
def test_hand_written_prefixes(reorder, prefix, expected):
    assert GrammarTranslator(reorder=reorder).translate(prefix.split()) == gloss(reorder, expected)


def test_unknown_words_pass_through():
    tr = GrammarTranslator(reorder=1.0)
    # an unknown word where a noun is expected is taken as the noun (and gets its particle)
    expected = gloss(1.0, "dog SUBJ zorblax OBJ sees")
    assert tr.translate(["the", "dog", "sees", "the", "zorblax"]) == expected
    # elsewhere it stays in place; the flipping verb still ends the clause
    assert tr.translate(["the", "dog", "runs", "zorblax"]) == gloss(1.0, "dog SUBJ zorblax runs")
    assert tr.translate(["Zorb", "Blip"]) == ["Zorb", gloss(1.0, "SUBJ")[0], "Blip"]
    assert tr.translate(["The", "Dog", "runs"]) == gloss(1.0, "dog SUBJ runs")
    assert tr.translate([]) == []


@pytest.mark.parametrize("reorder", [0.0, 0.4, 1.0])
def test_translator_equals_gold_on_generated_corpus(reorder):
    tr = GrammarTranslator(reorder=reorder)
    for p in generate_corpus(3000, seed=11, reorder=reorder):
        tgt, links = tr.translate_with_alignment(p.src)
        assert (tuple(tgt), tuple(links)) == (p.tgt, p.alignment), p.source


def test_prefix_translations_only_use_words_read():
    tr = GrammarTranslator(reorder=0.6)
    corpus = generate_corpus(200, seed=5, reorder=0.6)
    for p in corpus:
        for k in range(len(p.src) + 1):
            tgt, links = tr.translate_with_alignment(p.src[:k])
            assert all(i < k and j < len(tgt) for i, j in links)
            assert {j for _, j in links} == set(range(len(tgt)))  # every output word has a source
    sources = [p.src for p in corpus[:20]]
    assert tr.translate_batch(sources) == [list(p.tgt) for p in corpus[:20]]


def test_never_fails_on_random_word_sequences():
    g = get_grammar(0.5)
    tr = GrammarTranslator(reorder=0.5)
    vocab = g.source_vocabulary + ["xyzzy", "The", "DOG", ""]
    rng = random.Random(0)
    for _ in range(3000):
        src = [rng.choice(vocab) for _ in range(rng.randint(0, 20))]
        tgt, links = tr.translate_with_alignment(src)
        assert all(0 <= i < len(src) and 0 <= j < len(tgt) for i, j in links)


def test_built_by_name():
    tr = build_translator("grammar", reorder=0.0, lexicon_seed=3)
    assert isinstance(tr, GrammarTranslator)
    assert tr.grammar.reorder == 0.0 and tr.grammar.lexicon_seed == 3

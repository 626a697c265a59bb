"""The synthetic language pair: determinism, lengths, gold alignments, the reorder knob,
splits and the ideal-wait oracle."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from simulpo.data.synthetic import (
    DET,
    VERB,
    generate_corpus,
    generate_splits,
    get_grammar,
    ideal_delays,
    third_person,
)
from simulpo.errors import ConfigError


def fingerprint(pairs) -> str:
    text = "\n".join(f"{p.id}\t{p.source}\t{p.target}\t{p.to_dict()['alignment']}" for p in pairs)
    return hashlib.sha256(text.encode()).hexdigest()


# Changes only when the grammar, lexicon or sampler changes on purpose (or when Python's
# random module changes, which the corpora must not silently follow): then update it.
FINGERPRINT = "9aeccd71e7b24b7bc021cab847c2747250e2f39010743a11013435a2f0bba2ab"


def test_same_seed_same_corpus_and_different_seed_different():
    a = generate_corpus(300, seed=7, reorder=0.5)
    assert a == generate_corpus(300, seed=7, reorder=0.5)
    assert generate_corpus(120, seed=7, reorder=0.5) == a[:120]  # prefix-stable
    b = generate_corpus(300, seed=8, reorder=0.5)
    assert sum(x.src != y.src for x, y in zip(a, b)) > 290


def test_fingerprint_is_stable_across_processes_and_hash_seeds():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_synthetic as t; "
        "from simulpo.data.synthetic import generate_corpus; "
        "print(t.fingerprint(generate_corpus(200, seed=0, reorder=0.5)))"
    )
    here = fingerprint(generate_corpus(200, seed=0, reorder=0.5))
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        cmd = [sys.executable, "-c", code, os.path.dirname(__file__)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == here
    assert here == FINGERPRINT


@pytest.mark.parametrize("min_len, max_len", [(4, 30), (2, 5), (12, 14)])
def test_lengths_cover_the_range(min_len, max_len):
    lengths = {len(p.src) for p in generate_corpus(1500, seed=1, min_len=min_len, max_len=max_len)}
    assert lengths == set(range(min_len, max_len + 1))


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError):
        generate_corpus(1, seed=0, min_len=1)
    with pytest.raises(ConfigError):
        generate_corpus(1, seed=0, min_len=9, max_len=8)
    with pytest.raises(ConfigError):
        get_grammar(1.5)


@pytest.mark.parametrize("reorder", [0.0, 0.5, 1.0])
def test_alignment_is_valid(reorder):
    g = get_grammar(reorder)
    for p in generate_corpus(1000, seed=2, reorder=reorder):
        assert list(p.alignment) == sorted(set(p.alignment)) and p.gold_alignment is p.alignment
        assert all(0 <= i < len(p.src) and 0 <= j < len(p.tgt) for i, j in p.alignment)
        aligned_src = {i for i, _ in p.alignment}
        for i, w in enumerate(p.src):
            # only the articles, which have no translation, stay unaligned
            assert (i in aligned_src) == (w not in ("the", "a", "an")), (p.source, w)
        assert {j for _, j in p.alignment} == set(range(len(p.tgt)))
        # a link joins a word to its translation, or a noun to its particle
        for i, j in p.alignment:
            e = g.entries[p.src[i]]
            assert p.tgt[j] == e.tgt or p.tgt[j] in g.particles.values()


def test_articles_agree_with_the_next_word():
    for p in generate_corpus(500, seed=3):
        for w, nxt in zip(p.src, p.src[1:]):
            if w in ("a", "an"):
                assert w == ("an" if nxt[0] in "aeiou" else "a")


def test_reorder_zero_is_monotone_except_particles():
    g = get_grammar(0.0)
    particles = set(g.particles.values())
    for p in generate_corpus(2000, seed=4, reorder=0.0):
        links = sorted((j, i) for i, j in p.alignment if p.tgt[j] not in particles)
        srcs = [i for _, i in links]
        assert srcs == sorted(srcs), p.source


def test_reorder_one_puts_every_verb_at_its_clause_end():
    g = get_grammar(1.0)
    verbs = {e.tgt for e in g.entries.values() if e.cat == VERB}
    # what may follow a clause-final verb: particles, the verb of an enclosing clause, a
    # conjunction, a postposition closing the PP around a relative clause
    may_follow = verbs | set(g.particles.values())
    may_follow |= {g.translate_word(w) for w in g.conjunctions + g.prepositions}
    n_single = 0
    for p in generate_corpus(2000, seed=5, reorder=1.0):
        for j, t in enumerate(p.tgt[:-1]):
            if t in verbs:
                assert p.tgt[j + 1] in may_follow, (p.source, p.target)
        single_clause = not any(g.entries[w].cat in ("conj", "that") for w in p.src)
        if single_clause:
            n_single += 1
            rest = [t for t in p.tgt if t not in (g.particles["neg"], g.particles["q"])]
            assert rest[-1] in verbs
    assert n_single > 100


def test_reorder_sets_are_nested_and_the_lexicon_fixed():
    grammars = [get_grammar(r) for r in (0.0, 0.3, 0.7, 1.0)]
    verbs = [w for w, e in grammars[0].entries.items() if e.cat == VERB]
    flipped = [{w for w in verbs if g.flips(w)} for g in grammars]
    assert flipped[0] == set() and flipped[-1] == set(verbs)
    assert flipped[0] <= flipped[1] <= flipped[2] <= flipped[3]
    n_lemmas = sum(len(v) for v in grammars[0].verbs)
    assert len(flipped[1]) == 2 * round(0.3 * n_lemmas)  # each lemma has two forms
    assert all(g.target_vocabulary == grammars[0].target_vocabulary for g in grammars)
    assert get_grammar(1.0, lexicon_seed=1).target_vocabulary != grammars[0].target_vocabulary


def test_vocabulary_sizes():
    g = get_grammar()
    assert 300 <= len(g.source_vocabulary) <= 600
    assert 250 <= len(g.target_vocabulary) <= 500
    assert not set(g.target_vocabulary) & (set(g.source_vocabulary) - set(g.names))
    assert {g.entries[w].cat for w in ("the", "a", "an")} == {DET}


def test_splits_have_no_duplicate_sources_and_keep_eval_sets_fixed():
    sizes = {"train": 2000, "dev": 300, "test": 300}
    splits = generate_splits(seed=0, sizes=sizes, min_len=4, max_len=5)
    assert {k: len(v) for k, v in splits.items()} == sizes
    sources = [p.src for ps in splits.values() for p in ps]
    assert len(set(sources)) == len(sources)
    assert splits["test"][0].id == "test-0" and splits["train"][-1].id == "train-1999"
    sizes["train"] = 100
    smaller = generate_splits(seed=0, sizes=sizes, min_len=4, max_len=5)
    assert smaller["test"] == splits["test"] and smaller["dev"] == splits["dev"]


def test_default_splits_are_fast_enough_and_disjoint():
    splits = generate_splits(seed=0)
    assert [len(v) for v in splits.values()] == [20000, 500, 500]
    seen = [{p.src for p in ps} for ps in splits.values()]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])


def test_splits_refuse_impossible_sizes():
    with pytest.raises(ConfigError):
        generate_splits(seed=0, sizes={"test": 5000}, min_len=2, max_len=2)


def test_ideal_delays_by_hand():
    # "the big dog sees a small cat" -> DOG BIG SUBJ CAT SMALL OBJ SEES (reorder 1)
    alignment = [(1, 1), (2, 0), (2, 2), (3, 6), (5, 4), (6, 3), (6, 5)]
    assert ideal_delays(alignment, 7) == [3, 3, 3, 7, 7, 7, 7]
    # monotone version: BIG DOG SUBJ SEES SMALL CAT OBJ
    monotone = [(1, 0), (2, 1), (2, 2), (3, 3), (5, 4), (6, 5), (6, 6)]
    assert ideal_delays(monotone, 7) == [2, 3, 3, 4, 6, 7, 7]
    # unaligned target words inherit their predecessor's value, and nothing is written at 0
    assert ideal_delays([(0, 1), (4, 2)], 4) == [1, 1, 5, 5]
    assert ideal_delays([], 0) == []


def test_pair_helpers():
    p = generate_corpus(1, seed=9)[0]
    assert p.ideal_delays() == ideal_delays(p.alignment, len(p.tgt))
    d = p.to_dict()
    assert d["source"].split() == list(p.src) and d["reference"].split() == list(p.tgt)
    assert [tuple(map(int, x.split("-"))) for x in d["alignment"].split()] == list(p.alignment)


def test_sub_language_uses_only_the_first_words_and_translates_as_the_full_pair():
    from simulpo.translators.grammar import GrammarTranslator

    full = get_grammar()
    n = 3
    allowed = set(full.adjectives[:n] + full.nouns[:n] + full.names[:n] + full.adverbs[:n])
    allowed |= set(full.prepositions[:n] + full.determiners[:n] + full.conjunctions[:n])
    allowed |= {w for group in full.verbs for base in group[:n] for w in (base, third_person(base))}
    allowed |= {"the", "a", "an", "that", "does", "not", "to"}  # "to": the recipient
    pairs = generate_splits(4, {"train": 300, "test": 50}, min_len=3, max_len=12, words_per_class=n)
    sentences = [p for split in pairs.values() for p in split]
    assert all(set(p.src) <= allowed for p in sentences)
    assert len({w for p in sentences for w in p.src}) > len(allowed) // 2  # not degenerate
    # the sub-language is a part of the full pair: the full grammar's translator agrees
    translated = GrammarTranslator().translate_batch([p.src for p in sentences])
    assert translated == [list(p.tgt) for p in sentences]
    assert get_grammar().sub_language(None) is full
    with pytest.raises(ConfigError, match="words_per_class"):
        full.sub_language(0)

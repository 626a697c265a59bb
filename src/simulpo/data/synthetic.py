"""A synthetic language pair with controlled word-order divergence and known gold alignments.

The source ("src") is a small English-like SVO language; the target ("tgt") is an invented
language whose words are pseudo-words built from syllables by a seeded random generator.
Every generated pair comes with its gold translation and gold word alignment, and the gold
translation is a deterministic function of the source, so the rule-based
:class:`simulpo.translators.grammar.GrammarTranslator` reproduces it exactly (and also
translates sentence prefixes).

Source grammar (a few hundred words)::

    sentence := clause (CONJ clause)*        |  "does" NP VP-base     (a yes/no question)
    clause   := NP VP
    VP       := ["does" "not"] [ADV] VERB [NP] PP*     (object iff the verb is transitive)
    NP       := DET ADJ{0..3} NOUN ["that" VP]  |  NAME
    PP       := PREP NP

A relative clause ("that" VP, subject-relative) sits on a subject NP or on the *last* NP
of a VP; nothing of the outer VP follows it, so a prepositional phrase always belongs to
the innermost open clause and every sentence has exactly one parse.

Target rules, applied to each clause (relative clauses included):

* **verb-final** — a "flipping" verb moves, with its adverb and negation particle, to
  the end of its clause (SOV); otherwise it stays in place (SVO).
* **adjective after the noun** — flipping adjectives follow the noun, in mirror order
  ("big red dog" → DOG RED BIG when both flip); the others stay before it.
* **postpositions** — a flipping preposition follows its noun phrase.
* Articles ``the``/``a``/``an`` have no translation (unaligned source words); other
  determiners, conjunctions and the relativizer ``that`` translate in place. A target
  noun phrase reads: determiner, non-flipping adjectives, noun, flipping adjectives,
  relative clause (``that``'s word first), case particle.
* **Case particles** (target words with no source counterpart): SUBJ after a subject NP
  and OBJ after an object NP (after its relative clause, if any), each aligned to the
  head noun; none on the NP of a PP. **NEG** right after the verb, aligned to both
  ``does`` and ``not``. **Q** at the end of a question clause, aligned to the question's
  ``does``. Names are copied unchanged.

**reorder** (in [0, 1]) picks which verbs, adjectives and prepositions flip: each class
is put in a random order fixed by ``lexicon_seed``, and its first ``round(reorder * n)``
members flip. So 0 gives a monotone pair (apart from the particles), 1 makes every clause
verb-final, every adjective post-nominal and every adposition a postposition, and values
in between make that fraction of each class (hence about that fraction of constituents)
reorder; the flipping sets grow with ``reorder``. Because flipping is a property of the
word, not a coin tossed per sentence, a translator that reads the source knows which rule
applies; a policy has to learn, word by word, when to wait.

Example (reorder 1; glosses in capitals)::

    the big dog does not see a small cat   →   DOG BIG SUBJ CAT SMALL OBJ SEE NEG

Sentences are sampled with a source length uniform in [min_len, max_len] (a random
one-clause skeleton, then random growth steps until the length is reached).

Alignments are lists of ``(src_idx, tgt_idx)`` pairs, 0-based, sorted; every target word
is aligned, every source word but the articles too. :func:`ideal_delays`
turns one into the oracle schedule: how many source words must be read before each target
word can be written.

Generation is deterministic: one ``random.Random(seed)`` stream (Mersenne Twister, the
same on every platform), no global RNG, no ``hash()``, no iteration over sets.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from simulpo.data.word_align import monotonize
from simulpo.errors import ConfigError

#: the default word-order divergence: every verb-final / adjective / adposition rule applies.
DEFAULT_REORDER = 1.0

# ---------------------------------------------------------------------------- lexicon


def _words(text: str) -> list[str]:
    return text.split()


_NOUNS = _words("""
dog cat bird horse cow fish mouse lion tiger bear wolf fox rabbit goat sheep duck frog snake
monkey owl man woman boy girl child baby king queen farmer doctor teacher student soldier
sailor baker painter singer driver writer judge nurse pilot cook thief friend neighbor
stranger guard merchant priest house tree river mountain hill lake road bridge garden forest
field city village school church market shop table chair bed door window box bag book
letter ball cup plate bottle knife key hat coat shoe ring coin stone flower apple bread cake
egg cheese song story picture map boat car train ship wall roof fire lamp clock basket rope
sword gift note park island tower castle kitchen room bench mirror
""")
_NAMES = _words("""
anna ben clara david emma frank grace henry iris jack kate leo maria nick olga paul rosa sam
tom vera
""")
_ADJECTIVES = _words("""
big small old young red blue green black white yellow happy sad tall short long new good bad
quiet loud dark bright warm cold hot wet dry heavy light strong weak rich poor brave kind
angry hungry tired busy famous strange beautiful ugly fast slow wild gentle clever empty full
round soft hard sweet
""")
_INTRANSITIVE = _words("""
run sleep sing dance swim walk laugh cry wait work play jump sit stand fall smile shout rest
travel arrive live fly hide listen pray cough talk wander dream climb
""")
_TRANSITIVE = _words("""
see like love hate find take hold watch carry want need eat build paint buy read write open
close break fix hear know visit follow help meet push pull catch kick wash forget remember
call choose keep leave lose miss
""")
_DITRANSITIVE = _words("give send show bring sell offer teach throw lend pass")
_PREPOSITIONS = _words("""
in on under near behind with without to from into over for at beside through across around
toward
""")
_ADVERBS = _words("""
quickly slowly often always rarely usually quietly happily suddenly soon already still
sometimes finally carefully gladly really also almost seldom
""")
_ARTICLES = ("the", "a", "an")  # no translation: the target has no articles
_DETERMINERS = _words("this every each my your his her our their some no one")
_CONJUNCTIONS = _words("and but so or while because although when until if")

# categories of source words
DET, ADJ, NOUN, NAME, VERB, PREP, ADV, CONJ, THAT, DOES, NOT = (
    "det", "adj", "noun", "name", "verb", "prep", "adv", "conj", "that", "does", "not"
)

_CONSONANTS = "ptkbdgmnszlrhvy"
_VOWELS = "aeiou"


def third_person(base: str) -> str:
    """The 3rd-person singular present of a regular English verb (``fix`` → ``fixes``)."""
    if base.endswith(("s", "sh", "ch", "x", "z", "o")):
        return base + "es"
    if base.endswith("y") and base[-2] not in _VOWELS:
        return base[:-1] + "ies"
    return base + "s"


class Entry(NamedTuple):
    """One source word form: its category, target word (None: untranslated), whether its
    reordering rule applies, and the verb valency (0 intransitive, 1 transitive, 2 ditransitive)."""

    cat: str
    tgt: str | None
    flip: bool
    valency: int = 0


class SyntheticGrammar:
    """The lexicon of one synthetic pair: source forms, target pseudo-words, flipping sets.

    The target words depend only on ``lexicon_seed``; ``reorder`` only decides which
    verbs, adjectives and prepositions flip (see the module docstring). Build it with
    :func:`get_grammar` to share one instance per setting.
    """

    def __init__(self, reorder: float = DEFAULT_REORDER, lexicon_seed: int = 0) -> None:
        if not 0.0 <= reorder <= 1.0:
            raise ConfigError(f"reorder must lie in [0, 1], got {reorder}")
        self.reorder = float(reorder)
        self.lexicon_seed = int(lexicon_seed)
        rng = random.Random(self.lexicon_seed)
        source_forms = set(_NOUNS + _NAMES + _ADJECTIVES + _PREPOSITIONS + _ADVERBS)
        source_forms.update(_DETERMINERS + _CONJUNCTIONS + list(_ARTICLES))
        source_forms.update(("that", "does", "not"))
        for base in _INTRANSITIVE + _TRANSITIVE + _DITRANSITIVE:
            source_forms.update((base, third_person(base)))
        taken = set(source_forms)

        def pseudo_word(min_syl: int, max_syl: int) -> str:
            while True:
                n = rng.randint(min_syl, max_syl)
                syllables = []
                for _ in range(n):
                    onset, vowel = rng.choice(_CONSONANTS), rng.choice(_VOWELS)
                    syllables.append(onset + vowel + ("n" if rng.random() < 0.12 else ""))
                word = "".join(syllables)
                if word not in taken:
                    taken.add(word)
                    return word

        def flipping(words: Sequence[str]) -> set[str]:
            order = list(words)
            rng.shuffle(order)
            return set(order[: round(self.reorder * len(order))])

        # particles first, so they stay the same whatever the word lists grow into
        self.particles = {p: pseudo_word(1, 1) for p in ("subj", "obj", "neg", "q")}
        verbs = _INTRANSITIVE + _TRANSITIVE + _DITRANSITIVE
        flip_verbs = flipping(verbs)
        flip_adjs = flipping(_ADJECTIVES)
        flip_preps = flipping(_PREPOSITIONS)
        entries: dict[str, Entry] = {}

        def add(form: str, entry: Entry) -> None:
            if form in entries:
                raise ValueError(f"synthetic lexicon: {form!r} is in two word classes")
            entries[form] = entry

        for w in _ARTICLES:
            add(w, Entry(DET, None, False))
        for w in _DETERMINERS:
            add(w, Entry(DET, pseudo_word(1, 2), False))
        for w in _CONJUNCTIONS:
            add(w, Entry(CONJ, pseudo_word(1, 2), False))
        for w in _PREPOSITIONS:
            add(w, Entry(PREP, pseudo_word(1, 2), w in flip_preps))
        add("that", Entry(THAT, pseudo_word(1, 1), False))
        add("does", Entry(DOES, None, False))
        add("not", Entry(NOT, self.particles["neg"], False))
        for w in _NOUNS:
            add(w, Entry(NOUN, pseudo_word(2, 3), False))
        for w in _NAMES:
            add(w, Entry(NAME, w, False))
        for w in _ADJECTIVES:
            add(w, Entry(ADJ, pseudo_word(2, 3), w in flip_adjs))
        for w in _ADVERBS:
            add(w, Entry(ADV, pseudo_word(3, 3), False))
        for valency, bases in enumerate((_INTRANSITIVE, _TRANSITIVE, _DITRANSITIVE)):
            for w in bases:
                entry = Entry(VERB, pseudo_word(2, 3), w in flip_verbs, valency)
                add(w, entry)
                add(third_person(w), entry)
        self.entries = entries
        # word lists the generator samples from (fixed order: determinism)
        self.nouns = tuple(_NOUNS)
        self.names = tuple(_NAMES)
        self.adjectives = tuple(_ADJECTIVES)
        self.verbs = (tuple(_INTRANSITIVE), tuple(_TRANSITIVE), tuple(_DITRANSITIVE))
        self.prepositions = tuple(_PREPOSITIONS)
        self.adverbs = tuple(_ADVERBS)
        self.determiners = tuple(_DETERMINERS)
        self.conjunctions = tuple(_CONJUNCTIONS)
        self.base_form = {third_person(w): w for group in self.verbs for w in group}

    def sub_language(self, words_per_class: int | None) -> SyntheticGrammar:
        """This grammar generating only the first ``words_per_class`` words of each word
        class (nouns, names, adjectives, verbs of each valency, ...): the same translations,
        a smaller vocabulary, for experiments that need an easier pair. None: this grammar."""
        if words_per_class is None:
            return self
        if words_per_class < 1:
            raise ConfigError(f"words_per_class must be >= 1, got {words_per_class}")
        n = words_per_class
        small = copy.copy(self)
        for name in ("nouns", "names", "adjectives", "prepositions", "adverbs"):
            setattr(small, name, getattr(self, name)[:n])
        small.determiners, small.conjunctions = self.determiners[:n], self.conjunctions[:n]
        small.verbs = tuple(group[:n] for group in self.verbs)
        return small

    def translate_word(self, word: str) -> str | None:
        """The target word of one source word (None for articles and ``does``); unknown
        words come back unchanged."""
        entry = self.entries.get(word)
        return word if entry is None else entry.tgt

    def flips(self, word: str) -> bool:
        """Whether this verb, adjective or preposition reorders (see the module docstring)."""
        entry = self.entries.get(word)
        return entry is not None and entry.flip

    @property
    def source_vocabulary(self) -> list[str]:
        """Every source word form, sorted."""
        return sorted(self.entries)

    @property
    def target_vocabulary(self) -> list[str]:
        """Every target word (translations and particles), sorted."""
        words = {e.tgt for e in self.entries.values() if e.tgt is not None}
        return sorted(words | set(self.particles.values()))

    def __repr__(self) -> str:
        return f"SyntheticGrammar(reorder={self.reorder}, lexicon_seed={self.lexicon_seed})"


@lru_cache(maxsize=32)
def get_grammar(reorder: float = DEFAULT_REORDER, lexicon_seed: int = 0) -> SyntheticGrammar:
    """The shared :class:`SyntheticGrammar` for one setting (built once, a few ms)."""
    return SyntheticGrammar(reorder, lexicon_seed)


# ------------------------------------------------------------------------ syntax tree
# The one tree both the generator (top-down) and the GrammarTranslator's parser
# (left to right, possibly a prefix) build; render_target() is the single definition of
# the target word order.

SUBJ, OBJ, POBJ = "subj", "obj", "pobj"


class Leaf:
    """A source word at position ``idx`` with its target word (None: untranslated)."""

    __slots__ = ("flip", "idx", "tgt", "word")

    def __init__(self, word: str, idx: int, tgt: str | None, flip: bool = False) -> None:
        self.word, self.idx, self.tgt, self.flip = word, idx, tgt, flip


class NP:
    """Noun phrase: determiner, adjectives, head noun (any may still be missing in a
    prefix) and an optional relative clause; ``role`` is subj, obj or pobj."""

    __slots__ = ("adjs", "det", "noun", "rel", "role")

    def __init__(self, role: str, det: Leaf | None = None, noun: Leaf | None = None) -> None:
        self.role, self.det, self.noun = role, det, noun
        self.adjs: list[Leaf] = []
        self.rel: Clause | None = None


class PP:
    """Adpositional phrase: the preposition and its noun phrase (None until it starts)."""

    __slots__ = ("np", "prep")

    def __init__(self, prep: Leaf, np: NP | None = None) -> None:
        self.prep, self.np = prep, np


class VerbGroup:
    """``does``/``not`` (``aux``), adverb and verb: the unit that moves to the clause end."""

    __slots__ = ("adv", "aux", "neg", "verb")

    def __init__(self, verb: Leaf | None = None) -> None:
        self.aux: list[Leaf] = []
        self.neg = False
        self.adv: Leaf | None = None
        self.verb = verb


class Stray:
    """A word that fits nowhere in the grammar: translated (or passed through) in place."""

    __slots__ = ("leaf",)

    def __init__(self, leaf: Leaf) -> None:
        self.leaf = leaf


class Clause:
    """A clause: its conjunction (or ``that`` for a relative clause), the question's
    ``does``, and its constituents (NP, PP, VerbGroup, Stray) in source order."""

    __slots__ = (
        "conj", "depth", "has_obj", "has_subj", "items", "question", "rel", "valency", "vg"
    )

    def __init__(self, conj: Leaf | None = None, rel: bool = False, depth: int = 0) -> None:
        self.conj = conj
        self.question: Leaf | None = None
        self.items: list[NP | PP | VerbGroup | Stray] = []
        self.rel = rel
        self.vg: VerbGroup | None = None
        self.valency = 0  # of the verb: 0 intransitive, 1 transitive, 2 ditransitive
        self.has_subj = False
        self.has_obj = False
        self.depth = depth


def render_target(
    clauses: Sequence[Clause], particles: dict[str, str]
) -> tuple[list[str], list[tuple[int, int]]]:
    """Target words and sorted ``(src_idx, tgt_idx)`` alignment of a (possibly partial) tree."""
    out: list[str] = []
    links: list[tuple[int, int]] = []
    subj, obj, neg, q = particles["subj"], particles["obj"], particles["neg"], particles["q"]

    def emit(word: str, *srcs: int) -> None:
        j = len(out)
        out.append(word)
        for i in srcs:
            links.append((i, j))

    def leaf(x: Leaf) -> None:
        if x.tgt is not None:
            emit(x.tgt, x.idx)

    def noun_phrase(np: NP) -> None:
        if np.det is not None:
            leaf(np.det)
        post = []
        for a in np.adjs:
            if a.flip:
                post.append(a)
            else:
                leaf(a)
        if np.noun is not None:
            leaf(np.noun)
        for a in reversed(post):
            leaf(a)
        if np.rel is not None:
            clause(np.rel)
        if np.noun is not None and np.role != POBJ:
            emit(subj if np.role == SUBJ else obj, np.noun.idx)

    def clause(c: Clause) -> None:
        if c.conj is not None:
            leaf(c.conj)
        items = c.items
        vg = c.vg
        if vg is not None and vg.verb is not None and vg.verb.flip and items[-1] is not vg:
            items = [x for x in items if x is not vg]
            items.append(vg)
        for x in items:
            if isinstance(x, NP):
                noun_phrase(x)
            elif isinstance(x, VerbGroup):
                if x.adv is not None:
                    leaf(x.adv)
                if x.verb is not None:
                    leaf(x.verb)
                if x.neg:
                    emit(neg, *(a.idx for a in x.aux))
            elif isinstance(x, PP):
                if not x.prep.flip:
                    leaf(x.prep)
                if x.np is not None:
                    noun_phrase(x.np)
                if x.prep.flip:
                    leaf(x.prep)
            else:
                leaf(x.leaf)
        if c.question is not None:
            emit(q, c.question.idx)

    for c in clauses:
        clause(c)
    links.sort()
    return out, links


def source_leaves(clauses: Sequence[Clause]) -> list[Leaf]:
    """The leaves of a tree in source order."""
    leaves: list[Leaf] = []

    def noun_phrase(np: NP) -> None:
        if np.det is not None:
            leaves.append(np.det)
        leaves.extend(np.adjs)
        if np.noun is not None:
            leaves.append(np.noun)
        if np.rel is not None:
            clause(np.rel)

    def clause(c: Clause) -> None:
        if c.conj is not None:
            leaves.append(c.conj)
        if c.question is not None:
            leaves.append(c.question)
        for x in c.items:
            if isinstance(x, NP):
                noun_phrase(x)
            elif isinstance(x, VerbGroup):
                leaves.extend(x.aux)
                if x.adv is not None:
                    leaves.append(x.adv)
                if x.verb is not None:
                    leaves.append(x.verb)
            elif isinstance(x, PP):
                leaves.append(x.prep)
                if x.np is not None:
                    noun_phrase(x.np)
            else:
                leaves.append(x.leaf)

    for c in clauses:
        clause(c)
    return leaves


# -------------------------------------------------------------------------- generator

_MAX_ADJS = 3  # adjectives per noun phrase
_MAX_PPS = 3  # prepositional phrases per clause
_MAX_DEPTH = 2  # nesting of relative clauses
# growth operations and their weights: (name, weight)
_OPS = (("adj", 3.0), ("adv", 1.0), ("neg", 0.7), ("pp", 2.0), ("rel", 1.2), ("coord", 1.2))


class _Generator:
    """Builds one sentence tree of an exact length: a random skeleton (one clause, maybe a
    question), then random growth steps (adjective, adverb, negation, PP, relative clause,
    coordinated clause) that keep the tree unambiguous, until the length is reached."""

    def __init__(self, grammar: SyntheticGrammar, rng: random.Random) -> None:
        self.g = grammar
        self.rng = rng
        self.reset()

    def reset(self) -> None:
        """Forget the sentence under construction and its growth sites."""
        self.top: list[Clause] = []  # the top-level clauses
        self.clauses: list[Clause] = []  # every clause (each ends in a VP that may grow)
        self.nps: list[NP] = []  # noun phrases with a determiner (may take adjectives)
        self.subjects: list[NP] = []  # subject NPs with a determiner (may take a relative)
        self.vgs: list[tuple[VerbGroup, Clause]] = []

    def leaf(self, word: str) -> Leaf:
        e = self.g.entries[word]
        return Leaf(word, -1, e.tgt, e.flip)

    def noun_phrase(self, role: str, name_ok: bool = True) -> NP:
        r = self.rng
        if name_ok and r.random() < 0.1:
            return NP(role, noun=self.leaf(r.choice(self.g.names)))
        x = r.random()
        det = "the" if x < 0.45 else "a" if x < 0.7 else r.choice(self.g.determiners)
        np = NP(role, det=self.leaf(det), noun=self.leaf(r.choice(self.g.nouns)))
        self.nps.append(np)
        return np

    def clause(self, kind: str, conj: str | None = None, depth: int = 0) -> Clause:
        """A fresh clause: ``decl`` (subject + VP), ``question`` or ``rel`` (VP only)."""
        r = self.rng
        c = Clause(self.leaf(conj) if conj else None, rel=kind == "rel", depth=depth)
        if kind == "question":
            c.question = self.leaf("does")
        if kind != "rel":
            subj = self.noun_phrase(SUBJ)
            c.items.append(subj)
            c.has_subj = True
            if subj.det is not None:
                self.subjects.append(subj)
        x = r.random()
        valency = 0 if x < 0.4 else 1 if x < 0.85 else 2
        base = r.choice(self.g.verbs[valency])
        vg = VerbGroup(self.leaf(base if kind == "question" else third_person(base)))
        c.items.append(vg)
        c.vg = vg
        c.valency = valency
        self.vgs.append((vg, c))
        if valency:
            c.items.append(self.noun_phrase(OBJ))
            c.has_obj = True
        self.clauses.append(c)
        return c

    @staticmethod
    def last_np(c: Clause) -> NP | None:
        """The NP that ends the clause's VP (the only place a relative clause may go)."""
        x = c.items[-1]
        if isinstance(x, PP):
            return x.np
        return x if isinstance(x, NP) else None

    @staticmethod
    def size(c: Clause) -> int:
        return len(source_leaves([c]))

    def grow(self, room: int) -> int:
        """Apply one random growth step adding at most ``room`` words; the words added."""
        r = self.rng
        ops = list(_OPS)
        while ops:
            total = sum(w for _, w in ops)
            x = r.random() * total
            k = 0
            while k < len(ops) - 1 and x >= ops[k][1]:
                x -= ops[k][1]
                k += 1
            name = ops.pop(k)[0]
            added = getattr(self, "_grow_" + name)(room)
            if added:
                return added
        return 0

    def _grow_adj(self, room: int) -> int:
        cands = [np for np in self.nps if len(np.adjs) < _MAX_ADJS]
        if room < 1 or not cands:
            return 0
        np = self.rng.choice(cands)
        used = [a.word for a in np.adjs]
        adj = self.rng.choice(self.g.adjectives)
        if adj in used:
            return 0
        np.adjs.append(self.leaf(adj))
        return 1

    def _grow_adv(self, room: int) -> int:
        cands = [vg for vg, _ in self.vgs if vg.adv is None]
        if room < 1 or not cands:
            return 0
        self.rng.choice(cands).adv = self.leaf(self.rng.choice(self.g.adverbs))
        return 1

    def _grow_neg(self, room: int) -> int:
        cands = [vg for vg, c in self.vgs if not vg.neg and c.question is None]
        if room < 2 or not cands:
            return 0
        vg = self.rng.choice(cands)
        vg.aux = [self.leaf("does"), self.leaf("not")]
        vg.neg = True
        vg.verb = self.leaf(self.g.base_form[vg.verb.word])
        return 2

    def _grow_pp(self, room: int) -> int:
        r = self.rng
        cands = []
        for c in self.clauses:
            last = self.last_np(c)
            n_pps = sum(isinstance(x, PP) for x in c.items)
            if (last is None or last.rel is None) and n_pps < _MAX_PPS:
                cands.append(c)
        if room < 2 or not cands:
            return 0
        c = r.choice(cands)
        valency = c.valency
        has_pp = any(isinstance(x, PP) for x in c.items)
        if valency == 2 and not has_pp and r.random() < 0.8:
            prep = "to"  # the recipient of give, send, ...
        else:
            prep = r.choice(self.g.prepositions)
        mark = len(self.nps)
        np = self.noun_phrase(POBJ)
        if 1 + (2 if np.det is not None else 1) > room:
            del self.nps[mark:]
            np = NP(POBJ, noun=self.leaf(r.choice(self.g.names)))
        c.items.append(PP(self.leaf(prep), np))
        return 1 + (2 if np.det is not None else 1)

    def _grow_rel(self, room: int) -> int:
        cands = [(np, 1) for np in self.subjects if np.rel is None]
        for c in self.clauses:
            last = self.last_np(c)
            if last is None or last.det is None or last.rel is not None:
                continue
            if c.depth < _MAX_DEPTH:
                cands.append((last, c.depth + 1))
        if room < 2 or not cands:
            return 0
        np, depth = self.rng.choice(cands)
        marks = (len(self.nps), len(self.vgs), len(self.clauses))
        rel = self.clause("rel", conj="that", depth=depth)
        added = self.size(rel)
        if added > room:
            self._undo(marks)
            return 0
        np.rel = rel
        return added

    def _grow_coord(self, room: int) -> int:
        if room < 3 or self.clauses[0].question is not None:
            return 0
        marks = (len(self.nps), len(self.vgs), len(self.clauses))
        c = self.clause("decl", conj=self.rng.choice(self.g.conjunctions))
        added = self.size(c)
        if added > room:
            self._undo(marks)
            return 0
        self.top.append(c)
        return added

    def _undo(self, marks: tuple[int, int, int]) -> None:
        del self.nps[marks[0]:]
        del self.vgs[marks[1]:]
        del self.clauses[marks[2]:]

    def sentence(self, length: int) -> list[Clause]:
        """A tree of exactly ``length`` source words (or the nearest the growth reached)."""
        best: list[Clause] | None = None
        best_gap = None
        for _ in range(20):
            self.reset()
            kind = "question" if self.rng.random() < 0.08 else "decl"
            self.top = [self.clause(kind)]
            n = self.size(self.top[0])
            while n < length:
                added = self.grow(length - n)
                if not added:
                    break
                n += added
            if n == length:
                return self.top
            gap = abs(length - n)
            if best_gap is None or gap < best_gap:
                best, best_gap = self.top, gap
        assert best is not None
        return best


# ---------------------------------------------------------------------------- corpora


@dataclass(frozen=True)
class SyntheticPair:
    """One generated sentence pair with its gold alignment (``(src_idx, tgt_idx)`` pairs)."""

    id: str
    src: tuple[str, ...]
    tgt: tuple[str, ...]
    alignment: tuple[tuple[int, int], ...]

    @property
    def gold_alignment(self) -> tuple[tuple[int, int], ...]:
        """The gold word alignment (the same as ``alignment``)."""
        return self.alignment

    @property
    def source(self) -> str:
        return " ".join(self.src)

    @property
    def target(self) -> str:
        return " ".join(self.tgt)

    def ideal_delays(self) -> list[int]:
        """The oracle schedule of this pair; see :func:`ideal_delays`."""
        return ideal_delays(self.alignment, len(self.tgt))

    def to_dict(self) -> dict:
        """A JSON-ready record: id, source, reference (texts) and alignment ("i-j" pairs)."""
        return {
            "id": self.id,
            "source": self.source,
            "reference": self.target,
            "alignment": " ".join(f"{i}-{j}" for i, j in self.alignment),
        }


#: the "ideal wait" oracle of an alignment (see :func:`simulpo.data.word_align.monotonize`): for
#: each target word, the source words to read before it can be written. One implementation,
#: shared with SFT data synthesis.
ideal_delays = monotonize


def _check_lengths(min_len: int, max_len: int) -> None:
    if not 2 <= min_len <= max_len:
        raise ConfigError(f"need 2 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")


def iter_pairs(
    seed: int,
    reorder: float = DEFAULT_REORDER,
    min_len: int = 4,
    max_len: int = 30,
    lexicon_seed: int = 0,
    id_prefix: str | None = None,
    words_per_class: int | None = None,
) -> Iterator[SyntheticPair]:
    """An endless, deterministic stream of pairs; the source length is uniform in
    [min_len, max_len]. Ids are ``{id_prefix}{i}`` (default prefix ``syn{seed}-``).
    ``words_per_class`` keeps the first words of each class only
    (:meth:`SyntheticGrammar.sub_language`)."""
    _check_lengths(min_len, max_len)
    grammar = get_grammar(reorder, lexicon_seed).sub_language(words_per_class)
    rng = random.Random(seed)
    gen = _Generator(grammar, rng)
    prefix = f"syn{seed}-" if id_prefix is None else id_prefix
    i = 0
    while True:
        clauses = gen.sentence(rng.randint(min_len, max_len))
        leaves = source_leaves(clauses)
        for k, x in enumerate(leaves):
            x.idx = k
            if x.word in ("a", "an"):  # the article agrees with the next word
                x.word = "an" if leaves[k + 1].word[0] in _VOWELS else "a"
        if not min_len <= len(leaves) <= max_len:
            continue  # growth could not reach the length: rare, skip
        tgt, links = render_target(clauses, grammar.particles)
        yield SyntheticPair(f"{prefix}{i}", tuple(x.word for x in leaves), tuple(tgt), tuple(links))
        i += 1


def generate_corpus(
    n: int,
    seed: int,
    reorder: float = DEFAULT_REORDER,
    min_len: int = 4,
    max_len: int = 30,
    lexicon_seed: int = 0,
) -> list[SyntheticPair]:
    """``n`` pairs, the same for the same arguments on every run and platform.

    ``seed`` drives the sentences; ``lexicon_seed`` the target words and which words flip;
    ``reorder`` the word-order divergence (module docstring). ``generate_corpus(m, s)`` is a
    prefix of ``generate_corpus(n, s)`` for m < n. Sources may repeat (short ones rarely
    do); :func:`generate_splits` removes repeats.
    """
    stream = iter_pairs(seed, reorder, min_len, max_len, lexicon_seed)
    return [next(stream) for _ in range(n)]


#: default split sizes of the embedded synthetic corpus.
DEFAULT_SPLITS = {"train": 20000, "dev": 500, "test": 500}


def generate_splits(
    seed: int,
    sizes: dict[str, int] | None = None,
    reorder: float = DEFAULT_REORDER,
    min_len: int = 4,
    max_len: int = 30,
    lexicon_seed: int = 0,
    words_per_class: int | None = None,
) -> dict[str, list[SyntheticPair]]:
    """Disjoint splits (default train/dev/test = 20000/500/500) with no source sentence
    twice, neither within a split nor across splits.

    Splits are filled in reverse order of ``sizes`` (test, then dev, then train), so the
    evaluation sets stay the same when the training set is made larger or smaller. Ids are
    ``{split}-{i}``.
    """
    sizes = dict(DEFAULT_SPLITS if sizes is None else sizes)
    stream = iter_pairs(seed, reorder, min_len, max_len, lexicon_seed, "", words_per_class)
    seen: set[tuple[str, ...]] = set()
    splits: dict[str, list[SyntheticPair]] = {}
    misses = 0
    for name in reversed(list(sizes)):
        pairs: list[SyntheticPair] = []
        while len(pairs) < sizes[name]:
            p = next(stream)
            if p.src in seen:
                misses += 1
                if misses > 1000 + sizes[name]:
                    raise ConfigError(
                        f"cannot find {sizes[name]} distinct sources of length "
                        f"{min_len}..{max_len} "
                        f"for split {name!r}; ask for fewer or allow longer sentences"
                    )
                continue
            seen.add(p.src)
            pairs.append(SyntheticPair(f"{name}-{len(pairs)}", p.src, p.tgt, p.alignment))
        splits[name] = pairs
    return {name: splits[name] for name in sizes}

"""The rule-based translator of the synthetic language pair (:mod:`simulpo.data.synthetic`).

It parses the source left to right with the pair's grammar into the same syntax tree the
generator builds, and renders it with the same target rules, so on every generated
sentence it returns exactly the gold translation (and gold alignment).

On a *prefix* it translates what has been read as if the sentence ended there: the
partial tree is rendered with the same rules. A flipping verb whose object has not
arrived still goes to the clause end (that is, the end of the output so far); a noun
phrase without its noun yet gives its determiner and adjectives, and no case particle
(the particle belongs to the noun); ``does`` alone gives nothing, ``does not`` the
negation particle; a question's ``does`` gives the question particle at once.

Robustness on any word sequence: parsing never fails. Words are looked up as given,
then lower-cased. A word outside the lexicon passes through unchanged; where a noun
phrase is waiting for its noun (or may start: subject, object, after a preposition)
it is taken as that noun and gets the case particle, elsewhere it stays in place. A
known word that fits nowhere is translated in place; a second verb in a full clause
starts a new clause, as if a conjunction were missing.
"""

from __future__ import annotations

from collections.abc import Sequence

from simulpo.data.synthetic import (
    ADJ,
    ADV,
    CONJ,
    DEFAULT_REORDER,
    DET,
    DOES,
    NAME,
    NOT,
    NOUN,
    NP,
    OBJ,
    POBJ,
    PP,
    PREP,
    SUBJ,
    THAT,
    VERB,
    Clause,
    Leaf,
    Stray,
    SyntheticGrammar,
    VerbGroup,
    get_grammar,
    render_target,
)
from simulpo.translators.base import Translator


class _Parser:
    """Deterministic left-to-right parser: a stack of open clauses (the innermost last);
    each word attaches to the innermost clause that can take it."""

    def __init__(self, grammar: SyntheticGrammar) -> None:
        self.entries = grammar.entries
        self.clauses: list[Clause] = [Clause()]
        self.stack: list[Clause] = [self.clauses[0]]

    def parse(self, words: Sequence[str]) -> list[Clause]:
        entries = self.entries
        for i, w in enumerate(words):
            e = entries.get(w)
            if e is None:
                e = entries.get(w.lower())
            if e is None:
                self.unknown(Leaf(w, i, w))
                continue
            leaf = Leaf(w, i, e.tgt, e.flip)
            cat = e.cat
            if cat in (DET, ADJ, NOUN, NAME):
                self.nominal(leaf, cat)
            elif cat == VERB:
                self.verb(leaf, e.valency)
            elif cat == PREP:
                self.stack[-1].items.append(PP(leaf))
            elif cat == ADV:
                self.adverb(leaf)
            elif cat == CONJ:
                self.conjunction(leaf)
            elif cat == THAT:
                self.relative(leaf)
            elif cat == DOES:
                self.does(leaf)
            elif cat == NOT:
                self.negation(leaf)
        return self.clauses

    # -- helpers

    def new_clause(self, conj: Leaf | None = None) -> Clause:
        c = Clause(conj)
        self.clauses.append(c)
        self.stack = [c]
        return c

    @staticmethod
    def open_np(c: Clause) -> NP | None:
        """The clause's noun phrase still waiting for its noun (starting the NP of a
        preposition that has none yet)."""
        if not c.items:
            return None
        x = c.items[-1]
        if isinstance(x, PP):
            if x.np is None:
                x.np = NP(POBJ)
            x = x.np
        if isinstance(x, NP) and x.noun is None:
            return x
        return None

    @staticmethod
    def start_np(c: Clause) -> NP | None:
        """A new subject or object NP, where the clause has room for one."""
        vg = c.vg
        if vg is None:
            if c.rel or c.has_subj:
                return None
            np = NP(SUBJ)
            c.has_subj = True
        elif vg.verb is not None and not c.has_obj and c.valency:
            np = NP(OBJ)
            c.has_obj = True
        else:
            return None
        c.items.append(np)
        return np

    def verb_group(self, c: Clause) -> VerbGroup:
        vg = VerbGroup()
        c.vg = vg
        c.items.append(vg)
        return vg

    def innermost_without_verb(self) -> Clause | None:
        """The innermost clause whose verb has not come yet, closing the relative clauses
        that are complete; None when even the main clause has its verb."""
        while True:
            c = self.stack[-1]
            if c.vg is None or c.vg.verb is None:
                return c
            if len(self.stack) == 1:
                return None
            self.stack.pop()

    # -- word classes

    def nominal(self, leaf: Leaf, cat: str) -> None:
        while True:
            c = self.stack[-1]
            np = self.open_np(c)
            if np is not None and (cat != DET or (np.det is None and not np.adjs)):
                break
            np = self.start_np(c)
            if np is not None:
                break
            if len(self.stack) > 1:
                self.stack.pop()
                continue
            np = self.start_np(self.new_clause())
            break
        if cat == DET:
            np.det = leaf
        elif cat == ADJ:
            np.adjs.append(leaf)
        else:
            np.noun = leaf

    def unknown(self, leaf: Leaf) -> None:
        c = self.stack[-1]
        np = self.open_np(c) or self.start_np(c)
        if np is None:
            c.items.append(Stray(leaf))
        else:
            np.noun = leaf

    def verb(self, leaf: Leaf, valency: int) -> None:
        c = self.innermost_without_verb() or self.new_clause()
        vg = c.vg or self.verb_group(c)
        vg.verb = leaf
        c.valency = valency

    def adverb(self, leaf: Leaf) -> None:
        c = self.innermost_without_verb()
        if c is None:
            self.stack[-1].items.append(Stray(leaf))
            return
        vg = c.vg or self.verb_group(c)
        if vg.adv is None:
            vg.adv = leaf
        else:
            c.items.append(Stray(leaf))

    def does(self, leaf: Leaf) -> None:
        c = self.stack[-1]
        if not c.rel and not c.items and c.question is None:
            c.question = leaf
            return
        c = self.innermost_without_verb()
        if c is None:
            self.new_clause().question = leaf
            return
        vg = c.vg or self.verb_group(c)
        if vg.aux or vg.adv is not None:
            c.items.append(Stray(leaf))
        else:
            vg.aux.append(leaf)

    def negation(self, leaf: Leaf) -> None:
        c = self.innermost_without_verb()
        if c is None:
            self.stack[-1].items.append(Stray(leaf))
            return
        vg = c.vg or self.verb_group(c)
        if vg.neg or vg.adv is not None:
            c.items.append(Stray(leaf))
        else:
            vg.aux.append(leaf)
            vg.neg = True

    def relative(self, leaf: Leaf) -> None:
        c = self.stack[-1]
        x = c.items[-1] if c.items else None
        if isinstance(x, PP):
            x = x.np
        if isinstance(x, NP) and x.noun is not None and x.rel is None:
            x.rel = Clause(leaf, rel=True)
            self.stack.append(x.rel)
        else:
            c.items.append(Stray(leaf))

    def conjunction(self, leaf: Leaf) -> None:
        top = self.clauses[-1]
        if not top.items and top.conj is None and top.question is None:
            top.conj = leaf
            self.stack = [top]
        else:
            self.new_clause(leaf)


def parse(words: Sequence[str], grammar: SyntheticGrammar) -> list[Clause]:
    """The syntax tree (top-level clauses) of any word sequence, sentence or prefix."""
    return _Parser(grammar).parse(words)


class GrammarTranslator(Translator):
    """Rule-based translator of the synthetic pair: the gold translation of every generated
    sentence, and a prefix translated as if the sentence ended there.

    ``reorder`` and ``lexicon_seed`` must be the ones the corpus was generated with.
    """

    def __init__(self, reorder: float = DEFAULT_REORDER, lexicon_seed: int = 0) -> None:
        self.grammar = get_grammar(reorder, lexicon_seed)

    def translate_with_alignment(
        self, source: Sequence[str]
    ) -> tuple[list[str], list[tuple[int, int]]]:
        """Target words and sorted ``(src_idx, tgt_idx)`` alignment of one source (or prefix)."""
        return render_target(parse(source, self.grammar), self.grammar.particles)

    def translate_batch(self, sources: Sequence[Sequence[str]]) -> list[list[str]]:
        return [self.translate_with_alignment(src)[0] for src in sources]

"""Word alignment: symmetrization and AER by hand, monotonization, eflomal on the synthetic
pair against its gold alignments, Pharaoh files and bad input."""

from __future__ import annotations

import pytest

from simulpo.data.synthetic import generate_corpus, get_grammar, ideal_delays
from simulpo.data.word_align import (
    CorpusError,
    align,
    alignment_error_rate,
    alignment_scores,
    monotonize,
    parse_alignment,
    read_alignments,
    symmetrize,
    write_alignments,
)
from simulpo.errors import InputError, SimulpoError

# ---------------------------------------------------------------------------- monotonize


def test_monotonize_by_hand():
    # "the big dog sees a small cat" -> DOG BIG SUBJ CAT SMALL OBJ SEES
    alignment = [(1, 1), (2, 0), (2, 2), (3, 6), (5, 4), (6, 3), (6, 5)]
    assert monotonize(alignment, 7) == [3, 3, 3, 7, 7, 7, 7]
    # a late word early in the target holds back every word after it
    assert monotonize([(4, 0), (0, 1), (1, 2)], 3) == [5, 5, 5]
    # unaligned target words inherit their predecessor's need; nothing is written at 0
    assert monotonize([(0, 1), (4, 2)], 4) == [1, 1, 5, 5]
    assert monotonize([], 3) == [1, 1, 1]
    assert monotonize([], 0) == []


def test_monotonize_is_the_synthetic_oracle():
    assert ideal_delays is monotonize
    p = generate_corpus(1, seed=3)[0]
    assert p.ideal_delays() == monotonize(p.alignment, len(p.tgt))


def test_monotonize_refuses_links_outside_the_target():
    with pytest.raises(CorpusError, match="outside"):
        monotonize([(0, 3)], 3)


# ---------------------------------------------------------------------------- symmetrization


def test_symmetrize_heuristics_by_hand():
    fwd = [(0, 0), (3, 3), (0, 2)]
    rev = [(0, 0)]
    assert symmetrize(fwd, rev, "intersection") == [(0, 0)]
    assert symmetrize(fwd, rev, "union") == [(0, 0), (0, 2), (3, 3)]
    # (0, 2) and (3, 3) are not next to (0, 0): nothing grows
    assert symmetrize(fwd, rev, "grow-diag") == [(0, 0)]
    # final-and: (3, 3) joins two unaligned words; (0, 2) does not (source 0 is aligned)
    assert symmetrize(fwd, rev, "grow-diag-final-and") == [(0, 0), (3, 3)]
    # final: one unaligned word is enough
    assert symmetrize(fwd, rev, "grow-diag-final") == [(0, 0), (0, 2), (3, 3)]


def test_grow_diag_adds_neighbours_only_for_unaligned_words():
    # the diagonal neighbour (1, 1) of (0, 0) joins two unaligned words: added
    assert symmetrize([(0, 0), (1, 1)], [(0, 0)], "grow-diag") == [(0, 0), (1, 1)]
    # (0, 1) neighbours the intersection, but both its words are aligned already
    fwd, rev = [(0, 0), (1, 1), (0, 1)], [(0, 0), (1, 1)]
    for method in ("grow-diag", "grow-diag-final", "grow-diag-final-and"):
        assert symmetrize(fwd, rev, method) == [(0, 0), (1, 1)]
    # growth goes on from the links it added: (1, 1), then (2, 2), then (3, 3)
    fwd, rev = [(0, 0), (1, 1), (2, 2), (3, 3)], [(0, 0)]
    assert symmetrize(fwd, rev, "grow-diag") == [(0, 0), (1, 1), (2, 2), (3, 3)]


def test_symmetrize_refuses_unknown_methods():
    with pytest.raises(SimulpoError, match="grow-diag-final-and"):
        symmetrize([], [], "diagonal")


# ---------------------------------------------------------------------------- AER


def test_aer_by_hand():
    gold = [[(0, 0), (1, 1)]]
    assert alignment_error_rate(gold, gold) == 0.0
    assert alignment_error_rate([[(0, 1), (1, 0)]], gold) == 1.0
    # A = {00, 11, 21}, S = {00, 12}, P = S + {21}: |A&S| = 1, |A&P| = 2, |A| = 3, |S| = 2
    a, s, possible = [[(0, 0), (1, 1), (2, 1)]], [[(0, 0), (1, 2)]], [[(2, 1)]]
    scores = alignment_scores(a, s, possible)
    assert scores.aer == pytest.approx(1 - 3 / 5)
    assert scores.precision == pytest.approx(2 / 3) and scores.recall == pytest.approx(1 / 2)
    # passing all of P (S included) is the same
    assert alignment_error_rate(a, s, [[(0, 0), (1, 2), (2, 1)]]) == pytest.approx(0.4)
    # sure links only: AER = 1 - 2|A&S| / (|A| + |S|)
    assert alignment_error_rate(a, s) == pytest.approx(1 - 2 / 5)


def test_aer_counts_over_the_corpus_not_per_sentence():
    predicted = [[(0, 0)], [(0, 0), (1, 1), (2, 2), (3, 3)]]
    gold = [[(0, 1)], [(0, 0), (1, 1), (2, 2), (3, 3)]]
    # 4 of 5 links right on both sides: 1 - 8/10, not the mean of 1.0 and 0.0
    assert alignment_error_rate(predicted, gold) == pytest.approx(0.2)
    assert alignment_scores([[]], [[]]).aer == 0.0
    empty = alignment_scores([[]], [[(0, 0)]])
    assert (empty.precision, empty.recall, empty.aer) == (1.0, 0.0, 1.0)


def test_aer_refuses_mismatched_counts():
    with pytest.raises(CorpusError, match="1 predicted alignments but 2 gold"):
        alignment_error_rate([[]], [[], []])
    with pytest.raises(CorpusError):
        alignment_error_rate([[]], [[]], possible=[[], []])


# ---------------------------------------------------------------------------- eflomal


@pytest.fixture(scope="module")
def synthetic_aligned():
    pairs = generate_corpus(2000, seed=11)
    predicted = align([list(p.src) for p in pairs], [list(p.tgt) for p in pairs])
    return pairs, predicted


def test_eflomal_aligns_the_synthetic_pair(synthetic_aligned):
    pairs, predicted = synthetic_aligned
    assert len(predicted) == len(pairs)
    for p, links in zip(pairs, predicted):
        assert links == sorted(set(links))
        assert all(0 <= i < len(p.src) and 0 <= j < len(p.tgt) for i, j in links)
    scores = alignment_scores(predicted, [p.alignment for p in pairs])
    # measured 0.149 (P 0.91, R 0.80) on 2,000 pairs; almost all of it is the particles
    assert scores.aer < 0.2
    assert scores.precision > 0.85 and scores.recall > 0.75


def test_eflomal_errors_are_the_particles_and_articles(synthetic_aligned):
    """Without the target particles (aligned to nouns in the gold, and in no way
    distinguishable from articles by co-occurrence) and the unaligned source articles,
    eflomal's links are nearly perfect."""
    pairs, predicted = synthetic_aligned
    particles = set(get_grammar().particles.values())
    articles = {"the", "a", "an"}

    def content(p, links):
        return [(i, j) for i, j in links if p.tgt[j] not in particles and p.src[i] not in articles]

    gold = [content(p, p.alignment) for p in pairs]
    assert alignment_error_rate([content(p, a) for p, a in zip(pairs, predicted)], gold) < 0.03
    # and the schedule it gives (monotonized) is rarely earlier than the gold one
    early = total = 0
    for p, links in zip(pairs, predicted):
        ours, best = monotonize(links, len(p.tgt)), p.ideal_delays()
        early += sum(x < y for x, y in zip(ours, best))
        total += len(best)
    assert early / total < 0.01


def test_align_refuses_bad_corpora():
    with pytest.raises(CorpusError, match="2 source sentences but 1 target"):
        align([["a"], ["b"]], [["x"]])
    with pytest.raises(CorpusError, match="target sentence 2 is empty"):
        align([["a"], ["b"]], [["x"], []])
    with pytest.raises(CorpusError, match="source sentence 1 is a string"):
        align(["a b"], [["x"]])
    with pytest.raises(CorpusError, match="whitespace"):
        align([["a b"]], [["x"]])
    with pytest.raises(SimulpoError, match="unknown symmetrization"):
        align([["a"]], [["x"]], method="best")


# ---------------------------------------------------------------------------- files


def test_pharaoh_files_round_trip(tmp_path):
    alignments = [[(0, 0), (2, 1)], [], [(1, 0)]]
    path = write_alignments(tmp_path / "a.txt", alignments)
    assert path.read_text() == "0-0 2-1\n\n1-0\n"
    assert read_alignments(path) == alignments
    assert parse_alignment(" 3-1  0-2 ") == [(0, 2), (3, 1)]


def test_pharaoh_reader_names_the_bad_line(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("0-0\n0-1 x-2\n")
    with pytest.raises(InputError, match=r"a\.txt:2: 'x-2' is not a link"):
        read_alignments(path)

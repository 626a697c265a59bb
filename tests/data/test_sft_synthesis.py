"""SFT data synthesis: grouping by chunk through the streaming loop, dialogues by hand, the
gold-alignment invariants on the synthetic pair, random merge, determinism, JSONL files
and bad input."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from simulpo.data.sft_synthesis import (
    AlignedReferencePolicy,
    group_by_chunk,
    offline_dialogues,
    read_jsonl,
    synthesize,
    synthesize_episodes,
    write_jsonl,
)
from simulpo.data.synthetic import generate_corpus
from simulpo.data.word_align import CorpusError, monotonize
from simulpo.errors import ConfigError, InputError
from simulpo.stream.dialogue import OFFLINE_SYSTEM_PROMPT, SYSTEM_PROMPT
from simulpo.stream.segmenter import Chunk, FixedWords
from simulpo.translators.grammar import GrammarTranslator

# "the big dog sees a small cat" -> DOG BIG SUBJ CAT SMALL OBJ SEES (verb-final, adjectives
# after the noun, case particles aligned to their nouns, articles unaligned)
SOURCE = ["the", "big", "dog", "sees", "a", "small", "cat"]
TARGET = ["DOG", "BIG", "SUBJ", "CAT", "SMALL", "OBJ", "SEES"]
LINKS = [(1, 1), (2, 0), (2, 2), (3, 6), (5, 4), (6, 3), (6, 5)]
NEEDS = [3, 3, 3, 7, 7, 7, 7]
# the monotone version: BIG DOG SUBJ SEES SMALL CAT OBJ
MONO_TARGET = ["BIG", "DOG", "SUBJ", "SEES", "SMALL", "CAT", "OBJ"]
MONO_LINKS = [(1, 0), (2, 1), (2, 2), (3, 3), (5, 4), (6, 5), (6, 6)]
MONO_NEEDS = [2, 3, 3, 4, 6, 7, 7]


@dataclass(frozen=True)
class Sizes:
    """A segmenter with chunk sizes given by hand (words)."""

    sizes: tuple[int, ...]
    source_unit: str = "word"

    def split(self, source):
        chunks, start = [], 0
        for size in self.sizes:
            chunks.append(Chunk(list(source[start : start + size]), float(start + size)))
            start += size
        assert start == len(source)
        return chunks

    def source_length(self, source):
        return float(len(source))


def test_needs_by_hand():
    assert monotonize(LINKS, 7) == NEEDS
    assert monotonize(MONO_LINKS, 7) == MONO_NEEDS


@pytest.mark.parametrize(
    "target, needs, sizes, pieces",
    [
        # one word a turn: the noun phrase once "dog" is read, the rest at the verb's object
        (TARGET, NEEDS, (1,) * 7, ["", "", "DOG BIG SUBJ", "", "", "", "CAT SMALL OBJ SEES"]),
        (TARGET, NEEDS, (2, 2, 2, 1), ["", "DOG BIG SUBJ", "", "CAT SMALL OBJ SEES"]),
        (TARGET, NEEDS, (7,), [" ".join(TARGET)]),
        (MONO_TARGET, MONO_NEEDS, (3, 3, 1), ["BIG DOG SUBJ", "SEES SMALL", "CAT OBJ"]),
        (MONO_TARGET, MONO_NEEDS, (1, 1, 2, 3), ["", "BIG", "DOG SUBJ SEES", "SMALL CAT OBJ"]),
    ],
)
def test_group_by_chunk_by_hand(target, needs, sizes, pieces):
    (ep,) = group_by_chunk([SOURCE], [target], [needs], Sizes(sizes), progress=False)
    assert ep.pieces == pieces
    assert [c.content for c in ep.chunks] == [
        SOURCE[sum(sizes[:k]) : sum(sizes[: k + 1])] for k in range(len(sizes))
    ]
    ends = [sum(sizes[: k + 1]) for k in range(len(sizes))]
    assert ep.delays == [min(e for e in ends if e >= n) for n in needs]
    assert ep.prediction == " ".join(target) and ep.reference == " ".join(target)


def test_policy_writes_what_is_left_at_the_last_chunk():
    # needs past the source end (a broken alignment) still end in a full translation
    (ep,) = group_by_chunk([["a", "b"]], [["X", "Y"]], [[1, 9]], FixedWords(1), progress=False)
    assert ep.pieces == ["X", "Y"] and ep.delays == [1, 2]


def test_policy_refuses_inconsistent_needs():
    with pytest.raises(CorpusError, match="must not decrease"):
        AlignedReferencePolicy([["X", "Y"]], [[2, 1]])
    with pytest.raises(CorpusError, match="2 target units but 1 needs"):
        AlignedReferencePolicy([["X", "Y"]], [[1]])
    with pytest.raises(CorpusError):
        AlignedReferencePolicy([["X"]], [])


def test_synthesized_dialogue_by_hand():
    (dialogue,) = synthesize(
        [" ".join(SOURCE)],
        [" ".join(TARGET)],
        alignments=[LINKS],
        c_min=2,
        c_max=2,
        progress=False,
    )
    assert dialogue == {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "the big"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "dog sees"},
            {"role": "assistant", "content": "DOG BIG SUBJ"},
            {"role": "user", "content": "a small"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "cat"},
            {"role": "assistant", "content": "CAT SMALL OBJ SEES"},
        ]
    }
    # word lists work as well as texts; chunk_words scales the merged chunks
    (same,) = synthesize(
        [SOURCE], [TARGET], alignments=[LINKS], c_min=1, c_max=1, chunk_words=2, progress=False
    )
    assert same == dialogue


def test_translator_targets_with_given_alignments(reverse):
    # a reversing translator: every target word needs the whole source read
    (ep,) = synthesize_episodes(
        [["a", "b", "c"]],
        translator=reverse,
        alignments=[[(0, 2), (1, 1), (2, 0)]],
        c_min=1,
        c_max=1,
        progress=False,
    )
    assert ep.pieces == ["", "", "C B A"] and ep.delays == [3, 3, 3]


def test_offline_dialogues(upper):
    assert offline_dialogues(["a b"], ["x y"]) == [
        {
            "messages": [
                {"role": "system", "content": OFFLINE_SYSTEM_PROMPT},
                {"role": "user", "content": "a b"},
                {"role": "assistant", "content": "x y"},
            ]
        }
    ]
    (d,) = offline_dialogues([["a", "b"]], translator=upper, progress=False)
    assert d["messages"][-1]["content"] == "A B"


def test_char_targets():
    (ep,) = synthesize_episodes(
        ["I bought books"],
        ["我买了书"],
        alignments=[[(0, 0), (1, 1), (1, 2), (2, 3)]],
        c_min=1,
        c_max=1,
        unit="char",
        progress=False,
    )
    assert ep.pieces == ["我", "买了", "书"] and ep.delays == [1, 2, 2, 3]


# ---------------------------------------------------------------------------- gold alignments


@pytest.fixture(scope="module")
def gold_pairs():
    return generate_corpus(400, seed=21)


@pytest.fixture(scope="module")
def gold_episodes(gold_pairs):
    return synthesize_episodes(
        [p.src for p in gold_pairs],
        [p.tgt for p in gold_pairs],
        alignments=[p.alignment for p in gold_pairs],
        seed=5,
        copies=2,
        progress=False,
    )


def test_every_dialogue_writes_the_reference_and_nothing_too_early(gold_pairs, gold_episodes):
    assert len(gold_episodes) == 2 * len(gold_pairs)
    for k, ep in enumerate(gold_episodes):
        p = gold_pairs[k // 2]
        assert " ".join(piece for piece in ep.pieces if piece) == p.target
        assert [w for c in ep.chunks for w in c.content] == list(p.src)
        # no target word is written before all of its aligned source words are read
        written = 0
        for chunk, piece in zip(ep.chunks, ep.pieces):
            new = range(written, written + len(piece.split()))
            assert all(i < chunk.end for i, j in p.alignment if j in new), (p.source, ep.pieces)
            written += len(new)
        # delays = the monotonized needs rounded up to the end of their chunk
        ends = [c.end for c in ep.chunks]
        assert ep.delays == [min(e for e in ends if e >= n) for n in p.ideal_delays()]


def test_dialogues_mirror_their_episodes(gold_pairs, gold_episodes):
    dialogues = synthesize(
        [p.src for p in gold_pairs],
        [p.tgt for p in gold_pairs],
        alignments=[p.alignment for p in gold_pairs],
        seed=5,
        copies=2,
        progress=False,
    )
    for d, ep in zip(dialogues, gold_episodes):
        messages = d["messages"]
        assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
        assert [m["role"] for m in messages[1:]] == ["user", "assistant"] * len(ep.chunks)
        assert [m["content"] for m in messages[1::2]] == [" ".join(c.content) for c in ep.chunks]
        assert [m["content"] for m in messages[2::2]] == ep.pieces


def test_random_merge_chunk_sizes(gold_episodes):
    sizes = [len(c.content) for ep in gold_episodes for c in ep.chunks[:-1]]
    last = [len(ep.chunks[-1].content) for ep in gold_episodes]
    assert min(sizes) >= 1 and max(sizes) <= 12 and max(last) <= 12
    assert set(sizes) == set(range(1, 13))  # every merge size occurs
    episodes = synthesize_episodes(
        [p.src for p in generate_corpus(100, seed=1)],
        [p.tgt for p in generate_corpus(100, seed=1)],
        alignments=[p.alignment for p in generate_corpus(100, seed=1)],
        c_min=2,
        c_max=3,
        chunk_words=2,
        progress=False,
    )
    inner = {len(c.content) for ep in episodes for c in ep.chunks[:-1]}
    assert inner == {4, 6}


def test_copies_segment_differently_and_seeds_are_deterministic(gold_pairs, gold_episodes):
    def cuts(eps):
        return [[c.end for c in ep.chunks] for ep in eps]

    first, second = cuts(gold_episodes[0::2]), cuts(gold_episodes[1::2])
    long = [k for k, p in enumerate(gold_pairs) if len(p.src) >= 15]
    assert sum(first[k] != second[k] for k in long) > 0.9 * len(long)
    args = ([p.src for p in gold_pairs], [p.tgt for p in gold_pairs])
    kw = {"alignments": [p.alignment for p in gold_pairs], "copies": 2, "progress": False}
    assert cuts(synthesize_episodes(*args, seed=5, **kw)) == cuts(gold_episodes)
    assert synthesize(*args, seed=5, **kw) == synthesize(*args, seed=5, **kw)
    other = cuts(synthesize_episodes(*args, seed=6, **kw))
    assert sum(a != b for a, b in zip(other, cuts(gold_episodes))) > 0.5 * len(other)


def test_end_to_end_with_a_translator_and_eflomal():
    """translate (the grammar) -> align (eflomal) -> monotonize -> group: the dialogues
    write the translation, and the schedules are close to the gold ones."""
    pairs = generate_corpus(500, seed=31)
    episodes = synthesize_episodes(
        [" ".join(p.src) for p in pairs], translator=GrammarTranslator(), progress=False
    )
    late = early = total = 0
    for p, ep in zip(pairs, episodes):
        assert ep.prediction == p.target
        ends = [c.end for c in ep.chunks]
        gold = [min(e for e in ends if e >= n) for n in p.ideal_delays()]
        early += sum(d < g for d, g in zip(ep.delays, gold))
        late += sum(d > g for d, g in zip(ep.delays, gold))
        total += len(gold)
    assert early / total < 0.02 and late / total < 0.1


# ---------------------------------------------------------------------------- files


def test_jsonl_round_trip(tmp_path):
    dialogues = synthesize([SOURCE], [TARGET], alignments=[LINKS], progress=False)
    dialogues += offline_dialogues(["ä b"], ["ü ß"])
    path = write_jsonl(tmp_path / "out" / "sft.jsonl", dialogues)
    assert read_jsonl(path) == dialogues
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") == 2 and "ü ß" in text  # UTF-8, not escaped
    assert not list(path.parent.glob(".*.tmp"))


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "malformed JSON"),
        (json.dumps({"text": "x"}), "missing the 'messages' field"),
        (json.dumps([1, 2]), "expected a JSON object"),
        (json.dumps({"messages": []}), "non-empty list"),
        (json.dumps({"messages": [{"role": "bot", "content": "x"}]}), "role 'bot'"),
        (json.dumps({"messages": [{"role": "user"}]}), "no string 'content'"),
    ],
)
def test_read_jsonl_names_the_bad_line(tmp_path, line, message):
    good = json.dumps({"messages": [{"role": "user", "content": "a"}]})
    path = tmp_path / "sft.jsonl"
    path.write_text(f"{good}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"sft\.jsonl:3: .*{message}"):
        read_jsonl(path)


def test_read_jsonl_refuses_an_empty_file(tmp_path):
    path = tmp_path / "sft.jsonl"
    path.write_text("\n")
    with pytest.raises(InputError, match="empty"):
        read_jsonl(path)


def test_write_jsonl_refuses_non_dialogues(tmp_path):
    with pytest.raises(CorpusError, match="dialogue 2"):
        write_jsonl(tmp_path / "x.jsonl", [{"messages": [{"role": "user", "content": ""}]}, {}])
    assert not (tmp_path / "x.jsonl").exists()


# ---------------------------------------------------------------------------- bad input


def test_bad_input_is_refused(upper):
    with pytest.raises(CorpusError, match="2 source sentences but 1 target"):
        synthesize(["a", "b"], ["x"], alignments=[[], []])
    with pytest.raises(CorpusError, match="source sentence 2 is empty"):
        synthesize(["a", "  "], ["x", "y"], alignments=[[], []])
    with pytest.raises(CorpusError, match="target sentence 1 is empty"):
        synthesize(["a"], [""], alignments=[[]])
    with pytest.raises(CorpusError, match="sentence 1: link 1-0 lies outside"):
        synthesize(["a"], ["x"], alignments=[[(1, 0)]])
    with pytest.raises(CorpusError, match="1 sources but 2 alignments"):
        synthesize(["a"], ["x"], alignments=[[], []])
    with pytest.raises(ConfigError, match="exactly one"):
        synthesize(["a"], ["x"], translator=upper)
    with pytest.raises(ConfigError, match="exactly one"):
        synthesize(["a"])
    with pytest.raises(ConfigError, match="copies"):
        synthesize(["a"], ["x"], copies=0)
    with pytest.raises(ConfigError, match="c_min"):
        synthesize(["a"], ["x"], c_min=5, c_max=2)
    with pytest.raises(ConfigError):
        synthesize(["a"], ["x"], unit="ms")


def test_synthesize_from_corpus_reads_build_output_and_names_bad_lines(tmp_path):
    from simulpo.data.sft_synthesis import synthesize_from_corpus

    good = tmp_path / "c.jsonl"
    good.write_text(
        '{"source": "a b", "reference": "B A", "alignment": "0-1 1-0"}\n'
        '{"source": "c", "target": "C", "alignment": "0-0"}\n',
        encoding="utf-8",
    )
    dialogues = synthesize_from_corpus(good, "gold", c_min=1, c_max=1)
    # "B" needs both source words (aligned to "b", word 2): nothing after "a", all after "b".
    assert [m["content"] for m in dialogues[0]["messages"][1:]] == ["a", "", "b", "B A"]
    assert [m["content"] for m in dialogues[1]["messages"][1:]] == ["c", "C"]
    offline = synthesize_from_corpus(good, offline=True)
    assert [m["content"] for m in offline[1]["messages"][1:]] == ["c", "C"]

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"source": "a", "reference": "A", "alignment": "0-0"}\n{"source": "a"}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:2: .*\"reference\""):
        synthesize_from_corpus(bad, "gold")
    bad.write_text('{"source": "a", "reference": "A", "alignment": "0:0"}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:1: the gold aligner needs"):
        synthesize_from_corpus(bad, "gold")
    bad.write_text("{nope\n")
    with pytest.raises(InputError, match=r"bad\.jsonl:1: malformed JSON"):
        synthesize_from_corpus(bad)
    with pytest.raises(ConfigError, match="unknown aligner"):
        synthesize_from_corpus(good, "fast_align")

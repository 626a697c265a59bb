"""The Bible corpus: cleaning and alignment units, then the real SWORD modules (skipped
when sword-text-web / sword-text-sparv are not installed)."""

from __future__ import annotations

import re

import pytest

from simulpo.data.bible import (
    DEV_BOOKS,
    TEST_BOOKS,
    VersePair,
    _Recaser,
    align_lengths,
    clean_osis,
    load_verse_pairs,
    split_by_book,
)
from simulpo.errors import SimulpoError


@pytest.mark.parametrize(
    ("osis", "text"),
    [
        # Strong's numbers and notes go; the space the module dropped at the note comes back
        (
            (
                '<w lemma="strong:H0430">God</w><note placement="foot"><reference '
                'type="annotateRef">1:1 </reference>The Hebrew word…</note><w lemma="strong:'
                'H1254">created</w>.'
            ),
            "God created.",
        ),
        ('<w lemma="strong:H2029">conceived</w>,<w lemma="strong:H0853">and</w>', "conceived, and"),
        ('“Allow it.”</q><w lemma="strong:G5119">Then</w>', "“Allow it.” Then"),
        # a note before punctuation leaves no space
        ('let him<note placement="foot">Hebrew: them</note> go', "let him go"),
        ('sold for two coins <q marker="">? Not one', "sold for two coins? Not one"),
        # RV1909: added words between tags are words; an added enclitic is part of its word
        (
            'hay allí</w><transChange type="added">también</transChange><w lemma="x">bdelio',
            "hay allí también bdelio",
        ),
        ('preguntándo<transChange type="added">le</transChange>, dijo', "preguntándole, dijo"),
        # canonical Psalm titles stay, speaker labels go
        (
            '<title canonical="true" type="psalm">A Psalm by David.</title> <l/>Yahweh, how',
            "A Psalm by David. Yahweh, how",
        ),
        ("<speaker>Beloved</speaker> <lg/> <l/>Let him kiss me", "Let him kiss me"),
        # nothing after the end of the book (the WEB's glossary after Rev 22:21)
        (
            (
                'Amen. <div canonical="true" eID="gen1" osisID="Rev" type="book"/> <div '
                'type="glossary"/> <title>World English Bible Glossary</title> Abba …'
            ),
            "Amen.",
        ),
    ],
)
def test_clean_osis(osis, text):
    assert clean_osis(osis) == text


def test_recaser_fixes_capital_chapter_openings_only():
    corpus = ["Y fueron todos", "que fueron allá", "y Jehová dijo", "dijo Jehová", "de siete"]
    recase = _Recaser(corpus)
    assert recase("EN el principio crió Dios") == "En el principio crió Dios"
    assert recase("Y FUERON acabados los cielos") == "Y fueron acabados los cielos"
    assert recase("Y JEHOVÁ dijo á Noé") == "Y Jehová dijo á Noé"
    assert recase("DE SIETE años era Joas") == "De siete años era Joas"
    assert recase("su hijo. ¡OH Jehová, cuánto") == "su hijo. ¡Oh Jehová, cuánto"
    inscription = "escrita: ESTE ES JESUS EL REY DE LOS JUDIOS."
    assert recase(inscription) == inscription


def test_align_lengths_follows_a_shift():
    english = [40, 120, 60, 200, 90, 150]
    assert align_lengths(english, [round(n * 0.96) for n in english]) == [(i, i) for i in range(6)]
    # the Spanish merges the first two verses: every later verse is one place earlier
    spanish = [round(n * 0.96) for n in [40 + 120, *english[2:]]]
    assert align_lengths(english, spanish) == [(i, i - 1) for i in range(2, 6)]


def test_split_by_book_rejects_a_book_in_dev_and_test():
    with pytest.raises(SimulpoError, match="Ruth"):
        split_by_book([], dev_books=("Ruth",), test_books=("Ruth", "Acts"))


def test_missing_modules_is_a_clear_error(tmp_path):
    (tmp_path / "mods.d").mkdir()
    with pytest.raises(SimulpoError, match="sword-text-web and sword-text-sparv"):
        load_verse_pairs(tmp_path)


# --- the real corpus ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus() -> tuple[list[VersePair], dict[str, int]]:
    stats: dict[str, int] = {}
    try:
        pairs = load_verse_pairs(stats=stats)
    except SimulpoError as exc:
        pytest.skip(f"SWORD Bible modules are not installed: {exc}")
    return pairs, stats


def test_pair_count_is_plausible(corpus):
    pairs, stats = corpus
    assert 29_000 < len(pairs) <= 31_102
    assert stats["kept"] == len(pairs)
    dropped = stats["empty"] + stats["unaligned"] + stats["renumbered"] + stats["length_ratio"]
    assert stats["references"] == len(pairs) + dropped
    assert len({p.id for p in pairs}) == len(pairs)


def test_known_verses(corpus):
    by_id = {p.id: p for p in corpus[0]}
    genesis = by_id["Gen.1.1"]
    assert (genesis.book, genesis.chapter, genesis.verse) == ("Gen", 1, 1)
    assert genesis.english == "In the beginning, God created the heavens and the earth."
    assert genesis.spanish == "En el principio crió Dios los cielos y la tierra."
    assert by_id["John.11.35"].english == "Jesus wept."
    assert by_id["John.11.35"].spanish == "Y lloró Jesús."


def test_text_is_clean(corpus):
    for pair in corpus[0]:
        for text in (pair.english, pair.spanish):
            assert text and text == text.strip() and "  " not in text, pair.id
            assert not re.search(r"[<>]|strong:|\b[HG]\d{4}\b", text), pair.id


def test_renumbered_chapters_are_left_out(corpus):
    # The RV1909 module numbers Numbers 13 and Jonah 2 one verse later than the WEB.
    chapters = {(p.book, p.chapter) for p in corpus[0]}
    assert ("Num", 13) not in chapters and ("Jonah", 2) not in chapters
    assert ("Num", 14) in chapters and ("Jonah", 3) in chapters


def test_splits_hold_disjoint_books(corpus):
    pairs = corpus[0]
    splits = split_by_book(pairs)
    books = {name: {p.book for p in split} for name, split in splits.items()}
    assert books["dev"] == set(DEV_BOOKS) and books["test"] == set(TEST_BOOKS)
    assert not books["train"] & (books["dev"] | books["test"])
    assert sum(len(split) for split in splits.values()) == len(pairs)
    assert len(splits["dev"]) > 300 and len(splits["test"]) > 1000

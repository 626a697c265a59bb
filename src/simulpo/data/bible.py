"""English→Spanish verse pairs from two public-domain Bibles, read from SWORD modules.

English: the World English Bible (module ``engWEB2015eb``, Debian ``sword-text-web``).
Spanish: the Reina-Valera 1909 (module ``spaRV1909eb``, Debian ``sword-text-sparv``).

Domain caveats: this is Bible text, not everyday language — an archaic register, long
verses chained with "and"/"y", many proper names spelled differently in each language
(Jehoshaphat / Josaphat, Yahweh / Jehová). The Spanish keeps the 1909 orthography:
accented one-letter words (``á``, ``é``, ``ó``), ``fué``, ``dió``, ``crió`` ("created"),
enclitic pronouns (``díjole``), ``vosotros`` forms. A modern MT system such as Apertium
scores low against these references even when its Spanish is good.

**Cleaning.** Each verse's OSIS markup is removed: Strong's numbers (they live in
``<w lemma=...>`` attributes), footnotes and cross references (``<note>``), the speaker
labels of the Song of Songs, and whatever follows a book's end (the WEB appends its
glossary to Revelation 22:21). Canonical Psalm titles are kept, since the RV1909 has them
as part of verse 1. Both modules drop the space next to some tags ("God</w><note>…</note>
<w>created", "him,<w>and"), so a space is restored where a tag separated two words;
punctuation stays attached as in normal text. The RV1909 prints the first word(s) of a
chapter in capitals (``EN el principio``, ``Y ACONTECIÓ``); they are re-cased, each word
taking the casing it has elsewhere in the Spanish text.

**Alignment.** Verse numbers are not a reliable key: the RV1909 module follows the Spanish
(Hebrew-like) numbering in some chapters although it declares the KJV scheme — its
Numbers 13:1 is the English 12:16, its Job 39:1 the English 38:39, its Jonah 2:1 the
English 1:17 — and fills the gaps with empty or merged verses; the WEB (NRSVA scheme) has
its own few differences (3 John 1:15, Revelation 12:18, Romans 16:25-27 moved into 14).
So each book is aligned by verse length (Gale & Church 1993: 1-1, 1-0, 0-1, 2-1 and 1-2
matches, dynamic programming in a band of ±10 verses), and a pair is kept only where the
alignment matches a verse with the verse of the same reference. Checked against a second
alignment that compares Apertium translations of the English with the Spanish, the kept
pairs hold 3 doubtful ones (Acts 19:40, whose Spanish also holds 19:41, and two that are
right).

Of the 31,102 KJV references, these are dropped (counts for the Debian modules):

- ``empty`` (25): either side is empty after cleaning — a verse one module omits or has
  merged into a neighbour, e.g. Romans 16:25-27 in the WEB;
- ``unaligned`` (250): the alignment matches the verse with a neighbouring verse, with
  nothing, or with two verses (merged or split differently);
- ``renumbered`` (148): the verse lies in a chapter, in either language, where the
  alignment matches at least 3 verses across references (13 chapters, e.g. Numbers 13,
  Job 38-41, Jonah 2); verse lengths alone are not trusted to place every verse there;
- ``length_ratio`` (11): the Spanish/English character-length ratio lies outside
  [0.5, 2.0] — a verse partly merged with its neighbour.

That leaves 30,668 pairs: 29,048 train, 402 dev, 1,218 test with the default books.
Reading, cleaning and aligning everything takes about 3.5 s (1 s of it cleaning, 2 s
aligning); pysword would decompress a book's block again for every verse (≈90 s in all),
so the last blocks are cached.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from simulpo.errors import SimulpoError

log = logging.getLogger(__name__)

ENGLISH_MODULE = "engWEB2015eb"
SPANISH_MODULE = "spaRV1909eb"

#: Held-out books (OSIS names): plain narrative and exhortation of moderate verse length
#: (20-25 English words on average), none with a parallel account elsewhere in the Bible
#: (Mark, for example, would leak through Matthew and Luke; Chronicles through Kings).
#: dev (402 verses): Ruth (narrative), James, 1 Peter, Philippians (letters).
#: test (1,218 verses): Acts (narrative), Ecclesiastes (wisdom prose).
DEV_BOOKS: tuple[str, ...] = ("Ruth", "Jas", "1Pet", "Phil")
TEST_BOOKS: tuple[str, ...] = ("Acts", "Eccl")

MIN_LENGTH_RATIO = 0.5
MAX_LENGTH_RATIO = 2.0
#: A chapter with at least this many verses aligned across references is renumbered.
RENUMBERED_MIN_CROSSED = 3

_INSTALL_HINT = (
    "install Debian packages sword-text-web and sword-text-sparv, or run scripts/setup.sh"
)


@dataclass(frozen=True)
class VersePair:
    """One verse in both languages; ``id`` is its OSIS reference, e.g. ``"Gen.1.1"``."""

    id: str
    book: str
    chapter: int
    verse: int
    english: str
    spanish: str


def default_sword_dirs() -> list[Path]:
    """Where SWORD libraries are looked for: ``$SWORD_PATH``, ``~/.sword``, Debian's place."""
    dirs = [Path(p) for p in os.environ.get("SWORD_PATH", "").split(os.pathsep) if p]
    return [*dirs, Path.home() / ".sword", Path("/usr/share/sword")]


def load_verse_pairs(
    sword_dir: str | Path | None = None, stats: dict[str, int] | None = None
) -> list[VersePair]:
    """All clean, aligned English→Spanish verse pairs, in canonical order.

    ``sword_dir`` is a SWORD library (the folder holding ``mods.d/``); by default the first
    of :func:`default_sword_dirs` that has both modules. When ``stats`` is given, it is
    filled with the number of references read, pairs kept and pairs dropped per reason.
    """
    english, spanish = _open_modules(sword_dir)
    en_books = {book.osis_name: book for book in _books(english)}
    counts: Counter[str] = Counter()
    raw: list[tuple[str, list[_Verse], list[_Verse]]] = []
    for es_book in _books(spanish):
        en_book = en_books.get(es_book.osis_name)
        es_verses = _verses(spanish, es_book)
        counts["references"] += len(es_verses)
        if en_book is None:
            counts["empty"] += len(es_verses)
            continue
        raw.append((es_book.osis_name, _verses(english, en_book), es_verses))

    spanish_texts = [v.text for _, _, es_verses in raw for v in es_verses if v.text]
    recase = _Recaser(spanish_texts)
    pairs: list[VersePair] = []
    for name, en_verses, es_verses in raw:
        en_verses = [v for v in en_verses if v.text]
        counts["empty"] += sum(1 for v in es_verses if not v.text)
        es_verses = [v for v in es_verses if v.text]
        en_refs = {v.ref for v in en_verses}
        counts["empty"] += sum(1 for v in es_verses if v.ref not in en_refs)

        beads = align_lengths([len(v.text) for v in en_verses], [len(v.text) for v in es_verses])
        crossed: Counter[int] = Counter()  # chapter -> verses matched across references
        for i, j in beads:
            if en_verses[i].ref != es_verses[j].ref:
                crossed.update({en_verses[i].ref[0], es_verses[j].ref[0]})
        renumbered = {chapter for chapter, n in crossed.items() if n >= RENUMBERED_MIN_CROSSED}
        english_of = {es_verses[j].ref: en_verses[i] for i, j in beads}
        for es in es_verses:
            if es.ref not in en_refs:
                continue
            en = english_of.get(es.ref)
            if en is None or en.ref != es.ref:
                counts["unaligned"] += 1
            elif es.ref[0] in renumbered:
                counts["renumbered"] += 1
            elif not MIN_LENGTH_RATIO <= len(es.text) / len(en.text) <= MAX_LENGTH_RATIO:
                counts["length_ratio"] += 1
            else:
                chapter, number = es.ref
                ref = f"{name}.{chapter}.{number}"
                pairs.append(VersePair(ref, name, chapter, number, en.text, recase(es.text)))
    counts["kept"] = len(pairs)
    log.info(
        "Bible: kept %(kept)d verse pairs of %(references)d references (dropped: %(empty)d "
        "empty, %(unaligned)d unaligned, %(renumbered)d in renumbered chapters, "
        "%(length_ratio)d for their length ratio).",
        counts,
    )
    if stats is not None:
        stats.update(counts)
    return pairs


def split_by_book(
    pairs: Sequence[VersePair],
    dev_books: Sequence[str] = DEV_BOOKS,
    test_books: Sequence[str] = TEST_BOOKS,
) -> dict[str, list[VersePair]]:
    """``train``, ``dev`` and ``test`` splits; dev and test hold whole books unseen in train."""
    overlap = set(dev_books) & set(test_books)
    if overlap:
        raise SimulpoError(f"books in both dev and test: {', '.join(sorted(overlap))}")
    splits: dict[str, list[VersePair]] = {"train": [], "dev": [], "test": []}
    for pair in pairs:
        split = "test" if pair.book in test_books else "dev" if pair.book in dev_books else "train"
        splits[split].append(pair)
    return splits


# --- alignment ---------------------------------------------------------------------------

# Gale & Church's length model, fitted on this corpus: a Spanish verse has 0.96 characters
# per English character, with a variance of 2.0 per English character (robust fit on
# same-reference pairs). Matches other than 1-1 are rare in the Bible.
_CHARS_RATIO = 0.96
_VARIANCE = 2.0
_COST_1_1 = -math.log(0.98)
_COST_OTHER = -math.log(0.005)


def _length_cost(english: int, spanish: int) -> float:
    """-log P(lengths match): two-sided normal tail of the standardised length difference."""
    if english == 0 and spanish == 0:
        return 0.0
    mean = max((english + spanish / _CHARS_RATIO) / 2, 1.0)
    delta = abs(spanish - english * _CHARS_RATIO) / math.sqrt(mean * _VARIANCE)
    tail = math.erfc(delta / math.sqrt(2))
    return -math.log(tail) if tail > 1e-300 else 690.0


def align_lengths(
    english: Sequence[int], spanish: Sequence[int], band: int = 10
) -> list[tuple[int, int]]:
    """Gale–Church alignment of two sequences of text lengths; returns the 1-1 matches.

    Only cells within ``band`` items of the diagonal are explored, which is plenty for
    verse sequences that drift apart by a few verses at most (5 in Job 40).
    """
    n, m = len(english), len(spanish)
    # cost[i][j]: cheapest alignment of english[:i] with spanish[:j], and its last match
    cost: list[dict[int, tuple[float, int, int]]] = [{0: (0.0, 0, 0)}]
    for i in range(n + 1):
        if i:
            cost.append({})
        here, up = cost[i], cost[i - 1] if i else {}
        up2 = cost[i - 2] if i > 1 else {}
        e1 = english[i - 1] if i else 0
        e2 = e1 + english[i - 2] if i > 1 else 0
        centre = i * m // n if n else 0
        for j in range(max(0, centre - band), min(m, centre + band) + 1):
            s1 = spanish[j - 1] if j else 0
            candidates = []
            if i and j and j - 1 in up:
                candidates.append((up[j - 1][0] + _COST_1_1 + _length_cost(e1, s1), 1, 1))
            if i and j in up:
                candidates.append((up[j][0] + _COST_OTHER + _length_cost(e1, 0), 1, 0))
            if j and j - 1 in here:
                candidates.append((here[j - 1][0] + _COST_OTHER + _length_cost(0, s1), 0, 1))
            if i > 1 and j and j - 1 in up2:
                candidates.append((up2[j - 1][0] + _COST_OTHER + _length_cost(e2, s1), 2, 1))
            if i and j > 1 and j - 2 in up:
                s2 = s1 + spanish[j - 2]
                candidates.append((up[j - 2][0] + _COST_OTHER + _length_cost(e1, s2), 1, 2))
            if candidates:
                here[j] = min(candidates)
    matches = []
    i, j = n, m
    while i or j:
        _, di, dj = cost[i][j]
        if di == dj == 1:
            matches.append((i - 1, j - 1))
        i, j = i - di, j - dj
    return matches[::-1]


# --- OSIS cleaning -----------------------------------------------------------------------

# Markup whose content is not verse text: notes (footnotes, cross references), the speaker
# labels of the Song of Songs, non-canonical titles. Canonical titles (Psalm
# superscriptions) are verse text and only lose their tags.
_DROP_CONTENT = re.compile(
    r"<note\b.*?</note>|<speaker\b.*?</speaker>"
    r"|<title\b(?![^>]*canonical=\"true\")[^>]*>.*?</title>",
    re.DOTALL,
)
_BOOK_END = re.compile(r"<div\b(?=[^>]*\beID=)(?=[^>]*type=\"book\")")
# Both modules drop the space next to some tags ("God</w><note>…</note><w>created",
# "him,<w>and", "allí</w><transChange>también"): a run of tags between a word (or closing
# punctuation) and a word (or opening punctuation) stood for a space. The exception is one
# lone <transChange> tag between two letters, which the RV1909 puts inside words for added
# enclitics ("preguntándo<transChange>le</transChange>").
# (Each pattern starts with a literal "<", which keeps these substitutions fast.)
_ENCLITIC_TAG = re.compile(r"<(?<=[^\W\d_]<)/?transChange\b[^>]*>(?=[^\W\d_])")
_WORD_GAP = re.compile(r"<(?<=[\w.,;:!?”’)\]]<)[^>]*>(?:<[^>]*>)*(?=[\w“‘(\[¿¡])")
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+(?=[,.;:!?])")


def clean_osis(text: str) -> str:
    """Plain verse text from one verse of OSIS markup, whitespace normalised."""
    end = _BOOK_END.search(text)
    if end:
        text = text[: end.start()]
    text = _DROP_CONTENT.sub("<>", text)
    text = _TAG.sub("", _WORD_GAP.sub(" ", _ENCLITIC_TAG.sub("", text)))
    return _SPACE_BEFORE_PUNCT.sub("", _SPACE.sub(" ", text)).strip()


_CAPS_WORD = re.compile(r"^\W*[^\W\d_]{2,}\W*$")


class _Recaser:
    """Re-cases the capitalised words that open an RV1909 chapter or section.

    A run of one or two all-capital words at the start of a verse or sentence (after an
    optional one-letter word such as "Y"), followed by a word in lower case, is typography:
    the run's words take the casing they most often have inside verses, and the first
    word of a sentence is capitalised ("Y ACONTECIÓ que" → "Y aconteció que", "DE SIETE
    años" → "De siete años", "¡OH Jehová" → "¡Oh Jehová"). Longer runs are inscriptions
    ("ESTE ES JESUS EL REY DE LOS JUDIOS") and stay as they are.
    """

    def __init__(self, texts: Sequence[str]) -> None:
        self.seen: Counter[str] = Counter(
            word.strip(".,;:!?¡¿()“”‘’") for text in texts for word in text.split()[1:]
        )

    def __call__(self, text: str) -> str:
        words = text.split(" ")
        starts = [0] + [i + 1 for i, w in enumerate(words[:-1]) if w.endswith((".", "!", "?"))]
        for start in starts:
            first = start + 1 if start + 1 < len(words) and len(words[start]) == 1 else start
            run = first
            while run < len(words) and run - first < 3 and self._is_caps(words[run]):
                run += 1
            if not 0 < run - first <= 2 or run >= len(words) or self._is_caps(words[run]):
                continue
            if not any(c.islower() for c in words[run]):
                continue
            for k in range(first, run):
                sentence_start = k == start or words[k - 1].endswith((".", "!", "?"))
                words[k] = self._recase(words[k], sentence_start)
        return " ".join(words)

    @staticmethod
    def _is_caps(word: str) -> bool:
        return bool(_CAPS_WORD.match(word)) and word.upper() == word

    def _recase(self, word: str, sentence_start: bool) -> str:
        lower = word.lower()
        core = lower.strip(".,;:!?¡¿()“”‘’")
        title = core[:1].upper() + core[1:]
        keep_lower = self.seen[core] > self.seen[title] and not sentence_start
        target = core if keep_lower else title
        return lower.replace(core, target, 1)


# --- reading SWORD modules ----------------------------------------------------------------


@dataclass(frozen=True)
class _Verse:
    ref: tuple[int, int]  # chapter, verse
    text: str


def _open_modules(sword_dir: str | Path | None):
    try:
        from pysword.modules import SwordModules
    except ImportError as exc:  # a dependency of simulpo: only a broken install gets here
        raise SimulpoError("the Bible corpus needs the Python package pysword") from exc
    candidates = [Path(sword_dir)] if sword_dir is not None else default_sword_dirs()
    for root in candidates:
        if not (root / "mods.d").is_dir():
            continue
        modules = SwordModules(str(root))
        found = modules.parse_modules()
        if ENGLISH_MODULE in found and SPANISH_MODULE in found:
            return _bible(modules, ENGLISH_MODULE), _bible(modules, SPANISH_MODULE)
    where = ", ".join(str(c) for c in candidates)
    raise SimulpoError(
        f"SWORD Bible modules {ENGLISH_MODULE} and {SPANISH_MODULE} not found in {where}: "
        f"{_INSTALL_HINT}"
    )


def _bible(modules, key: str):
    try:
        bible = modules.get_bible_from_module(key)
    except (OSError, ValueError, KeyError) as exc:
        raise SimulpoError(f"cannot read the SWORD module {key} ({exc}): {_INSTALL_HINT}") from exc
    # pysword decompresses a book's whole block again for every verse it returns (4 s for
    # Genesis alone); remembering the last blocks makes reading every verse take 0.3 s.
    if hasattr(bible, "_decompressed_text"):
        bible._decompressed_text = functools.lru_cache(maxsize=4)(bible._decompressed_text)
    return bible


def _books(bible) -> Iterator:
    for testament in ("ot", "nt"):
        yield from bible.get_structure().get_books().get(testament, [])


def _verses(bible, book) -> list[_Verse]:
    """Every verse of a book, cleaned, in order (empty text where the module has none)."""
    texts = bible.get_iter(books=book.osis_name, clean=False)
    return [
        _Verse((chapter, verse), clean_osis(next(texts)))
        for chapter, length in enumerate(book.chapter_lengths, 1)
        for verse in range(1, length + 1)
    ]

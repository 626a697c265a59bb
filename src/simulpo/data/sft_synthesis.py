"""SFT data for simultaneous translation: translate → align → monotonize → group by chunk.

The recipe of SeqPO-SiMT and HPO, for any parallel text:

1. **translate** — the reference, or any :class:`~simulpo.translators.base.Translator`
   (an offline model) when there is none;
2. **align** source and translation words with eflomal (:func:`simulpo.data.word_align.align`),
   or take given (gold) alignments;
3. **monotonize** — each target word needs the source words up to its last aligned one,
   made non-decreasing (:func:`monotonize`);
4. **group by chunk** — cut the source into chunks (runs of ``c`` words, ``c`` drawn from
   ``[c_min, c_max]`` for diversity, HPO's random merge) and give each target word to the
   first chunk after which the source words it needs have been read.

Step 4 is not a loop of its own: :class:`AlignedReferencePolicy` writes, after each chunk,
the target words whose needs are met, and the shared streaming loop
(:func:`~simulpo.stream.loop.run_stream`) runs it, so SFT dialogues come out of exactly
the code that evaluation and RL rollouts run. Each episode becomes one chat dialogue
(:func:`~simulpo.stream.dialogue.episode_messages`): a user turn per source chunk, an
assistant turn per piece, empty when the chunk alone allows nothing new to be written.
Dialogues are stored as JSONL, one ``{"messages": [...]}`` object a line, the chat
format Hugging Face trainers read.
"""

from __future__ import annotations

import itertools
import json
import logging
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from simulpo.data.word_align import (
    CorpusError,
    Link,
    align,
    check_parallel,
    check_sentences,
    monotonize,
    parse_alignment,
)
from simulpo.errors import ConfigError, InputError
from simulpo.io import atomic_write_text, read_lines
from simulpo.stream.dialogue import (
    OFFLINE_SYSTEM_PROMPT,
    SYSTEM_PROMPT,
    episode_messages,
    offline_messages,
)
from simulpo.stream.episode import Episode
from simulpo.stream.loop import StreamState, run_stream, source_words
from simulpo.stream.segmenter import FixedWords, RandomMerge, Segmenter
from simulpo.stream.units import check_unit, join_units, split_units
from simulpo.translators.base import Translator

__all__ = [
    "ROLES",
    "AlignedReferencePolicy",
    "InvalidDialogue",
    "check_dialogue",
    "group_by_chunk",
    "monotonize",
    "offline_dialogues",
    "read_jsonl",
    "synthesize",
    "synthesize_episodes",
    "write_jsonl",
]

log = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")

Text = str | Sequence[str]


# ---------------------------------------------------------------------------- the policy


@dataclass
class AlignedReferencePolicy:
    """The alignment oracle: writes each target unit as soon as the source units it needs
    have been read, and everything left at the last chunk.

    ``targets[k]`` and ``needs[k]`` (non-decreasing, from :func:`monotonize`) belong to
    the episode with index ``k`` in :func:`run_stream`. It never calls a model, so it is
    also the "ideal wait" upper bound when evaluated on gold alignments.
    """

    targets: Sequence[Sequence[str]]
    needs: Sequence[Sequence[int]]
    unit: str = "word"
    name: str = "aligned-reference"

    def __post_init__(self) -> None:
        check_unit(self.unit)
        if len(self.targets) != len(self.needs):
            raise CorpusError(f"{len(self.targets)} targets but {len(self.needs)} need lists")
        for k, (target, need) in enumerate(zip(self.targets, self.needs)):
            if len(target) != len(need):
                raise CorpusError(
                    f"sentence {k + 1}: {len(target)} target units but {len(need)} needs"
                )
            if any(b < a for a, b in itertools.pairwise(need)):
                raise CorpusError(f"sentence {k + 1}: needs must not decrease; use monotonize()")

    def act(self, states: Sequence[StreamState]) -> list[str]:
        pieces = []
        for state in states:
            k = state.episode.index
            target, need = self.targets[k], self.needs[k]
            written = len(state.target)
            if state.source_finished:
                ready = len(target)
            else:
                ready = bisect_right(need, self.words_read(state))
            pieces.append(join_units(target[written:ready], self.unit))
        return pieces

    def words_read(self, state: StreamState) -> int:
        """Source words read so far (text chunks hold words; speech overrides this)."""
        return len(source_words(state))


def group_by_chunk(
    sources: Sequence[Sequence[str]],
    targets: Sequence[Sequence[str]],
    needs: Sequence[Sequence[int]],
    segmenter: Segmenter,
    unit: str = "word",
    progress: bool = True,
) -> list[Episode]:
    """Run :class:`AlignedReferencePolicy` through the streaming loop: one episode per
    source, its pieces the target units grouped by the chunk that makes them writable."""
    policy = AlignedReferencePolicy(targets, needs, unit)
    references = [join_units(t, unit) for t in targets]
    return run_stream(
        sources, policy, segmenter, references, unit=unit, progress=progress, desc="group by chunk"
    )


# ---------------------------------------------------------------------------- synthesis


def _units(texts: Sequence[Text], unit: str) -> list[list[str]]:
    return [split_units(t, unit) if isinstance(t, str) else list(t) for t in texts]


def _translate(
    translator: Translator, sources: Sequence[Sequence[str]], batch_size: int, progress: bool
) -> list[list[str]]:
    out: list[list[str]] = []
    bar = tqdm(total=len(sources), desc="translate", unit="sent", disable=not progress)
    for start in range(0, len(sources), batch_size):
        batch = sources[start : start + batch_size]
        hyps = translator.translate_batch(batch)
        if len(hyps) != len(batch):
            raise CorpusError(
                f"the translator returned {len(hyps)} translations for {len(batch)} sources"
            )
        out += [list(h) for h in hyps]
        bar.update(len(batch))
    bar.close()
    return out


def _check_alignments(
    alignments: Sequence[Iterable[Link]],
    sources: Sequence[Sequence[str]],
    targets: Sequence[Sequence[str]],
) -> list[list[Link]]:
    if len(alignments) != len(sources):
        raise CorpusError(f"{len(sources)} sources but {len(alignments)} alignments")
    out = []
    for k, (links, src, tgt) in enumerate(zip(alignments, sources, targets)):
        links = [(int(i), int(j)) for i, j in links]
        for i, j in links:
            if not (0 <= i < len(src) and 0 <= j < len(tgt)):
                raise CorpusError(
                    f"sentence {k + 1}: link {i}-{j} lies outside its {len(src)} source and "
                    f"{len(tgt)} target units"
                )
        out.append(links)
    return out


def synthesize_episodes(
    sources: Sequence[Text],
    targets: Sequence[Text] | None = None,
    translator: Translator | None = None,
    alignments: Sequence[Iterable[Link]] | None = None,
    c_min: int = 1,
    c_max: int = 12,
    seed: int = 0,
    copies: int = 1,
    chunk_words: int = 1,
    unit: str = "word",
    method: str = "grow-diag-final-and",
    batch_size: int = 256,
    progress: bool = True,
) -> list[Episode]:
    """The episodes behind :func:`synthesize` (same arguments), ``copies`` per source.

    Episode ``k`` is copy ``k % copies`` of sentence ``k // copies``; its ``delays`` are
    the monotonized needs rounded up to the end of the chunk that meets them.
    """
    check_unit(unit)
    if copies < 1:
        raise ConfigError(f"copies must be at least 1, got {copies}")
    if (targets is None) == (translator is None):
        raise ConfigError("give exactly one of targets (references) or translator")
    segmenter = RandomMerge(FixedWords(chunk_words), c_min, c_max, seed)  # checks c_min, c_max
    src = _units(sources, "word")
    if targets is not None:
        tgt = _units(targets, unit)
        check_parallel(src, tgt)
    else:
        check_sentences(src, "source")  # before any (slow) translating
        assert translator is not None
        tgt = _translate(translator, src, batch_size, progress)
        check_parallel(src, tgt, target_name="translation")
    if alignments is None:
        links = align(src, tgt, method=method)
    else:
        links = _check_alignments(alignments, src, tgt)
    needs = [monotonize(a, len(t)) for a, t in zip(links, tgt)]
    repeat = [k for k in range(len(src)) for _ in range(copies)]
    episodes = group_by_chunk(
        [src[k] for k in repeat],
        [tgt[k] for k in repeat],
        [needs[k] for k in repeat],
        segmenter,
        unit,
        progress,
    )
    if episodes:
        turns = sum(len(ep.chunks) for ep in episodes)
        waits = sum(not p for ep in episodes for p in ep.pieces)
        log.info(
            "synthesized %d dialogues from %d sentences: %.1f turns each, %.0f%% of them waits",
            len(episodes),
            len(src),
            turns / len(episodes),
            100 * waits / turns,
        )
    return episodes


def synthesize(
    sources: Sequence[Text],
    targets: Sequence[Text] | None = None,
    translator: Translator | None = None,
    alignments: Sequence[Iterable[Link]] | None = None,
    c_min: int = 1,
    c_max: int = 12,
    seed: int = 0,
    copies: int = 1,
    chunk_words: int = 1,
    unit: str = "word",
    method: str = "grow-diag-final-and",
    system: str = SYSTEM_PROMPT,
    batch_size: int = 256,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Multi-turn SFT dialogues ``{"messages": [...]}``, ``copies`` per source sentence.

    - ``sources``: texts or word lists. ``targets``: reference texts or unit lists; or
      ``translator`` (``translate_batch`` in batches of ``batch_size``) when there are none.
    - ``alignments``: ``(src, tgt)`` links per sentence (gold ones, or from a saved
      run); computed with eflomal + ``method`` symmetrization when None.
    - The source is cut into chunks of ``c`` times ``chunk_words`` words, ``c`` drawn from
      ``[c_min, c_max]`` per chunk by a generator seeded with ``seed``; each copy of a
      sentence draws its own segmentation (copies of short sentences may coincide).
    - ``unit``: target units, ``"word"``, or ``"char"`` for Chinese/Japanese targets
      (aligned character by character).

    Deterministic for given alignments and ``seed``; eflomal itself is not (no seed).
    """
    episodes = synthesize_episodes(
        sources,
        targets,
        translator,
        alignments,
        c_min,
        c_max,
        seed,
        copies,
        chunk_words,
        unit,
        method,
        batch_size,
        progress,
    )
    return [
        {"messages": episode_messages([c.content for c in ep.chunks], ep.pieces, system)}
        for ep in episodes
    ]


def offline_dialogues(
    sources: Sequence[Text],
    targets: Sequence[Text] | None = None,
    translator: Translator | None = None,
    unit: str = "word",
    batch_size: int = 256,
    progress: bool = True,
    system: str = OFFLINE_SYSTEM_PROMPT,
) -> list[dict[str, Any]]:
    """Single-turn dialogues (whole source → whole translation) for the offline translator."""
    check_unit(unit)
    if (targets is None) == (translator is None):
        raise ConfigError("give exactly one of targets (references) or translator")
    src = _units(sources, "word")
    if targets is not None:
        tgt = _units(targets, unit)
        check_parallel(src, tgt)
    else:
        check_sentences(src, "source")
        assert translator is not None
        tgt = _translate(translator, src, batch_size, progress)
        check_parallel(src, tgt, target_name="translation")
    return [
        {"messages": offline_messages(" ".join(s), join_units(t, unit), system)}
        for s, t in zip(src, tgt)
    ]


# ---------------------------------------------------------------------------- files


class InvalidDialogue(ValueError):
    """One dialogue record is unusable; the message says why in one line."""


def check_dialogue(record: Any) -> None:
    """Raise :class:`InvalidDialogue` with a one-line reason unless ``record`` is a chat dialogue:
    an object whose ``messages`` is a non-empty list of ``{"role", "content"}`` objects,
    roles from :data:`ROLES`, contents strings."""
    if not isinstance(record, Mapping):
        raise InvalidDialogue(f"expected a JSON object, found {type(record).__name__}")
    if "messages" not in record:
        raise InvalidDialogue("missing the 'messages' field")
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        raise InvalidDialogue("'messages' must be a non-empty list")
    for n, m in enumerate(messages, start=1):
        if not isinstance(m, Mapping):
            raise InvalidDialogue(f"message {n} is not an object")
        if m.get("role") not in ROLES:
            raise InvalidDialogue(
                f"message {n} has role {m.get('role')!r}; use one of {', '.join(ROLES)}"
            )
        if not isinstance(m.get("content"), str):
            raise InvalidDialogue(f"message {n} has no string 'content'")


def write_jsonl(path: str | Path, dialogues: Iterable[Mapping[str, Any]]) -> Path:
    """Write dialogues one JSON object a line (UTF-8, not escaped), atomically."""
    lines = []
    for k, record in enumerate(dialogues):
        try:
            check_dialogue(record)
        except InvalidDialogue as err:
            raise CorpusError(f"dialogue {k + 1}: {err}") from None
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    return atomic_write_text(path, "".join(lines))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read and check a dialogue JSONL file; errors name the file and line. Blank lines
    are skipped; a file without any dialogue is an error."""
    records = []
    for number, text in enumerate(read_lines(path), start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(
                path, f"malformed JSON: {err.msg} (column {err.colno})", number
            ) from None
        try:
            check_dialogue(record)
        except InvalidDialogue as err:
            raise InputError(path, str(err), number) from None
        records.append(record)
    if not records:
        raise InputError(path, "the file is empty: there are no dialogues to read")
    return records


ALIGNERS = ("eflomal", "gold")


def synthesize_from_corpus(
    path: str | Path,
    aligner: str = "eflomal",
    offline: bool = False,
    context: str | Path | None = None,
    context_sentences: int = 0,
    **options: Any,
) -> list[dict[str, Any]]:
    """Dialogues from a parallel JSONL corpus (``source``, ``reference`` or ``target``, and
    for ``aligner="gold"`` an ``alignment`` of ``i-j`` links), as ``simulpo data build``
    writes it. ``offline=True`` gives single-turn dialogues; ``options`` go to :func:`synthesize`.

    ``context``: another such corpus (its first ``context_sentences``, 0 = all) that eflomal
    learns from with these sentences: statistical alignment of a few sentences alone is poor.
    """
    if aligner not in ALIGNERS:
        raise ConfigError(f"unknown aligner {aligner!r}; use {' or '.join(ALIGNERS)}")
    sources, targets, alignments = _read_pairs(path, aligner == "gold" and not offline)
    if offline:
        return offline_dialogues(sources, targets)
    if context is not None and aligner == "eflomal":
        more_sources, more_targets, _ = _read_pairs(context, False, context_sentences)
        unit = options.get("unit", "word")
        alignments = align(
            _units([*sources, *more_sources], "word"),
            _units([*targets, *more_targets], unit),
            method=options.get("method", "grow-diag-final-and"),
        )[: len(sources)]
    return synthesize(sources, targets, alignments=alignments or None, **options)


def _read_pairs(
    path: str | Path, gold: bool, limit: int = 0
) -> tuple[list[str], list[str], list[list[Link]]]:
    """Sources, references and (``gold``) alignments of a parallel JSONL corpus."""
    sources: list[str] = []
    targets: list[str] = []
    alignments: list[list[Link]] = []
    for number, line in enumerate(read_lines(path), start=1):
        if limit and len(sources) == limit:
            break
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(path, f"malformed JSON: {err.msg} (column {err.colno})", number) from None
        target = record.get("reference", record.get("target")) if isinstance(record, dict) else None
        if target is None or not isinstance(record.get("source"), str) or not isinstance(target, str):
            raise InputError(path, 'each line needs text "source" and "reference" (or "target")', number)
        if gold:
            try:
                alignments.append(parse_alignment(record["alignment"]))
            except (KeyError, AttributeError, ValueError) as err:
                raise InputError(
                    path, f'the gold aligner needs "alignment" links "i-j" ({err})', number
                ) from None
        sources.append(record["source"])
        targets.append(target)
    if not sources:
        raise InputError(path, "the file holds no sentence pairs")
    return sources, targets, alignments

"""SFT data for the speech policy: the text recipe, with chunks in ms and words timed by audio.

Stage 2 (dialogues), as in HPO: align transcript and translation (gold links or eflomal),
monotonize (:func:`~simulpo.data.word_align.monotonize`: target word ``j`` needs the first
``needs[j]`` source words), then group by chunk: the audio is cut into ``chunk_ms``
chunks merged in runs of ``c`` ∈ ``[c_min, c_max]`` (:class:`RandomMerge`), and each target
word goes to the first chunk after which the source words it needs have been *heard* —
a word is heard once its end (the next word's start, or the utterance's end) is at most
the chunk's end. As for text, the grouping is the alignment oracle run through the
streaming loop (:class:`HeardWordsPolicy`), so no second loop exists.

Records reference the audio instead of holding features::

    {"utterance": "train-7", "messages": [
        {"role": "system", "content": "..."},
        {"role": "user", "content": "", "speech": [0, 2240]},     # ms of the utterance
        {"role": "assistant", "content": "first words"}, ...]}

A trainer fills each user turn with the placeholders of that span's encoder frames
(:mod:`simulpo.train.speech_sft`, whose stage 1 aligns the projector on word timings).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulpo.data.sft_synthesis import AlignedReferencePolicy
from simulpo.data.speech import SpeechUtterance
from simulpo.data.word_align import align, monotonize, parse_alignment
from simulpo.errors import ConfigError
from simulpo.models.speech_encoder import SAMPLE_RATE
from simulpo.stream.dialogue import SYSTEM_PROMPT, assistant_message, system_message
from simulpo.stream.episode import Episode
from simulpo.stream.loop import StreamState, run_stream
from simulpo.stream.segmenter import FixedMilliseconds, RandomMerge

#: utterances per streaming batch (their silent stand-in audio is built per batch)
_BATCH = 256


@dataclass
class HeardWordsPolicy(AlignedReferencePolicy):
    """The alignment oracle on speech: a source word counts as read once heard to its end.

    ``word_ends[k][i]`` is the end (ms) of source word ``i`` of episode ``k``.
    """

    word_ends: Sequence[Sequence[float]] = ()
    name: str = "heard-words"

    def words_read(self, state: StreamState) -> int:
        return bisect_right(self.word_ends[state.episode.index], state.delay)


def word_ends(utterance: SpeechUtterance) -> list[float]:
    """Each source word's end (ms): the next word's start, the last one the utterance's end
    (a passage of several utterances records its own, :mod:`simulpo.data.passages`)."""
    if "word_ends" in utterance.extra:
        return [float(e) for e in utterance.extra["word_ends"]]
    starts = utterance.word_starts
    return [float(s) for s in starts[1:]] + [1000.0 * num_samples(utterance) / SAMPLE_RATE]


def num_samples(utterance: SpeechUtterance) -> int:
    """Samples of the utterance's audio, as :meth:`SpeechUtterance.audio` reads them."""
    start = round(utterance.offset * SAMPLE_RATE)
    return round((utterance.offset + utterance.duration) * SAMPLE_RATE) - start


def utterance_needs(
    utterances: Sequence[SpeechUtterance], aligner: str = "gold"
) -> list[list[int]]:
    """Monotonized needs per utterance from gold links (``alignment`` in the data) or eflomal."""
    src = [u.source.split() for u in utterances]
    tgt = [u.reference.split() for u in utterances]
    if aligner == "gold":
        try:
            links = [parse_alignment(u.extra["alignment"]) for u in utterances]
        except KeyError:
            raise ConfigError(
                "the gold aligner needs an 'alignment' field in every utterance; use eflomal"
            ) from None
    elif aligner == "eflomal":
        links = align(src, tgt)
    else:
        raise ConfigError(f"unknown aligner {aligner!r}; use gold or eflomal")
    return [monotonize(a, len(t)) for a, t in zip(links, tgt)]


def speech_episodes(
    utterances: Sequence[SpeechUtterance],
    aligner: str = "gold",
    chunk_ms: float = 1120.0,
    c_min: int = 1,
    c_max: int = 12,
    seed: int = 0,
    copies: int = 1,
    progress: bool = True,
) -> list[Episode]:
    """Episode ``k`` is copy ``k % copies`` of utterance ``k // copies``, its pieces the
    target words grouped by the (merged) chunk after which they can be written."""
    if copies < 1:
        raise ConfigError(f"copies must be at least 1, got {copies}")
    segmenter = RandomMerge(FixedMilliseconds(chunk_ms), c_min, c_max, seed)
    needs = utterance_needs(utterances, aligner)
    order = [k for k in range(len(utterances)) for _ in range(copies)]
    episodes: list[Episode] = []
    for start in range(0, len(order), _BATCH):
        batch = order[start : start + _BATCH]
        policy = HeardWordsPolicy(
            [utterances[k].reference.split() for k in batch],
            [needs[k] for k in batch],
            word_ends=[word_ends(utterances[k]) for k in batch],
        )
        # The oracle reads timings, not audio: silent stand-ins of the right length.
        silent = [np.zeros(num_samples(utterances[k]), np.uint8) for k in batch]
        refs = [utterances[k].reference for k in batch]
        for ep in run_stream(
            silent, policy, segmenter, refs, progress=progress, desc="group by chunk"
        ):
            ep.index += start
            ep.source = utterances[order[ep.index]].id
            ep.chunks = [type(c)(None, c.end) for c in ep.chunks]  # drop the stand-in audio
            episodes.append(ep)
    return episodes


def speech_records(
    utterances: Sequence[SpeechUtterance],
    aligner: str = "gold",
    chunk_ms: float = 1120.0,
    c_min: int = 1,
    c_max: int = 12,
    seed: int = 0,
    copies: int = 1,
    system: str = SYSTEM_PROMPT,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Stage-2 dialogue records (module docstring), ``copies`` segmentations per utterance."""
    episodes = speech_episodes(utterances, aligner, chunk_ms, c_min, c_max, seed, copies, progress)
    records = []
    for ep in episodes:
        messages = [system_message(system)]
        start = 0.0
        for chunk, piece in zip(ep.chunks, ep.pieces):
            messages += [speech_turn(start, chunk.end), assistant_message(piece)]
            start = chunk.end
        records.append({"utterance": ep.source, "messages": messages})
    return records


def speech_turn(start_ms: float, end_ms: float) -> dict[str, Any]:
    """A user turn standing for the audio ``[start_ms, end_ms)`` of the record's utterance."""
    return {"role": "user", "content": "", "speech": [start_ms, end_ms]}

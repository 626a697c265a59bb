"""Passages: consecutive utterances of one recording read as one longer utterance.

An unbounded stream is sentence after sentence with pauses between them; a policy trained
on single sentences never sees a second sentence follow the first in its dialogue (it
tends to stop, or to run on, at the boundary). A passage is a window of ``size``
consecutive utterances of a recording, with the pauses between them, as ONE
:class:`~simulpo.data.speech.SpeechUtterance`: sources and references joined, word
timings moved onto the passage's timeline, gold alignments shifted. Everything that takes
utterances — encoder features, speech SFT dialogues, RL items — takes passages unchanged.

A word's end is the next word's start (:func:`~simulpo.data.speech_sft_synthesis.word_ends`), but
the last word of each sentence ends where its utterance ends, not after the pause: the
passage records every word's end in ``extra["word_ends"]``.
"""

from __future__ import annotations

from collections.abc import Sequence

from simulpo.data.speech import SpeechUtterance
from simulpo.errors import ConfigError

__all__ = ["passages", "recording_windows"]


def passages(utterances: Sequence[SpeechUtterance], size: int) -> list[SpeechUtterance]:
    """Non-overlapping windows of ``size`` consecutive utterances of each recording (in
    time order; a recording's last window may be shorter), each as one utterance."""
    return [_join(window) for window in recording_windows(utterances, size)]


def recording_windows(
    utterances: Sequence[SpeechUtterance], size: int | None
) -> list[list[SpeechUtterance]]:
    """The utterances grouped by recording (first-seen order), each group in time order
    and cut into non-overlapping windows of ``size`` (a recording's last window may be
    shorter; None: one window per recording)."""
    if size is not None and size < 1:
        raise ConfigError(f"a passage holds at least one utterance, got size {size}")
    by_wav: dict = {}
    for u in utterances:
        by_wav.setdefault(u.wav, []).append(u)
    out = []
    for utts in by_wav.values():
        utts = sorted(utts, key=lambda u: u.offset)
        step = size or len(utts)
        out += [utts[i : i + step] for i in range(0, len(utts), step)]
    return out


def _join(utts: Sequence[SpeechUtterance]) -> SpeechUtterance:
    from simulpo.data.speech_sft_synthesis import word_ends

    first, last = utts[0], utts[-1]
    starts, ends, interpolated, links = [], [], [], []
    src_words = tgt_words = 0
    for u in utts:
        shift = 1000.0 * (u.offset - first.offset)  # ms from the passage's start
        starts += [round(s + shift) for s in u.word_starts]
        ends += [e + shift for e in word_ends(u)]
        interpolated += [i + src_words for i in u.interpolated]
        if "alignment" in u.extra:
            links += [
                f"{int(s) + src_words}-{int(t) + tgt_words}"
                for s, t in (link.split("-") for link in u.extra["alignment"].split())
            ]
        src_words += len(u.source.split())
        tgt_words += len(u.reference.split())
    extra = {"word_ends": ends, "utterances": [u.id for u in utts]}
    if all("alignment" in u.extra for u in utts):
        extra["alignment"] = " ".join(links)
    return SpeechUtterance(
        id="+".join(u.id for u in utts),
        source=" ".join(u.source for u in utts),
        reference=" ".join(u.reference for u in utts),
        wav=first.wav,
        offset=first.offset,
        duration=last.offset + last.duration - first.offset,
        voice="+".join(u.voice for u in utts),
        rate=first.rate,
        word_starts=starts,
        interpolated=interpolated,
        extra=extra,
    )

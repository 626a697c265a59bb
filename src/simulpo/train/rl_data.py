"""What the RL loop streams: text sentences, speech utterances, or whole recordings.

Each training item becomes one rollout group's input (:func:`stream_input`): the source
the segmenter cuts (words, or float32 16 kHz audio), its reference, and the reference
segments the reward scores it by (only for long form, else None):

- :class:`~simulpo.eval.testset.Sentence` — a text sentence (its words);
- :class:`~simulpo.data.speech.SpeechUtterance` — a spoken sentence (its audio, read from
  its recording when needed, so a large training set is not held in memory);
- :class:`Recording` — a long-form recording, ONE episode over the whole stream that the
  policy never sees the sentence boundaries of; HPO's reward re-aligns its output to the
  reference sentences (``segments``, ms on the recording's timeline).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from simulpo.data.audio import read_audio
from simulpo.data.passages import recording_windows
from simulpo.data.speech import SpeechUtterance
from simulpo.errors import ConfigError
from simulpo.eval.testset import Sentence
from simulpo.rewards.base import ReferenceSpan
from simulpo.stream.segmenter import samples_to_ms


@dataclass(frozen=True)
class Recording:
    """A long-form recording, or its span from ``offset`` for ``duration`` seconds (None:
    to the end), and its reference sentences (start/end in ms on the span's timeline)."""

    wav: Path
    segments: tuple[ReferenceSpan, ...]
    offset: float = 0.0
    duration: float | None = None

    @property
    def reference(self) -> str:
        return " ".join(s.reference for s in self.segments)

    def audio(self):
        return read_audio(self.wav, offset=self.offset, duration=self.duration)


def recordings(utterances: Sequence[SpeechUtterance], size: int | None = None) -> list[Recording]:
    """The recordings ``utterances`` come from (first-seen order), each with its utterances
    as reference segments (transcripts as their sources), sorted by time. With ``size``:
    passages instead, spans of ``size`` consecutive utterances with the pauses between
    them (a recording's last span may hold fewer), each a shorter stream of sentences."""
    from functools import cache

    import soundfile

    info = cache(lambda wav: soundfile.info(str(wav)))  # one header read per recording
    out = []
    for span in recording_windows(utterances, size):
        wav = span[0].wav
        rate = info(wav).samplerate
        if size is None:
            length_ms = samples_to_ms(info(wav).frames, rate)
            out.append(Recording(wav, _segments(span, 0.0, length_ms)))
            continue
        start, end = span[0].offset, span[-1].offset + span[-1].duration
        # the span's length as read_audio cuts it: whole samples from round(start * rate)
        frames = round(end * rate) - round(start * rate)
        segments = _segments(span, start, samples_to_ms(frames, rate))
        out.append(Recording(wav, segments, start, end - start))
    return out


def _segments(
    utts: Sequence[SpeechUtterance], offset: float, length_ms: float
) -> tuple[ReferenceSpan, ...]:
    """The utterances as reference segments in ms from ``offset`` (s); offsets and durations
    are rounded to microseconds in the files, so the last one is kept inside ``length_ms``."""
    return tuple(
        ReferenceSpan(
            (u.offset - offset) * 1000,
            min((u.offset + u.duration - offset) * 1000, length_ms),
            u.reference,
            u.source,
        )
        for u in utts
    )


class StreamInput(NamedTuple):
    source: Any  # list of words, or float32 16 kHz audio
    reference: str | None
    segments: tuple[ReferenceSpan, ...] | None  # long form: what the reward scores it by


def stream_input(item: Sentence | SpeechUtterance | Recording) -> StreamInput:
    """What one training item streams, and what its reward compares against."""
    if isinstance(item, Sentence):
        return StreamInput(item.source.split(), item.reference, None)
    if isinstance(item, SpeechUtterance):
        return StreamInput(item.audio(), item.reference, None)
    if isinstance(item, Recording):
        return StreamInput(item.audio(), item.reference, item.segments)
    raise ConfigError(
        f"cannot train on a {type(item).__name__}: give text Segments, SpeechUtterances or "
        "Recordings"
    )


def is_speech(item: Any) -> bool:
    return isinstance(item, (SpeechUtterance, Recording))


def fingerprint(items: Sequence[Any]) -> str:
    """A digest of the training items (a resumed run must see the same data), without
    reading any audio: recordings and utterances are named by file and span."""
    digest = hashlib.sha256()
    for item in items:
        if isinstance(item, SpeechUtterance):
            line = f"{item.wav.name}@{item.offset}+{item.duration}\t{item.reference}"
        elif isinstance(item, Recording):
            spans = ";".join(f"{s.start}-{s.end}:{s.reference}" for s in item.segments)
            line = f"{item.wav.name}@{item.offset}+{item.duration}\t{spans}"
        else:
            line = f"{item.source}\t{item.reference}"
        digest.update(f"{line}\n".encode())
    return digest.hexdigest()[:16]


__all__ = ["Recording", "StreamInput", "fingerprint", "is_speech", "recordings", "stream_input"]

"""One client's stream: what it sent, cut into the policy's chunks, and what it was sent back.

A :class:`Session` turns the client's input into the chunks the offline evaluation would
cut from the same source: audio (PCM s16le at the client's rate, resampled to 16 kHz) in
chunks of exactly ``ceil(chunk_ms * 16)`` samples, or text words in chunks of
``chunk_words``. A full chunk is handed to the policy only once something follows it (or
the stream ends), so the policy knows, as offline, whether it reads the last chunk: the
served output then equals the offline output of the same policy on the same source.

Replies follow simulstream's ``{"new", "deleted"}``; simulpo's policies never take a word
back, so ``deleted`` is always empty. Extra keys old clients ignore: ``tentative`` (the
latest hypothesis past the committed text, for re-translation policies such as local
agreement; shown greyed by the page), and ``audio_ms`` / ``compute_ms`` / ``latency_ms``
(the source read when the piece was written, the turn's share of the batch's compute, and
the time from the chunk being ready to the piece being sent: the delay the server adds).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soxr

from simulpo.errors import SimulpoError
from simulpo.stream.episode import Episode
from simulpo.stream.loop import StreamState
from simulpo.stream.segmenter import Chunk, samples_to_ms
from simulpo.stream.units import join_pieces, split_units

#: the rate policies read (simulstream's too); other client rates are resampled to it
SAMPLE_RATE = 16000


class ClientError(SimulpoError):
    """Bad input from a client: sent back as ``{"error": ...}`` before closing."""


@dataclass
class LiveState(StreamState):
    """A stream whose chunks arrive while it is read: the last chunk is known only when
    the client ends the stream (the engine sets ``last`` before the turn that reads it)."""

    last: bool = False

    @property
    def source_finished(self) -> bool:
        return self.last


@dataclass
class Pending:
    """A chunk ready for the policy, with the time it became ready (for the added latency)."""

    chunk: Chunk
    last: bool
    ready: float = field(default_factory=time.perf_counter)


class Session:
    """Input buffering, chunking and output bookkeeping of one stream (no I/O here).

    ``mode`` is ``"speech"`` (binary PCM) or ``"text"`` (words); ``chunk_ms`` and
    ``chunk_words`` are the policy's chunk sizes; ``unit`` the target unit;
    ``target_lang`` how pieces join (None: with spaces).
    """

    def __init__(
        self,
        sid: int,
        mode: str,
        chunk_ms: float = 1120.0,
        chunk_words: int = 1,
        unit: str = "word",
        target_lang: str | None = None,
    ) -> None:
        self.sid = sid
        self.mode = mode
        self.unit = unit
        self.target_lang = target_lang
        self.step = math.ceil(chunk_ms / 1000 * SAMPLE_RATE) if mode == "speech" else chunk_words
        self.state = LiveState(Episode(sid, None, [], 0.0, unit=unit))
        self.sample_rate = SAMPLE_RATE
        self._resampler: Any = None
        self._odd = b""  # a byte of a sample split across two frames
        self._buffer: list[Any] = []  # audio arrays or words not cut into chunks yet
        self._buffered = 0
        self._read = 0  # source units handed to chunks so far
        self.pending: deque[Pending] = deque()
        self.made = 0  # chunks handed to the engine
        self.ended = False
        self.named = False  # its metrics metadata line is written
        self.received = 0  # source units received (ms of audio at 16 kHz, or words)

    # ------------------------------------------------------------------ input

    def set_sample_rate(self, rate: Any) -> None:
        """The client's PCM rate (before any audio); other rates than 16 kHz are resampled."""
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate != int(rate):
            raise ClientError(f"sample_rate must be a whole number of Hz, got {rate!r}")
        rate = int(rate)
        if not 4000 <= rate <= 192000:
            raise ClientError(f"unsupported sample_rate {rate} Hz: use 4000 to 192000 (16000 best)")
        if self._buffered or self._read:
            raise ClientError("sample_rate must be set before the first audio frame")
        self.sample_rate = rate
        self._resampler = (
            None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, "float32")
        )

    def add_pcm(self, data: bytes) -> list[Pending]:
        """Append PCM s16le bytes; a sample split across frames is joined with the next frame."""
        data = self._odd + data
        cut = len(data) - len(data) % 2
        self._odd = data[cut:]
        audio = np.frombuffer(data[:cut], dtype="<i2").astype(np.float32) / 32768.0
        return self.add_audio(audio)

    def add_audio(self, audio: np.ndarray, last: bool = False) -> list[Pending]:
        """Append float samples at the client's rate; returns the chunks this made ready."""
        self._require("speech", "binary audio frames")
        if self._resampler is not None:
            audio = self._resampler.resample_chunk(np.asarray(audio, np.float32), last=last)
        if len(audio):
            self._buffer.append(np.asarray(audio, dtype=np.float32))
            self._buffered += len(audio)
        self.received = samples_to_ms(self._read + self._buffered, SAMPLE_RATE)
        return self._cut()

    def add_text(self, text: Any) -> list[Pending]:
        """Append source words (whitespace-separated; a frame ends between words)."""
        self._require("text", '{"text": ...} frames')
        if not isinstance(text, str):
            raise ClientError(f'"text" must be a string, got {type(text).__name__}')
        words = text.split()
        self._buffer.extend(words)
        self._buffered += len(words)
        self.received = self._read + self._buffered
        return self._cut()

    def end(self) -> list[Pending]:
        """The client ended the stream: the rest of the source is the last chunk."""
        if self.ended:
            raise ClientError("end_of_stream was already sent")
        if self.mode == "speech" and self._resampler is not None:
            self.add_audio(np.zeros(0, np.float32), last=True)
        self.ended = True
        if not self._buffered:  # no source at all: nothing to read, nothing written
            return []
        return [self._take(self._buffered, last=True)]

    def _require(self, mode: str, what: str) -> None:
        if self.ended:
            raise ClientError("the stream has ended (end_of_stream was sent)")
        if self.mode != mode:
            other = 'send its words as {"text": ...}' if self.mode == "text" else "send PCM"
            raise ClientError(f"{what} do not fit this server's {self.mode} policy; {other}")

    def _cut(self) -> list[Pending]:
        ready = []
        while self._buffered > self.step:  # a full chunk and something after it
            ready.append(self._take(self.step, last=False))
        return ready

    def _take(self, n: int, last: bool) -> Pending:
        if self.mode == "speech":
            audio = np.concatenate(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
            content, rest = audio[:n], audio[n:]
            self._buffer = [rest] if len(rest) else []
            end = samples_to_ms(self._read + n, SAMPLE_RATE)
        else:
            content, self._buffer = self._buffer[:n], self._buffer[n:]
            end = float(self._read + n)
        self._read += n
        self._buffered -= n
        item = Pending(Chunk(content, end), last)
        self.made += 1
        self.pending.append(item)
        return item

    def forget(self, lookback: int | None) -> None:
        """Let go of the source the policy will not read again, after a turn: the content
        of the chunk just read (the episode keeps its end) and all of the source read but
        the pieces holding its last ``lookback`` elements (None: the policy re-reads it
        all). An unbounded stream then holds a bounded tail of its audio, not all of it."""
        chunks = self.state.episode.chunks
        if lookback is None or not chunks:
            return
        # a copy: an empty view would keep the audio it views
        chunks[-1] = Chunk(chunks[-1].content[:0].copy(), chunks[-1].end)
        read, kept = self.state.source_read, 0
        for i in range(len(read) - 1, -1, -1):
            if kept >= lookback:
                del read[: i + 1]
                return
            kept += len(read[i])

    # ----------------------------------------------------------------- output

    def reply(self, piece: str, item: Pending, compute_ms: float) -> dict[str, Any]:
        """The message for one processed chunk (simulstream's keys first)."""
        return {
            "new": piece,
            "deleted": "",
            "tentative": tentative(self.state, self.target_lang),
            "audio_ms" if self.mode == "speech" else "words": item.chunk.end,
            "compute_ms": round(compute_ms, 3),
            "latency_ms": round((time.perf_counter() - item.ready) * 1000, 3),
        }

    def tokens(self, piece: str) -> list[str]:
        """The piece's target units: the metrics log's ``generated_tokens``."""
        return split_units(piece, self.unit)


def tentative(state: StreamState, target_lang: str | None) -> str:
    """The latest hypothesis past the written text, for policies that keep one (local
    agreement keeps ``history``; the cascade keeps it in its open sentence's memory)."""
    memory = state.memory
    sentence = memory.get("sentence")
    if sentence is not None:
        memory = sentence.memory
        written = len(sentence.target)
    else:
        written = len(state.target)
    history = memory.get("history")
    if not history:
        return ""
    return join_pieces(history[-1][written:], target_lang)

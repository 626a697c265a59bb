"""The speech front end of the LLM policy: a turn's audio chunk → encoder frames → user turn.

:class:`~simulpo.policies.llm.LLMPolicy` with a front end reads speech sources (float32
16 kHz arrays cut into ms chunks by the segmenter): each user turn holds as many
placeholder tokens as the projector makes embeddings of the new chunk, and the prefill
puts the projected frames in their place. Everything else — dialogue, KV cache,
decoding, RL records — is the text policy's.

Frames of the new chunk ``[a, b)`` come from the frozen encoder applied to the audio
the episode has read (``state.source_read``), in windows of ``spec.chunk_ms`` from ``a``,
each with up to ``spec.context_ms`` of the audio before it and never any after it. With
``precomputed=True`` the whole source is encoded once per episode with the same windows
(:meth:`~simulpo.models.speech_encoder.SpeechEncoder.encode_chunks`) and each turn takes
its rows: the same numbers (each row depends only on audio up to its window's end), but
the encoder runs once per source instead of once per turn and rollout — as HPO
pre-encodes features for RL. It needs every chunk to start at a multiple of
``spec.chunk_ms`` (``FixedMilliseconds(spec.chunk_ms)`` and its random merges); a chunk
that does not is encoded online.

A policy's batched turn asks for every row's frames at once (:meth:`SpeechFrontEnd.turns`):
the online rows' windows and the whole sources not cached yet go through one
:meth:`~simulpo.models.speech_encoder.SpeechEncoder.encode_streams` call, so the encoder
batches across the sessions (serving) or episodes (evaluation, RL rollouts) of a step.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch

from simulpo.errors import ConfigError
from simulpo.models.projector import SpeechProjector, speech_content
from simulpo.models.speech_encoder import SAMPLE_RATE, ChunkSpec, SpeechEncoder, chunk_rows
from simulpo.stream.loop import StreamState


class SpeechFrontEnd:
    """Frozen encoder + projector: the speech half of a speech-LLM policy."""

    def __init__(
        self,
        encoder: SpeechEncoder,
        projector: SpeechProjector,
        spec: ChunkSpec | None = None,
        precomputed: bool = False,
        cached_sources: int = 256,
    ) -> None:
        if encoder.dim != projector.config.input_dim:
            raise ConfigError(
                f"the encoder makes {encoder.dim}-dim frames but the projector takes "
                f"{projector.config.input_dim}"
            )
        self.encoder, self.projector, self.spec = encoder, projector, spec or ChunkSpec()
        self.precomputed = precomputed
        self._sources: OrderedDict[str, torch.Tensor] = OrderedDict()  # recent sources' frames
        self._cached_sources = cached_sources

    @property
    def lookback(self) -> int:
        """Samples before a chunk that its online encoding reads: the left context."""
        return self.spec.context_ms * SAMPLE_RATE // 1000

    def turns(self, states: Sequence[StreamState]) -> list[tuple[str, torch.Tensor]]:
        """Per state, its user turn's content (placeholders) and its new chunk's frames."""
        return [
            (speech_content(self.projector.num_embeddings(len(frames))), frames)
            for frames in self.chunk_frames(states)
        ]

    def chunk_frames(self, states: Sequence[StreamState]) -> list[torch.Tensor]:
        """Encoder frames ``[n, dim]`` of the chunk each state read at this turn, all rows'
        encoding in one batched encoder call."""
        grid = self.spec.chunk_ms * SAMPLE_RATE // 1000
        streams: list[tuple[np.ndarray, int]] = []  # what to encode: (audio, new chunk's start)
        misses: dict[str, int] = {}  # sources to encode whole → their index in ``streams``
        plans: list[tuple[str | int, float, float]] = []  # per state: source key or stream
        for state in states:
            chunks = state.episode.chunks
            start_ms = chunks[state.turn - 1].end if state.turn else 0.0
            end_ms = chunks[state.turn].end
            start = round(start_ms * SAMPLE_RATE / 1000)
            if self.precomputed and start % grid == 0:
                key = self._source_key(state)
                if key not in self._sources and key not in misses:
                    misses[key] = len(streams)
                    streams.append((state.episode.source, 0))
                plans.append((key, start_ms, end_ms))
            else:
                begin = max(0, start - self.lookback)
                audio = _tail(state.source_read, round(end_ms * SAMPLE_RATE / 1000) - begin)
                plans.append((len(streams), start_ms, end_ms))
                streams.append((audio, start - begin))
        encoded = self.encoder.encode_streams(streams, self.spec) if streams else []
        sources = {key: encoded[i] for key, i in misses.items()}
        for key, _, _ in plans:
            if isinstance(key, str) and key not in sources:
                sources[key] = self._sources[key]
        self._remember(sources)
        return [
            encoded[key] if isinstance(key, int) else chunk_rows(sources[key], start_ms, end_ms)
            for key, start_ms, end_ms in plans
        ]

    def _source_key(self, state: StreamState) -> str:
        key = state.memory.get("speech_key")
        if key is None:
            source = np.ascontiguousarray(state.episode.source, dtype=np.float32)
            key = state.memory["speech_key"] = hashlib.sha1(source.tobytes()).hexdigest()
        return key

    def _remember(self, sources: dict[str, torch.Tensor]) -> None:
        """Keep the step's sources' frames as the most recent, up to ``cached_sources``."""
        for key, frames in sources.items():
            self._sources[key] = frames
            self._sources.move_to_end(key)
        while len(self._sources) > self._cached_sources:
            self._sources.popitem(last=False)


def _tail(pieces: list[np.ndarray], n: int) -> np.ndarray:
    """The last ``n`` samples of the concatenated pieces (only the pieces needed are copied)."""
    taken, size = [], 0
    for piece in reversed(pieces):
        taken.append(piece)
        size += len(piece)
        if size >= n:
            break
    audio = np.concatenate(taken[::-1]) if len(taken) > 1 else np.asarray(taken[0])
    return audio[len(audio) - n :]

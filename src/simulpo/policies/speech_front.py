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
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

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

    def turn(self, state: StreamState) -> tuple[str, torch.Tensor]:
        """The user turn's content (placeholders) and the new chunk's encoder frames."""
        frames = self.chunk_frames(state)
        return speech_content(self.projector.num_embeddings(len(frames))), frames

    def chunk_frames(self, state: StreamState) -> torch.Tensor:
        """Encoder frames ``[n, dim]`` of the chunk read at this turn."""
        chunks = state.episode.chunks
        start_ms = chunks[state.turn - 1].end if state.turn else 0.0
        end_ms = chunks[state.turn].end
        start = round(start_ms * SAMPLE_RATE / 1000)
        if self.precomputed and start % (self.spec.chunk_ms * SAMPLE_RATE // 1000) == 0:
            return chunk_rows(self._source_frames(state), start_ms, end_ms)
        begin = max(0, start - self.lookback)
        audio = _tail(state.source_read, round(end_ms * SAMPLE_RATE / 1000) - begin)
        return self.encoder.encode_chunks(audio, self.spec, start - begin)

    def _source_frames(self, state: StreamState) -> torch.Tensor:
        key = state.memory.get("speech_key")
        if key is None:
            source = np.ascontiguousarray(state.episode.source, dtype=np.float32)
            key = state.memory["speech_key"] = hashlib.sha1(source.tobytes()).hexdigest()
        frames = self._sources.get(key)
        if frames is None:
            frames = self.encoder.encode_chunks(state.episode.source, self.spec)
            self._sources[key] = frames
            if len(self._sources) > self._cached_sources:
                self._sources.popitem(last=False)
        self._sources.move_to_end(key)
        return frames


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

"""A live speech session's memory does not grow with its audio.

Two minutes of audio stream through one session of the engine (a tiny speech LLM with a
bounded cache). After every turn the session's state (episode, policy record, cache
handle, source read) is weighed with :func:`~simulpo.stream.footprint.held_bytes`; its
growth per second of audio stays under a bound. The audio alone is 64,000 bytes per
second (16 kHz float32): kept whole, as before the session let go of it, the same
stream grows past that (the second test shows the bound would catch it).
"""

import threading

import numpy as np
import pytest
from tiny_lm import tiny_speech_parts

from simulpo.models.speech_encoder import ChunkSpec
from simulpo.policies.llm import LLMPolicy
from simulpo.policies.speech_front import SpeechFrontEnd
from simulpo.serve.engine import Engine
from simulpo.serve.session import Session
from simulpo.stream.footprint import held_bytes

pytestmark = pytest.mark.usefixtures("one_thread")
SPEC = ChunkSpec(chunk_ms=1120, context_ms=480)
SECONDS = 120
#: bytes a session may gain per second of audio (the dialogue's tokens, log-probs, pieces)
BOUND = 8_000


def weigh_a_stream() -> list[tuple[float, int]]:
    """(audio ms read, bytes the session holds) after each turn of a 2-minute stream."""
    lm, tokenizer, encoder, projector, _ = tiny_speech_parts()
    front = SpeechFrontEnd(encoder, projector, SPEC)
    policy = LLMPolicy(
        lm, tokenizer, max_piece_tokens=4, max_final_tokens=8, speech=front, cache_window=256,
        record_speech=False,
    )  # fmt: skip
    weights, done = [], threading.Event()

    def deliver(session, reply):
        if isinstance(reply, Exception):
            done.set()
            raise reply
        weights.append((reply["audio_ms"], held_bytes(session.state)))
        if session.state.last:
            done.set()

    engine = Engine(policy, deliver)
    session = Session(1, "speech", chunk_ms=SPEC.chunk_ms)
    engine.add(session)
    audio = np.random.default_rng(0).normal(0, 0.1, SECONDS * 16000).astype(np.float32)
    for start in range(0, len(audio), 8000):  # half a second a frame
        session.add_audio(audio[start : start + 8000])
        engine.wake()
    session.end()
    engine.wake()
    assert done.wait(120), "the stream did not finish"
    engine.close()
    return weights


def growth_per_second(weights: list[tuple[float, int]]) -> float:
    """Bytes gained per second of audio from turn 10 to the turn before the last (the last
    turn drops the cache and writes the rest)."""
    (ms0, b0), (ms1, b1) = weights[10], weights[-2]
    return (b1 - b0) / ((ms1 - ms0) / 1000)


def test_a_live_speech_session_holds_a_bounded_tail_of_its_audio():
    weights = weigh_a_stream()
    assert len(weights) == -(-SECONDS * 1000 // SPEC.chunk_ms)  # every turn replied
    assert 0 < growth_per_second(weights) < BOUND


def test_keeping_the_audio_would_break_the_bound(monkeypatch):
    monkeypatch.setattr(Session, "forget", lambda self, lookback: None)
    assert growth_per_second(weigh_a_stream()) > 64_000

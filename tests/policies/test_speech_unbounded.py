"""The speech LLM policy over an unbounded stream: ten minutes of audio in a bounded cache.

The policy is built as the CLI builds it (:func:`speech_llm_policy` on a saved tiny speech
model, online encoding) and reads one recording of 10 minutes (noise and tones, 16 kHz) in
1120 ms chunks: 536 turns, a dialogue of some 20,000 tokens. With ``cache_window`` the KV
cache never holds more than the window, its buffers never grow, no position reaches the
window, and a turn costs as much at minute 10 as at minute 1.
"""

import copy
import math
import time

import numpy as np
import pytest
from tiny_lm import tiny_speech_parts

from simulpo.errors import ConfigError, SimulpoError
from simulpo.models.lm import save_model
from simulpo.models.projector import SpeechLM
from simulpo.models.speech_encoder import ChunkSpec
from simulpo.policies.speech_llm import speech_llm_policy
from simulpo.stream.loop import run_stream
from simulpo.stream.segmenter import FixedMilliseconds

SR = 16000
SPEC = ChunkSpec(chunk_ms=1120, context_ms=480)
WINDOW = 256

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def saved(one_thread, tmp_path_factory):
    """A tiny speech model directory (LM + tokenizer + projector) and its encoder."""
    lm, tokenizer, encoder, projector, speech_id = tiny_speech_parts()
    path = tmp_path_factory.mktemp("speech") / "model"
    SpeechLM(lm, projector, speech_id).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, encoder


def recording(minutes: float, seed: int = 0) -> np.ndarray:
    """Noise with a tone of a new pitch every 2 s (something changes in every chunk)."""
    rng = np.random.default_rng(seed)
    n = round(minutes * 60 * SR)
    t = np.arange(n) / SR
    pitch = 200 + 600 * rng.random(n // (2 * SR) + 1)[(np.arange(n) // (2 * SR))]
    return (0.2 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)


class Probe:
    """Runs the policy and notes, after every turn of the (one) episode, its cache row's
    length, the bytes of the cache buffers, the largest position fed to the model and the
    turn's compute time."""

    def __init__(self, policy):
        self.policy, self.name = policy, policy.name
        self.lengths, self.bytes, self.positions, self.seconds = [], [], [], []
        self._max_position = -1
        policy.model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        self._max_position = max(self._max_position, int(kwargs["position_ids"].max()))

    def act(self, states):
        self._max_position = -1
        tic = time.perf_counter()
        pieces = self.policy.act(states)
        self.seconds.append(time.perf_counter() - tic)
        self.positions.append(self._max_position)
        rec = states[0].memory["dialogue"]
        if rec.kv is not None:  # None after the last turn: the cache is dropped
            block, row = rec.kv
            self.lengths.append(block.lengths[row])
            self.bytes.append(block.nbytes)
        return pieces


def test_ten_minutes_of_speech_stream_through_a_bounded_cache(saved):
    path, encoder = saved
    policy = speech_llm_policy(
        path, encoder, SPEC, max_piece_tokens=4, max_final_tokens=8,
        cache_window=WINDOW, precomputed=False,
    )  # fmt: skip
    probe = Probe(policy)
    audio = recording(10)
    (episode,) = run_stream(
        [audio], probe, FixedMilliseconds(SPEC.chunk_ms), progress=False, clock="queue"
    )
    rec = episode.memory["dialogue"]
    turns = len(episode.chunks)
    assert turns == math.ceil(600_000 / SPEC.chunk_ms) == len(rec.speech) == len(probe.seconds)

    # The cache: never more than the window, in buffers allocated once at the window's size
    # (K and V, 2 layers, 2 KV heads, head dim 8, float32), the same at minute 10 as at 1.
    assert max(probe.lengths) <= WINDOW
    assert set(probe.bytes) == {2 * 2 * 2 * WINDOW * 8 * 4}
    half = len(probe.lengths) // 2
    assert max(probe.lengths[half:]) <= WINDOW and min(probe.lengths[half:]) > WINDOW // 4
    # Positions: every token is fed below the window, however long the stream.
    assert 0 < max(probe.positions) < WINDOW

    # The window slid all along: the dialogue is many windows long, whole turns left it.
    assert len(rec.token_ids) > 40 * WINDOW
    assert rec.evicted == sorted(rec.evicted) and rec.evicted[-1] > 35 * WINDOW
    assert all(d == 0 or rec.system_len + d in rec.turn_starts for d in rec.evicted)
    # ... and the policy still writes at the end, with finite log-probs.
    assert any(episode.pieces[-50:]) and all(math.isfinite(x) for x in rec.logprobs)

    # Compute per turn stays flat (the median of the last 100 turns against turns 50-150,
    # loosely: a busy machine adds noise), and the real-time clock never falls behind.
    early, late = np.median(probe.seconds[50:150]), np.median(probe.seconds[-100:])
    assert late < 3 * early + 0.002
    lag = [e - d for e, d in zip(episode.elapsed, episode.delays)]
    assert max(lag[len(lag) // 2 :], default=0) < SPEC.chunk_ms


def test_without_a_window_the_same_stream_grows_the_cache(saved):
    """The probe sees growth when there is some: one minute already passes the window."""
    path, encoder = saved
    policy = speech_llm_policy(
        path, encoder, SPEC, max_piece_tokens=4, max_final_tokens=8, precomputed=False
    )
    probe = Probe(policy)
    run_stream([recording(1)], probe, FixedMilliseconds(SPEC.chunk_ms), progress=False)
    assert probe.lengths[-1] > 2 * WINDOW and max(probe.positions) > 2 * WINDOW
    assert probe.bytes[-1] > probe.bytes[0]


def test_builder_checks_the_model_dir_encoder_and_window(saved, tmp_path):
    path, encoder = saved
    lm, tokenizer, *_ = tiny_speech_parts()
    save_model(lm, tokenizer, tmp_path / "text")  # an LM with the speech token, no projector
    with pytest.raises(SimulpoError, match="not a speech model: there is no speech projector"):
        speech_llm_policy(tmp_path / "text", encoder, SPEC)
    with pytest.raises(SimulpoError, match="no such model directory"):
        speech_llm_policy(tmp_path / "missing", encoder, SPEC)
    with pytest.raises(ConfigError, match="exceeds the 2048 positions"):
        speech_llm_policy(path, encoder, SPEC, cache_window=4096)
    other = copy.copy(encoder)
    other.dim = 24
    with pytest.raises(ConfigError, match="takes 16-dim encoder frames but the encoder"):
        speech_llm_policy(path, other, SPEC)

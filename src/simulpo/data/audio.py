"""Audio files in and out: mono float32 at one sample rate, or a clear error.

Reading goes through ``soundfile`` (libsndfile: WAV, FLAC, OGG, ...), resampling through
``soxr``; ``torchaudio`` is avoided on purpose (it pins its own torch). What a reader
repairs it says: a file at another sample rate is resampled and a stereo file is
downmixed (the mean of its channels), each with a logged warning naming the file. What it
cannot repair is an :class:`~simulpo.errors.InputError`: a missing, corrupt or non-audio
file, audio with no samples, silent audio (nothing above -80 dBFS), non-finite samples,
and a segment that reaches past the end of its recording.

Writes are 16-bit PCM WAV, atomic (a temporary file, then a rename).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from simulpo.errors import InputError, SimulpoError

log = logging.getLogger(__name__)

#: the sample rate of every audio array inside simulpo (Whisper's and MuST-C's).
SAMPLE_RATE = 16000

#: peak amplitude below which audio counts as silent (-80 dBFS).
SILENCE_PEAK = 1e-4


def resample(audio: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """``audio`` (mono, float) resampled from ``orig_rate`` to ``target_rate`` Hz with soxr (HQ)."""
    if orig_rate == target_rate:
        return np.asarray(audio, dtype=np.float32)
    out = soxr.resample(np.asarray(audio, dtype=np.float32), orig_rate, target_rate, quality="HQ")
    return out.astype(np.float32, copy=False)


def _open(path: Path) -> sf.SoundFile:
    if not path.exists():
        raise SimulpoError(f"{path}: no such file")
    try:
        f = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise InputError(path, f"not a readable audio file ({err})") from None
    # libsndfile quietly reads what is there when a WAV's data chunk claims more bytes than
    # the file holds (an interrupted copy or download): say so instead of losing the tail
    short = re.search(r"^data : (\d+) \(should be (\d+)\)", f.extra_info, re.MULTILINE)
    if short and int(short[1]) > int(short[2]):
        f.close()
        raise InputError(
            path,
            f"truncated file: its header promises {short[1]} bytes of audio, it holds {short[2]}",
        )
    return f


def _to_mono(data: np.ndarray, path: Path) -> np.ndarray:
    if data.shape[1] > 1:
        log.warning("%s: %d channels, downmixed to mono (channel mean).", path, data.shape[1])
        return data.mean(axis=1, dtype=np.float32)
    return data[:, 0]


def _check(audio: np.ndarray, path: Path, allow_silent: bool) -> np.ndarray:
    if audio.size == 0:
        raise InputError(path, "the audio is empty (no samples)")
    if not np.isfinite(audio).all():
        raise InputError(path, "the audio holds NaN or infinite samples")
    if not allow_silent and float(np.abs(audio).max()) < SILENCE_PEAK:
        raise InputError(path, "the audio is silent (no sample above -80 dBFS)")
    return audio


def audio_info(path: str | Path) -> tuple[int, int, int]:
    """``(frames, sample_rate, channels)`` of an audio file, without reading its samples."""
    path = Path(path)
    with _open(path) as f:
        return f.frames, f.samplerate, f.channels


def read_audio(
    path: str | Path,
    sample_rate: int = SAMPLE_RATE,
    offset: float = 0.0,
    duration: float | None = None,
    allow_silent: bool = False,
) -> np.ndarray:
    """Mono float32 samples in [-1, 1] at ``sample_rate`` Hz.

    ``offset`` and ``duration`` (seconds, on the file's timeline) read one segment of a long
    recording, e.g. an entry of a MuST-C-style segment file; a segment that reaches past the
    end of the recording is an error, not a silently shorter array.
    """
    path = Path(path)
    with _open(path) as f:
        rate, frames = f.samplerate, f.frames
        if offset < 0 or (duration is not None and duration <= 0):
            raise InputError(path, f"bad segment: offset {offset} s, duration {duration} s")
        start = round(offset * rate)
        stop = frames if duration is None else round((offset + duration) * rate)
        if stop > frames or start > frames:
            raise InputError(
                path,
                f"segment {offset:.3f}+{(stop - start) / rate:.3f} s ends past the recording "
                f"({frames / rate:.3f} s): does the segment file match this recording?",
            )
        try:
            f.seek(start)
            data = f.read(stop - start, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise InputError(path, f"corrupt audio ({err})") from None
    if len(data) < stop - start:
        raise InputError(
            path, f"truncated audio: {len(data)} of {stop - start} frames could be read"
        )
    audio = _to_mono(data, path)
    if rate != sample_rate:
        log.warning("%s: sample rate %d Hz, resampled to %d Hz.", path, rate, sample_rate)
        audio = resample(audio, rate, sample_rate)
    return _check(audio, path, allow_silent)


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] as int16 (clipped, rounded); int16 input passes through."""
    audio = np.asarray(audio)
    if audio.dtype == np.int16:
        return audio
    return np.clip(np.rint(audio * 32768.0), -32768, 32767).astype(np.int16)


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono ``audio`` (float in [-1, 1], or int16) as a 16-bit PCM WAV file, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp.wav")
    os.close(fd)
    try:
        sf.write(tmp, to_pcm16(audio), sample_rate, subtype="PCM_16", format="WAV")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

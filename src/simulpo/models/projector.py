"""The speech projector: encoder frames → LLM input embeddings, and where they go in a dialogue.

A speech chunk enters the dialogue as a user turn of placeholder tokens (``<|speech|>``),
one per speech embedding, rendered through the chat template like any text. The
projector stacks ``stack`` consecutive encoder frames of a chunk (zero-padding its last
group) and maps each stack through a 2-layer MLP into the LLM's hidden size: a 1120 ms
chunk of 56 Whisper frames becomes 14 embeddings (``stack=4``, as in HPO).
:func:`speech_inputs_embeds` then builds the ``inputs_embeds`` of a batch of token ids
by putting the projected chunks in place of the placeholders, row by row, in order. It is
the one place where speech meets the LM: SFT (:class:`SpeechLM`) and the policy's
prefill (:mod:`simulpo.policies.llm`) both call it.

**Causal conv front end** (``conv_layers`` > 0; for frames without pretrained acoustics,
such as the ``"logmel"`` encoder's): before stacking, ``conv_layers`` 1-D convolutions of
``conv_kernel`` frames (GELU after each) run over each chunk's frames with zero padding on
the LEFT only, so a frame's output depends on it and the frames before it within its
chunk, never on later frames. The padding restarts at the chunk's start — and, with
``conv_window`` > 0, every ``conv_window`` frames from there — because the projector sees
one chunk at a time: at inference one turn, in stage 2 a turn of several encoder chunks,
in stage 1 a whole utterance. With ``conv_window`` = the encoder's frames per chunk
(56 for 1120 ms) all of them compute exactly the same numbers for a chunk (as long as turns
start at chunk boundaries); with 0, a frame early in a chunk sees the previous chunk's last
frames in training but zeros at inference.

**Feature precision.** Encoder frames are float16 wherever they are kept: the SFT feature
cache stores them so (half the disk and memory of float32), and the projector rounds every
chunk it reads to :data:`FEATURE_DTYPE` before computing in its own dtype. Frames fresh
from the encoder (the policy's turns, RL rollouts, evaluation) therefore enter the model
exactly as cached ones do in training: one precision at the one entry point, rather than
float32 cache files for a precision the encoder's own noise swamps (float16 keeps 11
significant bits; Whisper's layer-normed frames are far inside its range).

The projector is saved next to the LM in its model directory (``projector.json`` +
``projector.safetensors``); :func:`load_speech_model` reads both back.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

import torch
from torch import nn

from simulpo.errors import ConfigError, SimulpoError

SPEECH_TOKEN = "<|speech|>"
CONFIG_FILE = "projector.json"
WEIGHTS_FILE = "projector.safetensors"
#: prefix of the projector's weights in SpeechLM's state dict (and in WEIGHTS_FILE)
PREFIX = "speech_projector."
#: the precision of speech features, in the cache and where they enter the model
FEATURE_DTYPE = torch.float16


@dataclass(frozen=True)
class ProjectorConfig:
    """Encoder frame size in, LM hidden size out; ``stack`` frames per embedding."""

    input_dim: int
    output_dim: int
    stack: int = 4
    hidden_dim: int = 0  # the MLP's inner width; 0 = output_dim
    input_norm: bool = False  # LayerNorm on each encoder frame before stacking
    conv_layers: int = 0  # causal Conv1d layers over each chunk's frames, before stacking
    conv_kernel: int = 3  # their kernel, in frames
    conv_dim: int = 0  # their channels; 0 = input_dim
    conv_window: int = 0  # restart the convolutions' padding every N frames; 0 = per chunk

    def __post_init__(self) -> None:
        if (
            min(self.input_dim, self.output_dim, self.stack, self.conv_kernel) < 1
            or min(self.hidden_dim, self.conv_layers, self.conv_dim, self.conv_window) < 0
        ):
            raise ConfigError(
                f"projector sizes must be positive, got input_dim={self.input_dim}, "
                f"output_dim={self.output_dim}, stack={self.stack}, hidden_dim={self.hidden_dim}, "
                f"conv_layers={self.conv_layers}, conv_kernel={self.conv_kernel}, "
                f"conv_dim={self.conv_dim}, conv_window={self.conv_window}"
            )

    @property
    def frame_dim(self) -> int:
        """The size of a frame as stacked: the conv front end's channels, if any."""
        return (self.conv_dim or self.input_dim) if self.conv_layers else self.input_dim


class SpeechProjector(nn.Module):
    """(Optional causal convolutions +) frame stacking + a 2-layer MLP, chunk by chunk
    (stacks and convolutions never straddle two chunks)."""

    def __init__(self, config: ProjectorConfig, seed: int | None = 0) -> None:
        super().__init__()
        self.config = config
        hidden = config.hidden_dim or config.output_dim
        with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's RNG
            if seed is not None:
                torch.manual_seed(seed)
            self.norm = nn.LayerNorm(config.input_dim) if config.input_norm else None
            self.mlp = nn.Sequential(
                nn.Linear(config.frame_dim * config.stack, hidden),
                nn.GELU(),
                nn.Linear(hidden, config.output_dim),
            )
            dims = [config.input_dim] + [config.frame_dim] * config.conv_layers
            self.conv = (
                nn.ModuleList(nn.Conv1d(a, b, config.conv_kernel) for a, b in pairwise(dims))
                if config.conv_layers
                else None
            )

    def num_embeddings(self, frames: int) -> int:
        """Embeddings (= placeholder tokens) of a chunk of ``frames`` encoder frames."""
        return math.ceil(frames / self.config.stack)

    def forward(self, chunks: Sequence[torch.Tensor]) -> torch.Tensor:
        """``[sum of num_embeddings(len(c)), output_dim]``: the chunks' embeddings, in order
        (each chunk's frames rounded to :data:`FEATURE_DTYPE` first)."""
        k, dim = self.config.stack, self.config.input_dim
        weight = self.mlp[0].weight
        frames = []
        for c in chunks:
            if c.ndim != 2 or c.shape[1] != dim:
                raise ConfigError(
                    f"the projector takes chunks of frames [n, {dim}], got shape {tuple(c.shape)}"
                )
            # the one entry of features into the model: cached or fresh, the same numbers
            c = c.to(FEATURE_DTYPE).to(device=weight.device, dtype=weight.dtype)
            frames.append(self.norm(c) if self.norm is not None else c)
        if self.conv is not None:
            frames = self._convolve(frames)
        stacks = []
        for c in frames:
            pad = -len(c) % k
            if pad:
                c = torch.cat([c, c.new_zeros(pad, c.shape[1])])
            stacks.append(c.reshape(-1, k * c.shape[1]))
        if not stacks:
            return weight.new_zeros(0, self.config.output_dim)
        return self.mlp(torch.cat(stacks))

    def _convolve(self, chunks: list[torch.Tensor]) -> list[torch.Tensor]:
        """The causal conv front end over each chunk (each ``conv_window`` piece of it),
        all pieces in one batch: right-padded to the longest, which no output reads."""
        window = self.config.conv_window
        pieces = [list(c.split(window)) if window else [c] for c in chunks]
        flat = [p for ps in pieces for p in ps if len(p)]
        if not flat:
            return [c.new_zeros(len(c), self.config.frame_dim) for c in chunks]
        x = nn.utils.rnn.pad_sequence(flat, batch_first=True).transpose(1, 2)  # [B, dim, T]
        for conv in self.conv:
            x = nn.functional.gelu(conv(nn.functional.pad(x, (conv.kernel_size[0] - 1, 0))))
        out = iter(x.transpose(1, 2))
        return [
            torch.cat([next(out)[: len(p)] for p in ps if len(p)])
            if len(c)
            else c.new_zeros(0, self.config.frame_dim)
            for c, ps in zip(chunks, pieces)
        ]

    def save(self, directory: str | Path) -> None:
        """Write ``projector.json`` and ``projector.safetensors`` into ``directory``, each
        through a temporary file and a rename (weights first: the config marks them complete)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {PREFIX + k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        _atomic(directory / WEIGHTS_FILE, lambda tmp: save_file(state, tmp))
        text = json.dumps(asdict(self.config), indent=2) + "\n"
        _atomic(directory / CONFIG_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, directory: str | Path) -> SpeechProjector:
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / CONFIG_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
            raise SimulpoError(
                f"{directory}: no speech projector ({CONFIG_FILE} and {WEIGHTS_FILE}); "
                "train one with simulpo.train.speech_sft"
            )
        try:
            config = ProjectorConfig(**json.loads((directory / CONFIG_FILE).read_text("utf-8")))
        except (json.JSONDecodeError, TypeError) as err:
            raise SimulpoError(
                f"{directory / CONFIG_FILE}: not a projector config ({err})"
            ) from None
        projector = cls(config, seed=None)
        weights = load_file(str(directory / WEIGHTS_FILE))
        projector.load_state_dict({k.removeprefix(PREFIX): v for k, v in weights.items()})
        return projector


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ------------------------------------------------------------------ tokens and embeddings


def add_speech_token(tokenizer, model=None) -> int:
    """Add the placeholder special token (if missing) and grow ``model``'s embeddings to
    the tokenizer's size; returns the placeholder's id."""
    if SPEECH_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens(
            {"extra_special_tokens": [SPEECH_TOKEN]}, replace_extra_special_tokens=False
        )
    if model is not None and model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return speech_token_id(tokenizer)


def speech_token_id(tokenizer) -> int:
    if SPEECH_TOKEN not in tokenizer.get_vocab():
        raise SimulpoError(
            f"the tokenizer has no {SPEECH_TOKEN} token; add it with add_speech_token(tokenizer, model)"
        )
    return tokenizer.convert_tokens_to_ids(SPEECH_TOKEN)


def speech_content(n: int) -> str:
    """The content of a user turn carrying ``n`` speech embeddings."""
    return SPEECH_TOKEN * n


def speech_inputs_embeds(
    lm,
    projector: SpeechProjector,
    input_ids: torch.Tensor,
    speech: Sequence[Sequence[torch.Tensor]],
    speech_id: int,
) -> torch.Tensor:
    """``inputs_embeds`` of ``input_ids`` (rows, width) with ``speech[r]``'s chunks (encoder
    frames, projected here) in place of row ``r``'s placeholder tokens, in order."""
    embeds = lm.get_input_embeddings()(input_ids)
    if len(speech) != input_ids.shape[0]:
        raise ConfigError(f"{input_ids.shape[0]} rows of tokens but speech for {len(speech)}")
    placeholders = input_ids == speech_id
    have = placeholders.sum(dim=1).tolist()
    want = [sum(projector.num_embeddings(len(c)) for c in row) for row in speech]
    if have != want:
        bad = next(r for r, (h, w) in enumerate(zip(have, want)) if h != w)
        raise ConfigError(
            f"row {bad} holds {have[bad]} {SPEECH_TOKEN} placeholders but its speech makes "
            f"{want[bad]} embeddings; every speech chunk of n frames needs "
            f"ceil(n / {projector.config.stack}) placeholders, in the same order"
        )
    if not sum(want):
        return embeds
    projected = projector([c for row in speech for c in row]).to(embeds.dtype)
    # masked_scatter fills the placeholders in row-major order: row 0's chunks first.
    return embeds.masked_scatter(placeholders[..., None], projected)


class SpeechLM(nn.Module):
    """An LM and its speech projector as one trainable module (for SFT).

    The LM's own children are registered here under their own names and the projector
    under ``speech_projector``, so the state dict is the LM's plus ``speech_projector.*``:
    ``save_pretrained`` writes the LM's usual directory plus the projector files, and
    checkpoints load back key for key. ``forward`` takes ``speech`` (per row, the chunks'
    encoder frames) and returns the LM's output.
    """

    def __init__(self, lm, projector: SpeechProjector, speech_id: int) -> None:
        super().__init__()
        self.__dict__["lm"] = lm  # not a submodule: its children are, just below
        for name, child in lm.named_children():
            self.add_module(name, child)
        self.speech_projector = projector
        self.speech_id = speech_id

    @property
    def config(self):
        return self.lm.config

    def train(self, mode: bool = True) -> SpeechLM:
        super().train(mode)
        self.lm.training = mode
        return self

    def forward(self, input_ids, attention_mask=None, speech=None, **kwargs):
        speech = speech if speech is not None else [[] for _ in range(len(input_ids))]
        embeds = speech_inputs_embeds(
            self.lm, self.speech_projector, input_ids, speech, self.speech_id
        )
        return self.lm(inputs_embeds=embeds, attention_mask=attention_mask, **kwargs)

    def save_pretrained(self, path: str | Path, **kwargs) -> None:
        self.lm.save_pretrained(str(path), **kwargs)
        self.speech_projector.save(path)


def load_speech_model(path: str | Path, dtype: str | None = None):
    """``(lm, tokenizer, projector)`` from a directory written by a speech SFT run."""
    from simulpo.models.lm import load_model

    lm, tokenizer = load_model(path, dtype=dtype)
    projector = SpeechProjector.load(path).to(lm.device)
    speech_token_id(tokenizer)  # a clear error if the placeholder is missing
    return lm, tokenizer, projector.eval().requires_grad_(False)

"""The speech LLM policy in one call: a speech model directory and a frozen encoder.

:func:`speech_llm_policy` loads what a speech SFT or RL run saved (the LM, its tokenizer
with the ``<|speech|>`` token and ``projector.json`` + ``projector.safetensors``, read by
:func:`~simulpo.models.projector.load_speech_model`), puts the encoder and projector in a
:class:`~simulpo.policies.speech_front.SpeechFrontEnd` and returns the
:class:`~simulpo.policies.llm.LLMPolicy` that reads audio chunks with it. The recipe's
evaluation and ``simulpo eval --speech DATA --policy llm`` both build it here.

``spec`` is the encoder's chunking the model was trained with (``chunk_ms``, 1120 ms in
the recipe, and its left context); a turn may read any whole number of those chunks
(``FixedMilliseconds(spec.chunk_ms * n)``, as HPO merges chunks), and each turn's frames
are the same rows of the same causal chunked encoding whatever ``n`` is.

``cache_window`` (tokens) bounds the KV cache InfiniSST-style (the
:mod:`simulpo.policies.llm` docstring): off, the cache holds the whole dialogue, which is
right for sentences; a long-form stream of many minutes needs it, since the dialogue grows
by some tens of tokens per chunk. It must fit the model's positions and hold the system
prompt, two turns and a piece's token budget (the policy says so at the first turn that
does not fit).

``precomputed`` encodes each source once, at its first turn, with the same windows (the
same numbers; fastest when a source is rolled out many times, as in RL). Evaluation that
times the policy (computation-aware latency, a real-time clock over a long stream) wants
``precomputed=False``: each turn then encodes only the audio it has read.
"""

from __future__ import annotations

from pathlib import Path

import torch

from simulpo.errors import ConfigError, SimulpoError
from simulpo.models.lm import check_causal_lm_dir
from simulpo.models.projector import CONFIG_FILE, WEIGHTS_FILE, load_speech_model
from simulpo.models.speech_encoder import ChunkSpec, SpeechEncoder
from simulpo.policies.llm import LLMPolicy
from simulpo.policies.speech_front import SpeechFrontEnd


def speech_llm_policy(
    model_dir: str | Path,
    encoder: SpeechEncoder | str | Path | None = None,
    spec: ChunkSpec | None = None,
    *,
    max_piece_tokens: int = 32,
    max_final_tokens: int = 160,
    cache_window: int | None = None,
    precomputed: bool = True,
    record_speech: bool = False,
    name: str = "llm",
    dtype: str | None = None,
    device: str | torch.device | None = None,
) -> LLMPolicy:
    """The speech LLM policy saved in ``model_dir``, greedy.

    ``encoder``: a :class:`SpeechEncoder`, or a path for :meth:`SpeechEncoder.load` (a
    CTranslate2 or Hugging Face Whisper directory), or None for the packaged Whisper
    tiny.en; it must be the encoder the projector was trained on (its frame size is
    checked). ``spec``: the encoder chunking (default ``ChunkSpec()``: 1120 ms chunks,
    2000 ms of left context). ``max_piece_tokens`` caps a piece before the source ends,
    ``max_final_tokens`` the last one. ``cache_window``: None keeps the whole dialogue in
    the cache, N bounds it to N tokens. ``record_speech`` keeps each turn's encoder
    frames in the episode's record (RL's rollouts need them; this policy, built for
    evaluation and serving, drops them by default). ``dtype`` ("bfloat16", ...) loads the
    LM in another dtype than its checkpoint's; ``device`` moves the LM and projector there
    (the encoder runs on the CPU).
    """
    model_dir = Path(model_dir)
    check_causal_lm_dir(model_dir)  # a missing or non-LM directory: say so before loading
    if not ((model_dir / CONFIG_FILE).is_file() and (model_dir / WEIGHTS_FILE).is_file()):
        raise SimulpoError(
            f"{model_dir}: not a speech model: there is no speech projector ({CONFIG_FILE} "
            f"and {WEIGHTS_FILE}) next to the LM. A speech policy is the model directory a "
            "speech SFT or RL run wrote (e.g. runs/demo-speech/stage2/final or hpo/final); "
            "a text policy cannot read audio"
        )
    if cache_window is not None and cache_window < 1:
        raise ConfigError(f"cache_window must be a positive number of tokens, got {cache_window}")
    if not isinstance(encoder, SpeechEncoder):
        encoder = SpeechEncoder.load(None if encoder in (None, "") else encoder)
    lm, tokenizer, projector = load_speech_model(model_dir, dtype=dtype)
    if encoder.dim != projector.config.input_dim:
        raise ConfigError(
            f"{model_dir}: the projector takes {projector.config.input_dim}-dim encoder frames "
            f"but the encoder {encoder.name} makes {encoder.dim}-dim ones; use the encoder the "
            "model was trained with"
        )
    positions = _max_positions(lm)
    if cache_window is not None and positions is not None and cache_window > positions:
        raise ConfigError(
            f"cache_window={cache_window} exceeds the {positions} positions of the model in "
            f"{model_dir}; use a window of at most {positions} tokens"
        )
    if device is not None:
        lm, projector = lm.to(device), projector.to(device)
    front = SpeechFrontEnd(encoder, projector, spec or ChunkSpec(), precomputed=precomputed)
    return LLMPolicy(
        lm,
        tokenizer,
        max_piece_tokens=max_piece_tokens,
        max_final_tokens=max_final_tokens,
        cache_window=cache_window,
        speech=front,
        record_speech=record_speech,
        name=name,
    )


def _max_positions(lm) -> int | None:
    config = lm.config.get_text_config() if hasattr(lm.config, "get_text_config") else lm.config
    return getattr(config, "max_position_embeddings", None)


__all__ = ["speech_llm_policy"]

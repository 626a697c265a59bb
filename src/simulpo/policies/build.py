"""One way to build any policy: a :class:`PolicySpec` in, a policy out.

The CLI, the recipes, the benchmarks and the server all describe the policy they want
as a spec — its kind, the model or translator it runs, its schedule's parameters, the
stream it reads (speech chunking), its cache window and token budgets — and call
:func:`build_policy`. Objects already in memory (a model just trained, a shared
translator or encoder) are passed beside the spec, so nothing is loaded twice.

Kinds: the schedules ``wait-k`` (``k``; also ``wait-N``), ``offline``, ``fixed-chunk``,
``local-agreement`` (``n``; also ``la``) over a ``translator``; ``llm`` (a text chat
policy, or with ``speech`` a speech LLM reading audio chunks); ``cascade`` (streaming
Whisper, then the text schedule ``text_policy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulpo.errors import ConfigError, SimulpoError
from simulpo.stream.dialogue import SYSTEM_PROMPT

SCHEDULES = ("wait-k", "offline", "fixed-chunk", "local-agreement")
KINDS = (*SCHEDULES, "llm", "cascade")


@dataclass
class PolicySpec:
    """What policy to build; every field has the default ``simulpo eval`` uses."""

    kind: str = "wait-k"
    #: schedules and the cascade's text policy: grammar | apertium | llm (with ``model``)
    translator: str = "apertium"
    #: the LLM policy (text or speech model dir) or the LLM translator
    model: str | Path | None = None
    k: int = 3
    n: int = 2
    #: fixed-chunk: source words per chunk (``simulpo eval`` passes its --chunk-words)
    chunk_words: int = 1
    pair: str = "eng-spa"
    reorder: float | None = None
    name: str | None = None
    max_piece_tokens: int = 32
    max_new_tokens: int = 160
    #: a speech policy (audio sources)
    speech: bool = False
    chunk_ms: float = 1120.0
    context_ms: int = 2000
    speech_encoder: str = ""
    cache_window: int | None = None
    #: each turn encodes only the audio read so far (False; timing-faithful) or each
    #: source is encoded once at its first turn (True; fastest for RL)
    precomputed: bool = False
    #: a speech LLM keeps each turn's encoder frames in its record: RL re-scores them;
    #: evaluation and serving do not, and without them a long stream's memory stays flat
    record_speech: bool = False
    #: LLM decoding: greedy, or sampling (RL rollouts) with these, seeded
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    #: None: no system message of the policy's own (the chat template's default); "": the
    #: prompt the ``model`` directory was trained with (its stream.json), else the generic one
    system_prompt: str | None = ""
    #: the speech LLM: load the LM in this dtype (e.g. bfloat16) and put it on this device
    dtype: str | None = None
    device: str | None = None
    text_policy: str = "local-agreement"
    asr_model: str | None = None
    asr_n: int = 2
    asr_beam: int = 1
    asr_threads: int = 1


def build_policy(
    spec: PolicySpec,
    *,
    model: Any = None,
    tokenizer: Any = None,
    translator: Any = None,
    encoder: Any = None,
    front: Any = None,
):
    """The policy ``spec`` describes. ``model``/``tokenizer`` (an LLM policy's, already
    loaded; with ``front``, a :class:`~simulpo.policies.speech_front.SpeechFrontEnd`, a
    speech policy's LM), ``translator`` (a schedule's) and ``encoder`` (a speech
    encoder) replace what the spec would otherwise load."""
    kind = spec.kind
    if kind == "llm":
        if spec.speech and model is None:
            return _speech_llm(spec, encoder)
        return _llm(spec, model, tokenizer, front)
    if kind == "cascade":
        return _cascade(spec, translator)
    return _schedule(kind, translator or build_translator_of(spec), spec, spec.name)


def policy_name(spec: PolicySpec) -> str:
    """The name the policy of ``spec`` reports under, without building it."""
    if spec.name:
        return spec.name
    if spec.kind in ("llm", "cascade"):
        return spec.kind
    return _schedule(spec.kind, None, spec, None).name


def build_translator_of(spec: PolicySpec):
    """The spec's translator: ``grammar``, ``apertium`` (``pair``) or ``llm`` (``model``)."""
    from simulpo.translators import build_translator

    if spec.translator == "llm":
        from simulpo.models.lm import load_model
        from simulpo.translators.llm import LLMTranslator

        if not spec.model:
            raise SimulpoError("--translator llm needs --model PATH (an offline translation model)")
        model, tokenizer = load_model(spec.model)
        return LLMTranslator(model, tokenizer, max_new_tokens=spec.max_new_tokens)
    options: dict[str, Any] = {"pair": spec.pair} if spec.translator == "apertium" else {}
    if spec.translator == "grammar" and spec.reorder is not None:
        options = {"reorder": spec.reorder}
    return build_translator(spec.translator, **options)


def _schedule(kind: str, translator, spec: PolicySpec, name: str | None):
    from simulpo.policies.schedules import schedule

    policy = schedule(kind, translator, k=spec.k, n=spec.n, size=spec.chunk_words)
    policy.label = name
    return policy


def _llm(spec: PolicySpec, model, tokenizer, front=None):
    from simulpo.policies.llm import LLMPolicy

    if model is None:
        if not spec.model:
            raise SimulpoError(
                "--policy llm needs --model PATH (a simultaneous policy, e.g. runs/demo/sft/final)"
            )
        from simulpo.models.lm import load_model

        model, tokenizer = load_model(spec.model)
    return LLMPolicy(model, tokenizer, speech=front, **_llm_options(spec))


def _system_prompt(spec: PolicySpec) -> str | None:
    """The spec's system prompt, or (``""``) the one its model was trained with."""
    if spec.system_prompt != "":
        return spec.system_prompt
    from simulpo.stream.settings import recorded_prompt

    return recorded_prompt(spec.model) or SYSTEM_PROMPT


def _llm_options(spec: PolicySpec) -> dict[str, Any]:
    """What an :class:`~simulpo.policies.llm.LLMPolicy` takes from the spec."""
    return {
        "do_sample": spec.do_sample,
        "temperature": spec.temperature,
        "top_p": spec.top_p,
        "seed": spec.seed,
        "system_prompt": _system_prompt(spec),
        "max_piece_tokens": spec.max_piece_tokens,
        "max_final_tokens": spec.max_new_tokens,
        "cache_window": spec.cache_window,
        "record_speech": spec.record_speech,
        "name": spec.name or "llm",
    }


def _speech_llm(spec: PolicySpec, encoder):
    """The speech LLM policy, greedy. Its encoder chunk is ``chunk_ms`` (with
    ``context_ms`` of left context): the chunking the model was trained with."""
    from simulpo.models.speech_encoder import ChunkSpec
    from simulpo.policies.speech_llm import speech_llm_policy

    if not spec.model:
        raise SimulpoError(
            "--speech --policy llm needs --model PATH: a speech model directory (the LM with "
            "its projector.json, e.g. runs/demo-speech/stage2/final)"
        )
    if spec.chunk_ms != int(spec.chunk_ms) or int(spec.chunk_ms) % 20:
        raise SimulpoError(
            f"--policy llm encodes audio in whole 20 ms frames: --chunk-ms must be a multiple "
            f"of 20 (the chunk the model was trained with, 1120 in the speech recipe), got "
            f"{spec.chunk_ms:g}; read several chunks a turn with --chunks-per-turn"
        )
    window = spec.cache_window
    if window is not None and window < 0:
        raise SimulpoError(f"--cache-window takes a number of tokens (0 = off), got {window}")
    try:
        return speech_llm_policy(
            spec.model,
            encoder if encoder is not None else (spec.speech_encoder or None),
            ChunkSpec(int(spec.chunk_ms), spec.context_ms),
            max_piece_tokens=spec.max_piece_tokens,
            max_final_tokens=spec.max_new_tokens,
            cache_window=window or None,
            precomputed=spec.precomputed,
            record_speech=spec.record_speech,
            name=spec.name or "llm",
            dtype=spec.dtype,
            device=spec.device,
        )
    except SimulpoError as err:
        if window and "cache_window" in str(err):
            raise SimulpoError(f"{err} (--cache-window {window}; --cache-window 0 turns it off)")
        raise


def _cascade(spec: PolicySpec, translator):
    """Streaming Whisper, then the text schedule ``text_policy`` over the committed words."""
    from simulpo.policies.asr import WhisperTranscriber
    from simulpo.policies.cascade import Cascade, plain_words

    if spec.cache_window is not None or spec.speech_encoder:
        raise SimulpoError("--cache-window and --speech-encoder are options of --policy llm")
    text = _schedule(spec.text_policy, translator or build_translator_of(spec), spec, None)
    transcriber = WhisperTranscriber(
        spec.asr_model, threads=spec.asr_threads, beam_size=spec.asr_beam
    )
    # The synthetic pair's grammar knows lower-case words only; Apertium reads cased text.
    normalize = plain_words if spec.translator == "grammar" else None
    return Cascade(
        transcriber, text, asr_n=spec.asr_n, normalize=normalize, name=spec.name or "cascade"
    )


def check_kind(kind: str, speech: bool) -> None:
    """Refuse a kind that cannot read the source (a text schedule on speech)."""
    if speech and kind not in ("cascade", "llm"):
        raise SimulpoError(
            f"--speech evaluates --policy cascade or llm; {kind!r} is not a speech policy"
        )
    if not speech and kind == "cascade":
        raise ConfigError("the cascade reads speech: use it with --speech DATA_DIR")


__all__ = [
    "KINDS", "PolicySpec", "build_policy", "build_translator_of", "check_kind", "policy_name",
]  # fmt: skip

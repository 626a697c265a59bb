"""The dialogue format: an episode as a chat transcript.

System prompt, then one user turn per source chunk and one assistant turn per written
piece (empty = wait). SFT data, the LLM policy and RL rollouts all build their token
sequences from these messages through the tokenizer's chat template, so any chat model
works and the transcript only ever grows at the end (the KV cache is reused turn to turn).

The system prompt is the generic :data:`SYSTEM_PROMPT` unless the languages are named
(a recipe's ``stream.source_lang``/``target_lang``): then it says the task and the
languages (:func:`system_prompts`), as a pretrained instruct model needs to be told.
"""

from __future__ import annotations

from collections.abc import Sequence

from simulpo.errors import ConfigError

#: the prompts of a dialogue that names no languages (the embedded default's; its tiny
#: tokenizer has them as single tokens)
SYSTEM_PROMPT = "Translate the source into the target as it arrives, chunk by chunk."
OFFLINE_SYSTEM_PROMPT = "Translate the source into the target."

#: the prompts that name the languages and the task, for pretrained instruct models
LANGUAGE_PROMPT = (
    "You are a simultaneous interpreter. Translate the {source} source, which arrives in "
    "pieces, into {target}. After each piece, write only the {target} for what can already "
    "be translated, continuing what you wrote before; write nothing if you need more of the "
    "source."
)
OFFLINE_LANGUAGE_PROMPT = "Translate the {source} text into {target}. Reply with the translation only."

#: language names of the codes a recipe may give (ISO 639-1, and their 639-3 twins)
LANGUAGES = {
    "en": "English", "es": "Spanish", "de": "German", "fr": "French", "it": "Italian",
    "pt": "Portuguese", "ca": "Catalan", "nl": "Dutch", "ru": "Russian", "zh": "Chinese",
    "ja": "Japanese", "ko": "Korean", "ar": "Arabic", "cs": "Czech", "pl": "Polish",
    "eng": "English", "spa": "Spanish", "deu": "German", "fra": "French", "ita": "Italian",
    "por": "Portuguese", "cat": "Catalan", "nld": "Dutch", "rus": "Russian", "zho": "Chinese",
    "jpn": "Japanese",
}  # fmt: skip

Message = dict[str, str]


def language_name(code: str) -> str:
    """The English name of a language code (``es`` → Spanish); a longer word is taken as
    the name itself (``Galician``)."""
    if code.lower() in LANGUAGES:
        return LANGUAGES[code.lower()]
    if len(code) <= 3:
        raise ConfigError(
            f"unknown language code {code!r}: use one of {', '.join(sorted(LANGUAGES))}, or "
            "write the language's name"
        )
    return code


def system_prompts(source: str = "", target: str = "") -> tuple[str, str]:
    """The streaming and the offline system prompt for languages ``source`` → ``target``
    (codes or names); without languages, the generic :data:`SYSTEM_PROMPT` and
    :data:`OFFLINE_SYSTEM_PROMPT`."""
    if not source and not target:
        return SYSTEM_PROMPT, OFFLINE_SYSTEM_PROMPT
    if not (source and target):
        raise ConfigError(
            f"give both languages or neither, got source {source!r} and target {target!r}"
        )
    names = {"source": language_name(source), "target": language_name(target)}
    return LANGUAGE_PROMPT.format(**names), OFFLINE_LANGUAGE_PROMPT.format(**names)


def system_message(prompt: str = SYSTEM_PROMPT) -> Message:
    return {"role": "system", "content": prompt}


def user_message(chunk: Sequence[str] | str) -> Message:
    """A source chunk (a list of words, or text) as a user turn."""
    return {"role": "user", "content": chunk if isinstance(chunk, str) else " ".join(chunk)}


def assistant_message(piece: str) -> Message:
    return {"role": "assistant", "content": piece}


def episode_messages(
    chunks: Sequence[Sequence[str] | str], pieces: Sequence[str], system: str = SYSTEM_PROMPT
) -> list[Message]:
    """The whole dialogue of an episode: user/assistant turns alternate, one pair per chunk."""
    if len(chunks) != len(pieces):
        raise ValueError(f"{len(chunks)} chunks but {len(pieces)} pieces: one piece per chunk")
    messages = [system_message(system)]
    for chunk, piece in zip(chunks, pieces):
        messages += [user_message(chunk), assistant_message(piece)]
    return messages


def offline_messages(
    source: str, translation: str | None = None, system: str = OFFLINE_SYSTEM_PROMPT
) -> list[Message]:
    """A single-turn dialogue for the offline translator (whole source, whole translation)."""
    messages = [system_message(system), user_message(source)]
    if translation is not None:
        messages.append(assistant_message(translation))
    return messages

"""The dialogue format: an episode as a chat transcript.

System prompt, then one user turn per source chunk and one assistant turn per written
piece (empty = wait). SFT data, the LLM policy and RL rollouts all build their token
sequences from these messages through the tokenizer's chat template, so any chat model
works and the transcript only ever grows at the end (the KV cache is reused turn to turn).
"""

from __future__ import annotations

from collections.abc import Sequence

SYSTEM_PROMPT = "Translate the source into the target as it arrives, chunk by chunk."
OFFLINE_SYSTEM_PROMPT = "Translate the source into the target."

Message = dict[str, str]


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


def offline_messages(source: str, translation: str | None = None) -> list[Message]:
    """A single-turn dialogue for the offline translator (whole source, whole translation)."""
    messages = [system_message(OFFLINE_SYSTEM_PROMPT), user_message(source)]
    if translation is not None:
        messages.append(assistant_message(translation))
    return messages

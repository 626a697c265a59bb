"""The LLM policy: a chat model that reads one source chunk per turn and writes a piece.

Each episode is one append-only dialogue (``stream/dialogue.py``): system prompt, then per
turn a user message with the new chunk and an assistant message with the piece, which
ends at the end-of-turn token (an empty piece = wait). The key/value cache of every
episode is kept between turns, so no token is ever computed twice.

The tokens of each turn are derived from the tokenizer's own chat template, so any chat
model works: the dialogue is rendered before and after the new user turn, the new text is
the suffix, and it is tokenized on its own. The template must really be append-only (the
old rendering a prefix of the new one); a template that rewrites earlier turns is refused
with an error saying so.

All live episodes of a turn are decoded together (:mod:`simulpo.policies.generation`):
their caches are merged into one left-padded batch, the new tokens are left-padded, and
each row keeps its own positions and attention mask.

For RL, ``state.memory["dialogue"]`` holds a :class:`DialogueRecord` per episode: the
token ids of the whole dialogue, the mask of the tokens the policy wrote (its pieces and
the end-of-turn tokens it chose), and their log-probs under the sampling distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from simulpo.errors import ConfigError
from simulpo.policies.generation import ChatFormat, KVBlock, Sampler, gather_rows, generate
from simulpo.stream.dialogue import (
    SYSTEM_PROMPT,
    Message,
    assistant_message,
    system_message,
    user_message,
)
from simulpo.stream.loop import StreamState


@dataclass
class DialogueRecord:
    """One episode's dialogue as the model saw it.

    ``token_ids`` is the whole dialogue (it ends with the last end-of-turn token);
    ``policy_mask[i]`` is True where the policy sampled ``token_ids[i]``; ``logprobs[i]``
    is that token's log-prob under the sampling distribution (0.0 where the mask is
    False). ``piece_spans[t]`` is the ``(start, stop)`` slice of turn ``t``'s piece and its
    end-of-turn token. ``truncated[t]`` says that the model did not end piece ``t`` with
    the end-of-turn token itself — it ran out of budget (or stopped with another stop
    token, e.g. a bare EOS, which is dropped) — so the policy added that token: it is not
    masked in, since the model did not choose it.
    """

    token_ids: list[int] = field(default_factory=list)
    policy_mask: list[bool] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    piece_spans: list[tuple[int, int]] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    #: the rendered text of ``token_ids`` (to check that the template only appends)
    text: str = ""
    #: how many tokens at the end of ``token_ids`` are not in the KV cache yet
    pending: int = 0
    #: this episode's row in the batched KV cache, None before the first turn / after the last
    kv: tuple[KVBlock, int] | None = None

    def extend(self, ids: Sequence[int], policy: bool = False, logprobs=None) -> None:
        self.token_ids += ids
        self.policy_mask += [policy] * len(ids)
        self.logprobs += list(logprobs) if logprobs is not None else [0.0] * len(ids)


class LLMPolicy:
    """A chat LM writing one piece per turn, with its KV cache kept across turns.

    ``max_piece_tokens`` caps a piece before the last chunk, ``max_final_tokens`` the last
    piece (the rest of the translation). A piece that runs out of budget is closed with
    the end-of-turn token and the dialogue goes on. ``do_sample`` with ``temperature`` and
    ``top_p`` samples (reproducibly with ``seed``); otherwise decoding is greedy.
    """

    def __init__(
        self,
        model,
        tokenizer,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_piece_tokens: int = 32,
        system_prompt: str = SYSTEM_PROMPT,
        seed: int | None = None,
        max_final_tokens: int = 256,
        name: str = "llm",
    ) -> None:
        if max_piece_tokens < 1 or max_final_tokens < 1:
            raise ConfigError(
                f"token budgets must be at least 1, got max_piece_tokens={max_piece_tokens}, "
                f"max_final_tokens={max_final_tokens}"
            )
        if do_sample and not (temperature > 0 and 0 < top_p <= 1):
            raise ConfigError(
                f"sampling needs temperature > 0 and 0 < top_p <= 1, got {temperature}, {top_p}"
            )
        self.model = model
        self.chat = ChatFormat(tokenizer)
        self.max_piece_tokens = max_piece_tokens
        self.max_final_tokens = max_final_tokens
        self.system_prompt = system_prompt
        self.name = name
        generator = None
        if seed is not None:
            generator = torch.Generator(device=model.device).manual_seed(seed)
        self.sampler = Sampler(do_sample, temperature, top_p, generator)
        self.stop_ids = self.chat.stop_ids(model)

    def act(self, states: Sequence[StreamState]) -> list[str]:
        if not states:
            return []
        records = [self._record(s) for s in states]
        new_tokens = [self._open_turn(rec, s.new_chunk) for rec, s in zip(records, states)]
        budgets = [
            self.max_final_tokens if s.source_finished else self.max_piece_tokens for s in states
        ]
        out = generate(
            self.model,
            gather_rows([rec.kv for rec in records]),
            new_tokens,
            budgets,
            self.stop_ids,
            self.sampler,
            self.chat.pad_id(),
        )
        pieces = []
        for row, (rec, state) in enumerate(zip(records, states)):
            pieces.append(
                self._close_turn(rec, out.tokens[row], out.logprobs[row], out.stopped[row])
            )
            # The cache of a finished episode is dropped; the others keep their row.
            rec.kv = None if state.source_finished else (out.cache, row)
        return pieces

    def _record(self, state: StreamState) -> DialogueRecord:
        rec = state.memory.get("dialogue")
        if rec is None:
            rec = state.memory["dialogue"] = DialogueRecord(
                messages=[system_message(self.system_prompt)]
            )
        return rec

    def _open_turn(self, rec: DialogueRecord, chunk) -> list[int]:
        """Add the user turn and the assistant's generation prompt; returns the tokens the
        cache has not seen (the end of the previous turn, then the new text)."""
        rec.messages.append(user_message(chunk))
        full = self.chat.render(rec.messages, generation_prompt=True)
        if not full.startswith(rec.text):
            raise RuntimeError(
                "the chat template is not append-only: rendering the dialogue with a new turn "
                "changed the text of earlier turns, so the KV cache cannot be reused "
                f"(expected the new rendering to start with ...{rec.text[-60:]!r})"
            )
        delta = self.chat.encode(full[len(rec.text) :])
        rec.text = full
        rec.extend(delta)
        new = rec.token_ids[len(rec.token_ids) - len(delta) - rec.pending :]
        rec.pending = 0
        return new

    def _close_turn(
        self, rec: DialogueRecord, tokens: list[int], logprobs: list[float], stopped: bool
    ) -> str:
        """Record the piece and its end-of-turn token; returns the piece as text."""
        start = len(rec.token_ids)
        fed = len(tokens) - 1  # the cache holds every sampled token but the last
        if stopped and tokens[-1] != self.chat.end_id:
            # Another stop token (e.g. a bare EOS): the turn still ends with the template's.
            tokens, logprobs, stopped = tokens[:-1], logprobs[:-1], False
        rec.extend(tokens, policy=True, logprobs=logprobs)
        if not stopped:  # out of budget, or replaced stop: close the turn ourselves
            rec.extend([self.chat.end_id])
        rec.pending = len(rec.token_ids) - start - fed
        rec.piece_spans.append((start, len(rec.token_ids)))
        rec.truncated.append(not stopped)
        body = rec.token_ids[start : len(rec.token_ids) - 1]
        raw = self.chat.decode(body)
        rec.messages.append(assistant_message(raw))
        rec.text += raw + self.chat.end_text
        return " ".join(self.chat.decode(body, skip_special=True).split())

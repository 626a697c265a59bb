"""The LLM policy: a chat model that reads one source chunk per turn and writes a piece.

Each episode is one append-only dialogue (``stream/dialogue.py``): system prompt, then per
turn a user message with the new chunk and an assistant message with the piece, which
ends at the end-of-turn token (an empty piece = wait). The key/value cache of every
episode is kept between turns, so no token is ever computed twice.

The tokens of each turn come from :class:`~simulpo.models.chat.ChatFormat`, the one
rendering of a dialogue that SFT labels use too: the text around the pieces comes from
the tokenizer's own chat template (so any chat model works), the pieces are the tokens
sampled, each turn is tokenized on its own and the template must be append-only (see
:mod:`simulpo.models.chat`). ``system_prompt=None`` sends no system message (the
template's default system prompt, if it has one, then opens the first turn, and a bounded
cache may evict it with that turn).

All live episodes of a turn are decoded together (:mod:`simulpo.decoding`):
their caches are merged into one left-padded batch, the new tokens are left-padded, and
each row keeps its own positions and attention mask.

For RL, ``state.memory["dialogue"]`` holds a :class:`DialogueRecord` per episode: the
token ids of the whole dialogue, the mask of the tokens the policy wrote (its pieces and
the end-of-turn tokens it chose), and their log-probs under the sampling distribution.

Bounded cache (``cache_window``, off by default; for long or unbounded streams). The
cache of an episode holds the system prompt and the most recent whole turns, at most
``cache_window`` tokens. Before a turn that would not fit (its new tokens plus its token
budget), the oldest turns are dropped from the cache until the turn fits with a quarter
of the window to spare, so eviction happens once every few turns, not at every turn. The
kept turns move down to follow the system prompt and their cached keys are rotated back
by as many positions (InfiniSST-style), so positions never grow past the window and the
model keeps working however long the stream; this needs standard RoPE (the error says
which models qualify). The :class:`DialogueRecord` still keeps every token: RL sees the
whole dialogue, and ``evicted[t]`` says how many tokens after the system prompt were out
of the model's context when piece ``t`` was written: its context was
``token_ids[:system_len] + token_ids[system_len + evicted[t] : start of piece t]``, at
consecutive positions. The stored log-probs are those the sampler saw in that windowed
context. A trainer that scores the whole dialogue in one forward sees more context than
the sampler did (its ratio to the old log-probs then absorbs the difference); even a
trainer that rebuilds each window sees slightly different activations, since the kept
tokens' cached states were computed while the dropped turns were still there (as in
InfiniSST; only the positions are corrected).

Speech (``speech``, a :class:`~simulpo.policies.speech_front.SpeechFrontEnd`): the
sources are audio, and each user turn is the new chunk's placeholder tokens (one per
speech embedding) rendered through the same template; the prefill of a turn's new tokens
feeds the projected encoder frames in their place (``generate``'s ``embed``). The cache,
decoding and records are those of text; with ``record_speech`` (the default)
``DialogueRecord.speech`` keeps each turn's encoder frames so a trainer can rebuild the
same inputs. Evaluation and serving never read them again and turn it off: the frames
(Whisper tiny.en's, 384 float32 every 20 ms: 76.8 KB per second of audio) would
otherwise make an unbounded stream's memory grow with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from simulpo.decoding import (
    KVBlock,
    RopeShift,
    Sampler,
    evict,
    gather_rows,
    generate,
)
from simulpo.errors import ConfigError
from simulpo.models.chat import ChatFormat, Transcript
from simulpo.models.projector import speech_inputs_embeds, speech_token_id
from simulpo.stream.dialogue import SYSTEM_PROMPT, system_message, user_message
from simulpo.stream.loop import StreamState

if TYPE_CHECKING:
    from simulpo.policies.speech_front import SpeechFrontEnd


@dataclass
class DialogueRecord(Transcript):
    """One episode's dialogue as the model saw it: its :class:`~simulpo.models.chat.Transcript`
    (token ids, policy mask, log-probs, piece spans, truncated pieces; it ends with the
    last end-of-turn token) and the policy's own bookkeeping."""

    #: how many tokens at the end of ``token_ids`` are not in the KV cache yet
    pending: int = 0
    #: this episode's row in the batched KV cache, None before the first turn / after the last
    kv: tuple[KVBlock, int] | None = None
    #: ``evicted[t]``: tokens after the system prompt that were out of the cache (dropped
    #: by ``cache_window``) when piece ``t`` was written; all 0 without a window
    evicted: list[int] = field(default_factory=list)
    #: speech policies with ``record_speech``: the encoder frames ``[n, dim]`` of each user
    #: turn, in order (their projections sit at the turn's placeholder tokens); else empty
    speech: list[torch.Tensor] = field(default_factory=list)


class LLMPolicy:
    """A chat LM writing one piece per turn, with its KV cache kept across turns.

    ``max_piece_tokens`` caps a piece before the last chunk, ``max_final_tokens`` the last
    piece (the rest of the translation). A piece that runs out of budget is closed with
    the end-of-turn token and the dialogue goes on. ``do_sample`` with ``temperature`` and
    ``top_p`` samples (reproducibly with ``seed``); otherwise decoding is greedy.
    ``cache_window`` bounds each episode's cache to that many tokens (module docstring);
    None keeps the whole dialogue, which is right for sentences. ``speech`` makes it a
    speech policy (module docstring): sources are audio, turns carry speech embeddings;
    ``record_speech`` keeps each turn's encoder frames in the record (RL needs them, to
    re-score the episode; evaluation and serving do not).
    """

    def __init__(
        self,
        model,
        tokenizer,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_piece_tokens: int = 32,
        system_prompt: str | None = SYSTEM_PROMPT,
        seed: int | None = None,
        max_final_tokens: int = 256,
        name: str = "llm",
        cache_window: int | None = None,
        speech: SpeechFrontEnd | None = None,
        record_speech: bool = True,
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
        if cache_window is not None and cache_window < 1:
            raise ConfigError(
                f"cache_window must be a positive number of tokens, got {cache_window}"
            )
        self.model = model
        self.chat = ChatFormat(tokenizer)
        self.max_piece_tokens = max_piece_tokens
        self.max_final_tokens = max_final_tokens
        self.system_prompt = system_prompt
        self.name = name
        self.cache_window = cache_window
        self.rope = RopeShift(model) if cache_window is not None else None
        generator = None
        if seed is not None:
            generator = torch.Generator(device=model.device).manual_seed(seed)
        self.sampler = Sampler(do_sample, temperature, top_p, generator)
        self.stop_ids = self.chat.stop_ids(model)
        self.speech = speech
        self.record_speech = record_speech
        self.speech_id = speech_token_id(tokenizer) if speech is not None else None
        if self.speech_id is not None:
            # A sampled placeholder ends the piece like a bare EOS (dropped, the turn closed
            # by the policy): written into the dialogue, it would be replaced by speech
            # frames when RL rebuilds the inputs, and the rollout could not be recomputed.
            self.stop_ids = self.stop_ids | {self.speech_id}

    @property
    def lookback(self) -> int:
        """Source elements before its new chunk that a turn reads (a live stream keeps only
        those): a speech turn encodes its chunk with the encoder's left context, a text turn
        reads its chunk alone."""
        return 0 if self.speech is None else self.speech.lookback

    def act(self, states: Sequence[StreamState]) -> list[str]:
        if not states:
            return []
        records = [self._record(s) for s in states]
        if self.speech is None:
            new_tokens = [self._open_turn(rec, s.new_chunk) for rec, s in zip(records, states)]
            embed = None
        else:
            turns = self.speech.turns(states)
            new_tokens = [self._open_turn(rec, text) for rec, (text, _) in zip(records, turns)]
            frames = [[f] for _, f in turns]
            if self.record_speech:
                for rec, (_, f) in zip(records, turns):
                    rec.speech.append(f)

            def embed(ids: torch.Tensor) -> torch.Tensor:
                return speech_inputs_embeds(
                    self.model, self.speech.projector, ids, frames, self.speech_id
                )

        budgets = [
            self.max_final_tokens if s.source_finished else self.max_piece_tokens for s in states
        ]
        cache = gather_rows([rec.kv for rec in records])
        self._bound(cache, records, new_tokens, budgets)
        out = generate(
            self.model,
            cache,
            new_tokens,
            budgets,
            self.stop_ids,
            self.sampler,
            self.chat.pad_id(),
            reserve=self.cache_window or 0,
            embed=embed,
        )
        pieces = []
        for row, (rec, state) in enumerate(zip(records, states)):
            pieces.append(
                self._close_turn(rec, out.tokens[row], out.logprobs[row], out.stopped[row])
            )
            # The cache of a finished episode is dropped; the others keep their row.
            rec.kv = None if state.source_finished else (out.cache, row)
        return pieces

    def _bound(
        self,
        cache: KVBlock | None,
        records: Sequence[DialogueRecord],
        new_tokens: Sequence[Sequence[int]],
        budgets: Sequence[int],
    ) -> None:
        """Drop the oldest turns from the cache rows that this turn would overflow, and
        record per episode how many tokens are out of the cache (``evicted``)."""
        window = self.cache_window
        rows, starts, counts = [], [], []
        for i, (rec, new, budget) in enumerate(zip(records, new_tokens, budgets)):
            done = rec.evicted[-1] if rec.evicted else 0
            cached = cache.lengths[i] if cache is not None else 0
            need = cached + len(new) + budget
            if window is not None and need > window:
                # Candidates: drop every turn before turn k (k >= 1), keeping at least the
                # previous turn, whose end may not be in the cache yet.
                options = [
                    rec.turn_starts[k] - rec.system_len for k in range(1, len(rec.turn_starts) - 1)
                ]
                options = [o for o in options if o > done and rec.kv is not None]
                fits = [o for o in options if need - (o - done) <= window - window // 4]
                if fits:
                    drop = fits[0]
                elif options and need - (options[-1] - done) <= window:
                    drop = options[-1]
                else:
                    least = need - (options[-1] - done if options else 0)
                    raise ConfigError(
                        f"cache_window={window} is too small: the system prompt, the previous "
                        f"turn, this turn and its token budget need {least} tokens; use a "
                        "larger window or smaller token budgets"
                    )
                rows.append(i)
                starts.append(rec.system_len)
                counts.append(drop - done)
                done = drop
            rec.evicted.append(done)
        if rows:
            evict(cache, rows, starts, counts, self.rope)

    def _record(self, state: StreamState) -> DialogueRecord:
        rec = state.memory.get("dialogue")
        if rec is None:
            system = [] if self.system_prompt is None else [system_message(self.system_prompt)]
            rec = state.memory["dialogue"] = DialogueRecord(messages=system)
        return rec

    def _open_turn(self, rec: DialogueRecord, chunk) -> list[int]:
        """Add the user turn and the assistant's generation prompt; returns the tokens the
        cache has not seen (the end of the previous turn, then the new text)."""
        first_new = len(rec.token_ids) - rec.pending
        check = len(rec.turn_starts) < self.chat.CHECKED_TURNS
        self.chat.open_turn(rec, user_message(chunk), check)
        rec.pending = 0
        return rec.token_ids[first_new:]

    def _close_turn(
        self, rec: DialogueRecord, tokens: list[int], logprobs: list[float], stopped: bool
    ) -> str:
        """Record the piece and its end-of-turn token; returns the piece as text."""
        start = len(rec.token_ids)
        fed = len(tokens) - 1  # the cache holds every sampled token but the last
        if stopped and tokens[-1] != self.chat.end_id:
            # Another stop token (e.g. a bare EOS): the turn still ends with the template's.
            tokens, logprobs, stopped = tokens[:-1], logprobs[:-1], False
        piece = tokens[:-1] if stopped else tokens
        self.chat.close_turn(rec, piece, closed=stopped, logprobs=logprobs)
        rec.pending = len(rec.token_ids) - start - fed
        return " ".join(self.chat.decode(piece, skip_special=True).split())

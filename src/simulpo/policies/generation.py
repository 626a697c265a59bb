"""Cached, batched decoding for chat LMs: the core under the LLM policy and translator.

:class:`ChatFormat` renders dialogues through the tokenizer's own chat template and finds
the template's end-of-turn token, so any chat model works.

Rows (one per dialogue) keep their key/value cache between calls in a :class:`KVBlock`:
per-layer tensors of shape ``(rows, heads, length, head_dim)``, left-padded, with a mask
of the real positions. One call to :func:`generate` appends each row's new tokens
(left-padded, so every row's last position is real), then decodes all rows together
until each meets a stop token or its token budget.

Positions: a row's RoPE position is the number of real tokens before it, so padding
(left padding of the new tokens, and the pad fed to rows that stopped while others still
decode) leaves holes in the cache but never shifts positions; the holes are masked out
and :func:`gather_rows` squeezes them away before the next call. Rows from different
blocks, or new rows without a cache, are merged by left-padding.

The last token a row samples is *not* fed to the model (nothing would read its output):
it is returned, and the caller puts it at the front of that row's next new tokens.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from simulpo.errors import ConfigError
from simulpo.stream.dialogue import Message, assistant_message, system_message, user_message

_MARK = "\u2063piece\u2063"  # probe content that no template rewrites


class ChatFormat:
    """Renders dialogues with a tokenizer's chat template and finds its end-of-turn token."""

    def __init__(self, tokenizer) -> None:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ConfigError("the tokenizer has no chat template; the LLM policy needs one")
        self.tokenizer = tokenizer
        self.end_id = self._end_of_turn()
        self.end_text = tokenizer.decode([self.end_id], skip_special_tokens=False)

    def render(self, messages: Sequence[Message], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=generation_prompt
        )

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: Sequence[int], skip_special: bool = False) -> str:
        return self.tokenizer.decode(
            list(ids), skip_special_tokens=skip_special, clean_up_tokenization_spaces=False
        )

    def _end_of_turn(self) -> int:
        """The special token the template puts right after an assistant message's content
        (``<|im_end|>``, ``<|eot_id|>``, ...); the tokenizer's EOS when there is none."""
        text = self.render(
            [system_message(), user_message("x"), assistant_message(_MARK)], generation_prompt=False
        )
        if _MARK in text:
            after = self.encode(text[text.index(_MARK) + len(_MARK) :])
            if after and after[0] in set(self.tokenizer.all_special_ids):
                return after[0]
        if self.tokenizer.eos_token_id is None:
            raise ConfigError("cannot tell the chat template's end-of-turn token, and no EOS token")
        return self.tokenizer.eos_token_id

    def stop_ids(self, model) -> frozenset[int]:
        """End-of-turn, the tokenizer's EOS and the model's generation EOS tokens."""
        ids = {self.end_id}
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        ids.update([eos] if isinstance(eos, int) else list(eos or []))
        return frozenset(ids)

    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else self.end_id


@dataclass
class KVBlock:
    """The key/value cache of several rows, left-padded; ``mask[r, j]`` is True at real tokens."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]
    mask: torch.Tensor  # (rows, length) bool

    @property
    def lengths(self) -> torch.Tensor:
        """Real tokens held per row (= the position of each row's next token)."""
        return self.mask.sum(dim=1)


#: A row of a block: ``(block, index)``, or ``None`` for a dialogue not started yet.
RowHandle = tuple[KVBlock, int] | None


@torch.inference_mode()
def gather_rows(handles: Sequence[RowHandle]) -> KVBlock | None:
    """One compact block holding the given rows in order (holes removed, left-padded).

    Rows may come from several blocks, in any order; ``None`` rows (dialogues not started)
    get an empty, fully masked cache. Returns None when no row has a cache yet.
    """
    groups: list[tuple[KVBlock | None, list[int]]] = []  # runs of rows from one block
    for handle in handles:
        block, row = handle if handle is not None else (None, -1)
        if groups and groups[-1][0] is block:
            groups[-1][1].append(row)
        else:
            groups.append((block, [row]))
    started = [(block, rows) for block, rows in groups if block is not None]
    if not started:
        return None
    length = max(int(block.lengths[rows].max()) for block, rows in started)
    template = started[0][0]
    parts = [
        _compact(block, rows, length) if block is not None else _empty(template, len(rows), length)
        for block, rows in groups
    ]
    layers = [
        (torch.cat([p[0][i][0] for p in parts]), torch.cat([p[0][i][1] for p in parts]))
        for i in range(len(template.layers))
    ]
    return KVBlock(layers, torch.cat([p[1] for p in parts]))


def _empty(template: KVBlock, rows: int, length: int):
    """A fully masked cache for ``rows`` dialogues that have not started."""
    layers = [
        (
            k.new_zeros(rows, k.shape[1], length, k.shape[3]),
            v.new_zeros(rows, v.shape[1], length, v.shape[3]),
        )
        for k, v in template.layers
    ]
    return layers, torch.zeros(rows, length, dtype=torch.bool, device=template.mask.device)


def _compact(block: KVBlock, rows: list[int], length: int):
    """Rows of ``block`` with their real tokens moved to the right end, ``length`` wide."""
    rows = torch.tensor(rows, device=block.mask.device)
    mask = block.mask[rows]
    # A stable sort on the mask puts the holes first and keeps the real tokens in order.
    order = torch.sort(mask.to(torch.int8), dim=1, stable=True).indices
    width = min(length, mask.shape[1])
    index = order[:, mask.shape[1] - width :]
    new_mask = torch.gather(mask, 1, index)
    every_row = len(rows) == mask.shape[0] and bool((rows == torch.arange(len(rows))).all())
    layers = []
    for k, v in block.layers:
        if not every_row:
            k, v = k[rows], v[rows]
        idx = index[:, None, :, None].expand(-1, k.shape[1], -1, k.shape[3])
        layers.append((torch.gather(k, 2, idx), torch.gather(v, 2, idx)))
    if width < length:  # another block holds longer rows: pad on the left
        pad = length - width
        layers = [(F.pad(k, (0, 0, pad, 0)), F.pad(v, (0, 0, pad, 0))) for k, v in layers]
        new_mask = F.pad(new_mask, (pad, 0), value=False)
    return layers, new_mask


@dataclass
class Sampler:
    """Greedy or temperature / nucleus (top-p) sampling, with the log-prob of each choice.

    The log-prob is taken under the distribution actually sampled from: softmax of
    ``logits / temperature`` restricted to the top-p nucleus and renormalized. Greedy
    choices get their log-prob under the plain softmax of the logits.
    """

    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    generator: torch.Generator | None = None

    def __call__(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = logits.float()
        if not self.do_sample:
            logp = torch.log_softmax(logits, dim=-1)
            tokens = logits.argmax(dim=-1)
            return tokens, logp.gather(1, tokens[:, None])[:, 0]
        logp = torch.log_softmax(logits / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_logp, order = logp.sort(dim=-1, descending=True)
            before = sorted_logp.exp().cumsum(dim=-1) - sorted_logp.exp()
            drop = before >= self.top_p  # keeps the smallest prefix reaching top_p (>= 1 token)
            sorted_logp = sorted_logp.masked_fill(drop, float("-inf"))
            logp = torch.full_like(logp, float("-inf")).scatter(1, order, sorted_logp)
            logp = torch.log_softmax(logp, dim=-1)
        tokens = torch.multinomial(logp.exp(), 1, generator=self.generator)[:, 0]
        return tokens, logp.gather(1, tokens[:, None])[:, 0]


@dataclass
class Generated:
    """What :func:`generate` returns: per row the sampled tokens and their log-probs,
    whether the row stopped at a stop token (else it ran out of budget), and the cache
    (which holds everything except each row's last sampled token)."""

    tokens: list[list[int]]
    logprobs: list[list[float]]
    stopped: list[bool]
    cache: KVBlock


@contextmanager
def eval_mode(model) -> Iterator[None]:
    """Dropout off while decoding (log-probs must be those of the deterministic model)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@torch.inference_mode()
def generate(
    model,
    cache: KVBlock | None,
    new_tokens: Sequence[Sequence[int]],
    budgets: Sequence[int],
    stop_ids: set[int] | frozenset[int],
    sampler: Sampler,
    pad_id: int = 0,
) -> Generated:
    """Append ``new_tokens[r]`` to row ``r`` of ``cache``, then sample up to ``budgets[r]`` tokens.

    ``cache`` rows are the rows of this call, in order (see :func:`gather_rows`); every row
    needs at least one new token. Rows stop at the first token in ``stop_ids`` (it is
    returned) or after ``budgets[r]`` tokens; a budget of 0 samples nothing.
    """
    rows = len(new_tokens)
    if cache is not None and cache.mask.shape[0] != rows:
        raise ValueError(f"the cache holds {cache.mask.shape[0]} rows but {rows} rows were given")
    if any(len(t) == 0 for t in new_tokens):
        raise ValueError("every row needs at least one new token")
    device = model.device
    width = max(len(t) for t in new_tokens)
    ids = torch.full((rows, width), pad_id, dtype=torch.long)
    new_mask = torch.zeros(rows, width, dtype=torch.bool)
    for r, t in enumerate(new_tokens):
        ids[r, width - len(t) :] = torch.tensor(t, dtype=torch.long)
        new_mask[r, width - len(t) :] = True
    ids, new_mask = ids.to(device), new_mask.to(device)
    if cache is None:
        past, mask = DynamicCache(), new_mask
        lengths = torch.zeros(rows, dtype=torch.long, device=device)
    else:
        past = DynamicCache(ddp_cache_data=cache.layers)
        mask = torch.cat([cache.mask.to(device), new_mask], dim=1)
        lengths = cache.lengths.to(device)
    positions = (lengths[:, None] + new_mask.long().cumsum(dim=1) - 1).clamp(min=0)

    budget = torch.tensor(list(budgets), device=device)
    stop = torch.tensor(sorted(stop_ids), device=device)
    steps = max(int(budget.max()), 0)
    out = torch.full((rows, steps), pad_id, dtype=torch.long, device=device)
    out_logp = torch.zeros(rows, steps, device=device)
    count = torch.zeros(rows, dtype=torch.long, device=device)
    stopped = torch.zeros(rows, dtype=torch.bool, device=device)
    active = budget > 0
    with eval_mode(model):
        logits = _forward(model, ids, mask, positions, past)  # prefill
        lengths = lengths + new_mask.sum(dim=1)
        for step in range(steps):
            tokens, logp = sampler(logits)
            out[:, step] = torch.where(active, tokens, pad_id)
            out_logp[:, step] = torch.where(active, logp, 0.0)
            count += active
            hit = active & torch.isin(tokens, stop)
            stopped |= hit
            active &= ~hit & (count < budget)
            if not bool(active.any()):
                break
            # Rows still writing feed their token; the others feed a masked pad.
            mask = torch.cat([mask, active[:, None]], dim=1)
            feed = torch.where(active, tokens, pad_id)[:, None]
            logits = _forward(model, feed, mask, lengths[:, None], past)
            lengths = lengths + active

    counts = count.tolist()
    layers = [(layer.keys, layer.values) for layer in past.layers]
    return Generated(
        tokens=[row[:n] for row, n in zip(out.tolist(), counts)],
        logprobs=[row[:n] for row, n in zip(out_logp.tolist(), counts)],
        stopped=stopped.tolist(),
        cache=KVBlock(layers, mask),
    )


def _forward(model, ids, mask, positions, past) -> torch.Tensor:
    """Logits of the last position of each row, the cache ``past`` extended in place."""
    out = model(
        input_ids=ids,
        attention_mask=mask.long(),
        position_ids=positions,
        past_key_values=past,
        use_cache=True,
        logits_to_keep=1,
    )
    return out.logits[:, -1, :]

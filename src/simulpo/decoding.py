"""Cached, batched decoding for chat LMs: the core under the LLM policy and translator.

Dialogues are rendered to tokens by :class:`simulpo.models.chat.ChatFormat`.

Rows (one per dialogue) keep their key/value cache between calls in a :class:`KVBlock`:
per-layer buffers of shape ``(rows, heads, capacity, head_dim)``, allocated with room to
grow. Row ``r`` holds its ``lengths[r]`` tokens at columns ``0 .. lengths[r]-1``, and the
token in column ``j`` has RoPE position ``j``: there are no holes, whatever the other rows
hold. One call to :func:`generate` appends each row's new tokens (fed left-padded, so the
last input of every row is real; the pads are never written to the cache), then decodes
all rows together until each meets a stop token or its token budget. Every token is
written in place at its own row's next column, so a decoding step costs the same at any
length and nothing is ever concatenated or re-gathered; a row that has stopped while
others still decode feeds a pad that is written past its end and never seen.

The attention mask is built here, per row, as a 4-D additive mask ("column ``j`` is
visible to the query at position ``p`` iff ``j <= p``") and handed to the model as is, so
the model's own mask code (which assumes one length for all rows) is bypassed. This needs
the ``sdpa`` or ``eager`` attention of ``transformers``.

:func:`gather_rows` merges rows of several blocks (or new rows) into one block when the
set of episodes changes between calls; when it does not, the block is reused in place.
:func:`evict` drops a span of a row's cache and rotates the keys after it back by the
span's length, so a bounded cache keeps working past its window (standard RoPE only).

The last token a row samples is *not* fed to the model (nothing would read its output):
it is returned, and the caller puts it at the front of that row's next new tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from simulpo.errors import ConfigError

#: cache buffers grow in steps of this many columns (and at least by half their size)
_GROW = 64
#: attention implementations that accept the 4-D mask built here
ATTENTION = ("sdpa", "eager")


@dataclass
class KVBlock:
    """The key/value cache of several rows.

    ``keys[layer]`` and ``values[layer]`` are ``(rows, heads, capacity, head_dim)`` buffers
    (empty lists until the first forward); row ``r`` holds ``lengths[r]`` real tokens in
    its first columns, the rest is scratch. ``lengths`` lives on the host, so no step of
    decoding has to ask the device how long a row is.
    """

    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    capacity: int = 0
    #: captured decoding steps over these buffers (GPU only), by number of rows
    graphs: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def rows(self) -> int:
        return len(self.lengths)

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffers (the memory cost of the cache, scratch included)."""
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    @torch.inference_mode()
    def reserve(self, capacity: int) -> None:
        """Make room for ``capacity`` columns per row (grown by at least half, never shrunk)."""
        if capacity <= self.capacity:
            return
        if self.keys:
            capacity = _round_up(max(capacity, self.capacity * 3 // 2), _GROW)
            self.keys = [_widen(k, capacity) for k in self.keys]
            self.values = [_widen(v, capacity) for v in self.values]
            self.graphs.clear()  # they point at the old buffers
        self.capacity = capacity


def _round_up(x: int, multiple: int) -> int:
    return (x + multiple - 1) // multiple * multiple


def _widen(t: torch.Tensor, capacity: int) -> torch.Tensor:
    # Zeros, not empty memory: masked columns still enter the attention product, and a NaN
    # there would poison the row (0 * NaN is NaN).
    out = t.new_zeros(t.shape[0], t.shape[1], capacity, t.shape[3])
    out[:, :, : t.shape[2]] = t
    return out


#: A row of a block: ``(block, index)``, or ``None`` for a dialogue not started yet.
RowHandle = tuple[KVBlock, int] | None


@torch.inference_mode()
def gather_rows(handles: Sequence[RowHandle]) -> KVBlock | None:
    """One block holding the given rows in order; ``None`` rows (dialogues not started)
    get an empty cache. Returns None when no row has a cache yet.

    When the handles are exactly the rows of one block, in order, that block is returned
    as is (the usual case: the same episodes turn after turn), so nothing is copied.
    """
    blocks = {id(h[0]): h[0] for h in handles if h is not None}
    if not blocks:
        return None
    if len(blocks) == 1 and all(h is not None for h in handles):
        block = handles[0][0]
        if block.rows == len(handles) and all(h[1] == i for i, h in enumerate(handles)):
            return block
    lengths = [h[0].lengths[h[1]] if h is not None else 0 for h in handles]
    capacity = _round_up(max(lengths) + 1, _GROW)
    template = next(iter(blocks.values()))
    out = KVBlock(lengths=lengths, capacity=capacity)
    if not template.keys:  # started blocks always hold buffers; be safe anyway
        return out
    for layer in range(len(template.keys)):
        for name in ("keys", "values"):
            t = getattr(template, name)[layer]
            getattr(out, name).append(t.new_zeros(len(handles), t.shape[1], capacity, t.shape[3]))
    for block in blocks.values():
        dst = [i for i, h in enumerate(handles) if h is not None and h[0] is block]
        src = torch.tensor([handles[i][1] for i in dst], device=template.keys[0].device)
        dst_t = torch.tensor(dst, device=src.device)
        width = min(max(lengths[i] for i in dst), block.capacity)
        for layer in range(len(block.keys)):
            for name in ("keys", "values"):
                getattr(out, name)[layer][dst_t, :, :width] = getattr(block, name)[layer][
                    src, :, :width
                ]
    return out


# ------------------------------------------------------------------ bounded caches (RoPE)

#: model types whose attention applies RoPE to keys before caching them, with the
#: ``rotate_half`` layout of ``transformers``' Llama; and RoPE variants whose frequencies
#: do not depend on the sequence length (so a rotation by -s moves a key back s positions)
ROPE_MODELS = ("llama", "mistral", "qwen2", "qwen3")
ROPE_TYPES = ("default", "linear", "llama3", "yarn")


class RopeShift:
    """Rotates cached keys back by a number of positions (standard RoPE only).

    A key cached at position ``p`` is ``a * R(p) k`` (``a`` the RoPE attention scaling);
    ``R(-s)`` of it is ``a * R(p - s) k``, the key the model would have cached at position
    ``p - s``. This holds for RoPE variants whose frequencies are fixed (``ROPE_TYPES``);
    others (dynamic NTK, LongRoPE) and models without RoPE are refused with an error.
    """

    def __init__(self, model) -> None:
        config = (
            model.config.get_text_config()
            if hasattr(model.config, "get_text_config")
            else model.config
        )
        kind = getattr(config, "model_type", "?")
        rotary = [m for m in model.modules() if hasattr(m, "inv_freq") and hasattr(m, "rope_type")]
        rope_type = rotary[0].rope_type if rotary else None
        if kind not in ROPE_MODELS or len(rotary) != 1 or rope_type not in ROPE_TYPES:
            raise ConfigError(
                f"a bounded cache (cache_window) moves cached keys to new positions, which is "
                f"supported for RoPE models of types {', '.join(ROPE_MODELS)} with rope types "
                f"{', '.join(ROPE_TYPES)}; this model is {kind!r} with rope type {rope_type!r}. "
                "Run it without cache_window."
            )
        self.inv_freq = rotary[0].inv_freq.detach().float().clone()
        head_dim = (
            getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        )
        if 2 * self.inv_freq.numel() != head_dim:
            raise ConfigError(
                f"a bounded cache needs RoPE over the whole head ({head_dim} dims), but this "
                f"model rotates {2 * self.inv_freq.numel()}; run it without cache_window"
            )

    def __call__(self, keys: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """``keys`` (rows, heads, n, d) moved ``shift`` (rows, n) positions back."""
        angle = -shift.float()[..., None] * self.inv_freq.to(keys.device)  # (rows, n, d/2)
        angle = torch.cat([angle, angle], dim=-1)[:, None]  # (rows, 1, n, d)
        k = keys.float()
        half = k.shape[-1] // 2
        rotated = torch.cat([-k[..., half:], k[..., :half]], dim=-1)
        return (k * angle.cos() + rotated * angle.sin()).to(keys.dtype)


@torch.inference_mode()
def evict(
    block: KVBlock,
    rows: Sequence[int],
    starts: Sequence[int],
    counts: Sequence[int],
    rope: RopeShift,
) -> None:
    """Delete columns ``starts[i] .. starts[i]+counts[i]-1`` of row ``rows[i]``, in place.

    The columns after the span move left by ``counts[i]`` and their keys are rotated back
    by as many positions, so they are exactly what the model would have cached had the
    span never been there (up to rounding). Columns before the span are untouched.
    """
    if not rows or not block.keys:
        return
    device = block.keys[0].device
    index = torch.tensor(list(rows), device=device)
    start = torch.tensor(list(starts), device=device)[:, None]
    count = torch.tensor(list(counts), device=device)[:, None]
    width = max(block.lengths[r] for r in rows)
    col = torch.arange(width, device=device)[None]
    moved = col >= start
    src = torch.where(moved, col + count, col).clamp(max=block.capacity - 1)  # (n, width)
    shift = torch.where(moved, count, 0)
    for layer in range(len(block.keys)):
        k, v = block.keys[layer], block.values[layer]
        idx = src[:, None, :, None].expand(-1, k.shape[1], -1, k.shape[3])
        k_new = rope(torch.gather(k[index], 2, idx), shift)
        v_new = torch.gather(v[index], 2, idx)
        k[index, :, :width] = k_new
        v[index, :, :width] = v_new
    for r, n in zip(rows, counts):
        block.lengths[r] -= n


# ------------------------------------------------------------------------------ decoding


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

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """The log-probabilities of the distribution sampled from, ``(rows, vocab)``."""
        logits = logits.float()
        if not self.do_sample:
            return torch.log_softmax(logits, dim=-1)
        logp = torch.log_softmax(logits / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_logp, order = logp.sort(dim=-1, descending=True)
            before = sorted_logp.exp().cumsum(dim=-1) - sorted_logp.exp()
            drop = before >= self.top_p  # keeps the smallest prefix reaching top_p (>= 1 token)
            sorted_logp = sorted_logp.masked_fill(drop, float("-inf"))
            logp = torch.full_like(logp, float("-inf")).scatter(1, order, sorted_logp)
            logp = torch.log_softmax(logp, dim=-1)
        return logp

    def __call__(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logp = self.log_probs(logits)
        if self.do_sample:
            tokens = torch.multinomial(logp.exp(), 1, generator=self.generator)[:, 0]
        else:
            tokens = logits.argmax(dim=-1)
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
    if not model.training:  # the usual case; switching walks every module, not free
        yield
        return
    model.eval()
    try:
        yield
    finally:
        model.train(True)


@torch.inference_mode()
def generate(
    model,
    cache: KVBlock | None,
    new_tokens: Sequence[Sequence[int]],
    budgets: Sequence[int],
    stop_ids: set[int] | frozenset[int],
    sampler: Sampler,
    pad_id: int = 0,
    forced: Sequence[Sequence[int]] | None = None,
    reserve: int = 0,
    cuda_graphs: bool = True,
    embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Generated:
    """Append ``new_tokens[r]`` to row ``r`` of ``cache``, then sample up to ``budgets[r]`` tokens.

    ``cache`` rows are the rows of this call, in order (see :func:`gather_rows`); it is
    extended in place and returned. Every row needs at least one new token. Rows stop at
    the first token in ``stop_ids`` (it is returned) or after ``budgets[r]`` tokens; a
    budget of 0 samples nothing. ``forced[r]``, when given, replaces the choices of row
    ``r`` (teacher forcing; the log-probs are still those of the sampler's distribution).
    ``reserve`` allocates at least that many columns per row up front (a bounded cache
    asks for its whole window, so it never grows). On a GPU, decoding steps replay a
    CUDA graph of one step (``cuda_graphs``), captured once per block and batch shape and
    kept with the block, so a token costs one launch instead of hundreds.

    ``embed``, when given, maps the prefill's input ids ``(rows, width)`` (left-padded
    with ``pad_id``) to the model's input embeddings ``(rows, width, hidden)``: how speech
    turns put encoder features in place of their placeholder tokens. Decoding steps always
    embed sampled ids the usual way.
    """
    rows = len(new_tokens)
    if cache is not None and cache.rows != rows:
        raise ValueError(f"the cache holds {cache.rows} rows but {rows} rows were given")
    if any(len(t) == 0 for t in new_tokens):
        raise ValueError("every row needs at least one new token")
    impl = getattr(model.config, "_attn_implementation", None)
    if impl not in ATTENTION:
        raise ConfigError(
            f"cached decoding builds its own per-row attention mask, which needs the "
            f"{' or '.join(ATTENTION)} attention of transformers; this model uses {impl!r} "
            "(load it with attn_implementation='sdpa')"
        )
    device = model.device
    block = cache if cache is not None else KVBlock(lengths=[0] * rows)
    if forced is not None:
        budgets = [len(f) for f in forced]
    steps = max(budgets, default=0)
    sizes = [len(t) for t in new_tokens]
    width = max(sizes)
    ends = [n + k for n, k in zip(block.lengths, sizes)]  # each row's length after the prefill
    block.reserve(max(reserve, max(ends) + steps))
    kv = _RowCache(block, _num_layers(model))

    ids = torch.full((rows, width), pad_id, dtype=torch.long)
    for r, t in enumerate(new_tokens):
        ids[r, width - len(t) :] = torch.tensor(t, dtype=torch.long)
    ids = ids.to(device)
    lengths = torch.tensor(block.lengths, device=device)
    size = torch.tensor(sizes, device=device)
    # Column of each input in its row's cache (negative for the left pads, never written).
    columns = lengths[:, None] + torch.arange(width, device=device)[None] - (width - size)[:, None]
    real = columns >= lengths[:, None]
    kv.plan(torch.nonzero(real, as_tuple=True), columns[real], max(ends))

    budget = torch.tensor(list(budgets), device=device)
    stop = torch.tensor(sorted(stop_ids), dtype=torch.long, device=device)
    out = torch.full((rows, steps), pad_id, dtype=torch.long, device=device)
    out_logp = torch.zeros(rows, steps, device=device)
    if forced is not None:
        force = torch.full((rows, steps), pad_id, dtype=torch.long)
        for r, f in enumerate(forced):
            force[r, : len(f)] = torch.tensor(list(f), dtype=torch.long)
        force = force.to(device)
    count = torch.zeros(rows, dtype=torch.long, device=device)
    stopped = torch.zeros(rows, dtype=torch.bool, device=device)
    active = budget > 0
    every_row = torch.arange(rows, device=device)
    graph = None
    with eval_mode(model):
        embeds = embed(ids) if embed is not None else None
        logits = _forward(model, ids, columns, kv, embeds)  # prefill
        lengths = lengths + size  # the column of each row's next token
        if cuda_graphs and device.type == "cuda" and steps > 1:
            graph = block.graphs.get(rows)
            if graph is None:
                graph = block.graphs[rows] = _DecodeGraph(model, block, lengths)
        for step in range(steps):
            if forced is not None:
                tokens = force[:, step]
                logp = sampler.log_probs(logits).gather(1, tokens[:, None])[:, 0]
            else:
                tokens, logp = sampler(logits)
            out[:, step] = torch.where(active, tokens, pad_id)
            out_logp[:, step] = torch.where(active, logp, 0.0)
            count += active
            hit = active & torch.isin(tokens, stop)
            stopped |= hit
            active &= ~hit & (count < budget)
            if step == steps - 1 or not bool(active.any()):
                break
            # Every row feeds a token at its next column; rows that are done feed a pad
            # there, which stays past their end (unseen, overwritten by their next turn).
            feed = torch.where(active, tokens, pad_id)[:, None]
            if graph is not None:
                logits = graph(feed, lengths)
            else:
                kv.plan((every_row,), lengths, max(ends) + step + 1)
                logits = _forward(model, feed, lengths[:, None], kv)
            lengths = lengths + active.long()

    counts = count.tolist()
    block.lengths = [e + max(n - 1, 0) for e, n in zip(ends, counts)]
    return Generated(
        tokens=[row[:n] for row, n in zip(out.tolist(), counts)],
        logprobs=[row[:n] for row, n in zip(out_logp.tolist(), counts)],
        stopped=stopped.tolist(),
        cache=block,
    )


def _num_layers(model) -> int:
    config = (
        model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    )
    return config.num_hidden_layers


def _forward(
    model,
    ids: torch.Tensor,
    columns: torch.Tensor,
    kv: _RowCache,
    embeds: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logits of the last input of each row; ``columns`` (rows, width) are the inputs'
    positions (= cache columns; negative for pads), which also give the causal mask.
    ``embeds``, when given, are fed instead of the ids' own embeddings."""
    visible = torch.arange(kv.view, device=ids.device)[None, None] <= columns[:, :, None]
    dtype = model.dtype if model.dtype.is_floating_point else torch.float32
    mask = torch.zeros(visible.shape, dtype=dtype, device=ids.device)
    mask = mask.masked_fill_(~visible, torch.finfo(dtype).min)[:, None]
    inputs = {"input_ids": ids} if embeds is None else {"inputs_embeds": embeds}
    out = model(
        **inputs,
        attention_mask=mask,
        position_ids=columns.clamp(min=0),
        past_key_values=kv,
        use_cache=True,
        logits_to_keep=1,
    )
    return out.logits[:, -1, :]


class _Layer(CacheLayerMixin):
    """A placeholder layer: the data lives in the :class:`KVBlock`, written by the cache."""

    is_sliding = False

    def lazy_initialization(self, key_states, value_states) -> None:  # pragma: no cover
        pass

    def update(self, key_states, value_states, *args, **kwargs):  # pragma: no cover
        raise NotImplementedError

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:  # pragma: no cover
        return query_length, 0

    def get_seq_length(self) -> int:
        return 0

    def get_max_length(self) -> int:
        return -1


class _RowCache(Cache):
    """A ``transformers`` cache over a :class:`KVBlock`: each forward writes the new keys
    and values at the planned ``(row, column)`` places and attends over the first
    ``view`` columns of the buffers."""

    def __init__(self, block: KVBlock, num_layers: int) -> None:
        super().__init__(layers=[_Layer() for _ in range(num_layers)])
        self.block = block
        self.view = 0

    def plan(self, rows: tuple[torch.Tensor, ...], columns: torch.Tensor, view: int) -> None:
        """``rows`` selects the inputs to keep (``(row_index,)`` for one input per row, or
        ``(row_index, input_index)``), ``columns`` where each goes; ``view`` the width read."""
        self.where, self.columns, self.view = rows, columns, view

    def update(self, key_states, value_states, layer_idx: int, *args, **kwargs):
        block = self.block
        if layer_idx == len(block.keys):  # first forward of a new block: allocate
            for t, buffers in ((key_states, block.keys), (value_states, block.values)):
                buffers.append(t.new_zeros(block.rows, t.shape[1], block.capacity, t.shape[3]))
        keys, values = block.keys[layer_idx], block.values[layer_idx]
        # (rows, heads, n, d) -> the kept inputs as (kept, heads, d)
        if len(self.where) == 1:
            new_k, new_v = key_states[:, :, -1], value_states[:, :, -1]
        else:
            new_k = key_states.transpose(1, 2)[self.where]
            new_v = value_states.transpose(1, 2)[self.where]
        keys[self.where[0], :, self.columns] = new_k
        values[self.where[0], :, self.columns] = new_v
        return keys[:, :, : self.view], values[:, :, : self.view]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.view


class _DecodeGraph:
    """One decoding step of every row of a block, captured as a CUDA graph.

    The step attends over the block's whole capacity (a static shape; columns past each
    row's end are masked) and writes each row's new key and value at the column given in
    ``lengths``. Inputs are copied into static tensors and the graph replayed; the logits
    come back in a static tensor, valid until the next replay.
    """

    def __init__(self, model, block: KVBlock, lengths: torch.Tensor) -> None:
        rows, device = block.rows, model.device
        self.feed = torch.zeros(rows, 1, dtype=torch.long, device=device)
        # Capturing runs the step: it writes at each row's next column, which is scratch.
        self.lengths = lengths.clone()
        # The graph holds raw addresses: what it reads must outlive it (the buffers live in
        # the block, which owns this graph; no reference back, so no cycle).
        self.rows = torch.arange(rows, device=device)
        kv = _RowCache(block, _num_layers(model))
        kv.plan((self.rows,), self.lengths, block.capacity)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), eval_mode(model):
            for _ in range(2):  # warm-up outside the graph (lazy inits, autotuning)
                _forward(model, self.feed, self.lengths[:, None], kv)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), eval_mode(model):
            self.logits = _forward(model, self.feed, self.lengths[:, None], kv)

    def __call__(self, feed: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        self.feed.copy_(feed)
        self.lengths.copy_(lengths)
        self.graph.replay()
        return self.logits

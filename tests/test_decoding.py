"""The cached, batched decoding engine checked against uncached forwards of the same tokens."""

import pytest
import torch
from tiny_lm import tiny_chat_lm

from simulpo.decoding import (
    KVBlock,
    RopeShift,
    Sampler,
    evict,
    gather_rows,
    generate,
)
from simulpo.policies.llm import LLMPolicy
from simulpo.stream.loop import run_stream
from simulpo.stream.segmenter import FixedWords

END = 2  # <|im_end|> in the tiny tokenizer (pad, turn start, end of turn)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def lm(one_thread):
    return tiny_chat_lm()


def encode(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def prompts(tokenizer):
    texts = [
        "<|im_start|>user\nthe dog sees a cat<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>user\nbig<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>system\nTranslate.<|im_end|>\n<|im_start|>user\nsmall<|im_end|>\n"
        + "<|im_start|>assistant\n",
        "<|im_start|>user\nriver<|im_end|>\n<|im_start|>assistant\nRI",
    ]
    return [encode(tokenizer, t) for t in texts]


def full_logprobs(model, ids: list[int], temperature: float = 1.0) -> torch.Tensor:
    """log-softmax of an uncached forward over the whole sequence: row i predicts ids[i+1]."""
    with torch.no_grad():
        logits = model(torch.tensor([ids]), use_cache=False).logits[0].float()
    return torch.log_softmax(logits / temperature, dim=-1)


def run_turns(model, rows_turns, budget=6, batched=True):
    """Decode several turns per row; ``rows_turns[r]`` lists row r's new tokens per turn
    (rows join at different turns: None = not started yet). Returns per row the sampled
    tokens and log-probs of every turn."""
    n = len(rows_turns)
    handles = [None] * n
    pending = [[] for _ in range(n)]
    out = [[] for _ in range(n)]
    turns = max(len(t) for t in rows_turns)
    for turn in range(turns):
        live = [r for r in range(n) if turn < len(rows_turns[r]) and rows_turns[r][turn]]
        groups = [live] if batched else [[r] for r in live]
        for group in groups:
            new = [pending[r] + rows_turns[r][turn] for r in group]
            gen = generate(
                model,
                gather_rows([handles[r] for r in group]),
                new,
                [budget] * len(group),
                {END},
                Sampler(),
                pad_id=0,
            )
            for i, r in enumerate(group):
                out[r].append((gen.tokens[i], gen.logprobs[i]))
                pending[r] = gen.tokens[i][-1:]
                handles[r] = (gen.cache, i)
    return out


def test_batched_equals_unbatched_at_different_turns_and_lengths(lm):
    model, tokenizer = lm
    p = prompts(tokenizer)
    follow = [
        encode(tokenizer, f"\n<|im_start|>user\n{w}<|im_end|>\n<|im_start|>assistant\n")
        for w in ("near", "every small dog", "a", "quickly runs")
    ]
    rows = [
        [p[0], follow[0], follow[1], follow[2]],
        [None, p[1], follow[3]],  # joins at the second turn
        [p[2], follow[2], None, follow[0]],  # skips a turn
        [None, None, p[3], follow[1]],
    ]
    together = run_turns(model, rows)
    alone = run_turns(model, rows, batched=False)
    for a, b in zip(together, alone):
        assert [t for t, _ in a] == [t for t, _ in b]
        for (_, la), (_, lb) in zip(a, b):
            assert la == pytest.approx(lb, abs=1e-5)


def test_cached_logprobs_equal_full_forward(lm):
    """Each sampled token's log-prob is that of an uncached forward over the dialogue."""
    model, tokenizer = lm
    p = prompts(tokenizer)
    gen = generate(model, None, p, [8] * len(p), {END}, Sampler(), pad_id=0)
    for prompt, tokens, logprobs in zip(p, gen.tokens, gen.logprobs):
        ids = prompt + tokens
        logp = full_logprobs(model, ids)
        expected = [logp[len(prompt) - 1 + i, t].item() for i, t in enumerate(tokens)]
        assert logprobs == pytest.approx(expected, abs=1e-4)
        assert tokens == logp[len(prompt) - 1 :].argmax(-1)[: len(tokens)].tolist()


@pytest.mark.parametrize("temperature", [0.7, 1.3])
def test_sampled_rollout_logprobs_equal_full_forward_at_temperature(lm, temperature):
    """RL's old log-probs: a full forward over the whole dialogue, log-softmax at the
    sampling temperature, at every token the policy wrote."""
    model, tokenizer = lm
    policy = LLMPolicy(
        model,
        tokenizer,
        do_sample=True,
        temperature=temperature,
        seed=3,
        max_piece_tokens=5,
        max_final_tokens=8,
    )
    sources = [s.split() for s in ("the dog sees a cat", "big house near the river")]
    episodes = run_stream(sources, policy, FixedWords(1), progress=False)
    for ep in episodes:
        rec = ep.memory["dialogue"]
        logp = full_logprobs(model, rec.token_ids, temperature)
        for i, (tok, masked, lp) in enumerate(zip(rec.token_ids, rec.policy_mask, rec.logprobs)):
            if masked:
                assert lp == pytest.approx(logp[i - 1, tok].item(), abs=1e-4)


def test_forced_tokens_get_the_samplers_logprobs(lm):
    model, tokenizer = lm
    p = prompts(tokenizer)
    free = generate(model, None, p, [6] * len(p), {END}, Sampler(), pad_id=0)
    forced = generate(model, None, p, [0] * len(p), set(), Sampler(), pad_id=0, forced=free.tokens)
    assert forced.tokens == free.tokens
    for a, b in zip(forced.logprobs, free.logprobs):
        assert a == pytest.approx(b, abs=1e-6)


def test_cache_grows_in_place_and_is_reused(lm):
    model, tokenizer = lm
    p = prompts(tokenizer)
    first = generate(model, None, p, [4] * len(p), {END}, Sampler(), pad_id=0)
    block = first.cache
    assert block.lengths == [len(x) + len(t) - 1 for x, t in zip(p, first.tokens)]
    same = gather_rows([(block, i) for i in range(len(p))])
    assert same is block  # the same episodes in the same order: no copy
    subset = gather_rows([(block, 2), (block, 0)])
    assert subset is not block and subset.lengths == [block.lengths[2], block.lengths[0]]
    for layer in range(len(block.keys)):
        for new, old in ((0, 2), (1, 0)):
            n = block.lengths[old]
            assert torch.equal(subset.keys[layer][new, :, :n], block.keys[layer][old, :, :n])


def test_evicted_keys_equal_a_cache_built_without_the_span(lm):
    """Dropping a span and rotating the keys after it gives the first layer's cache of the
    shorter text (deeper layers' keys also carry what the tokens attended to, which the
    eviction keeps, as InfiniSST does); the columns before the span stay untouched."""
    model, tokenizer = lm
    head = encode(tokenizer, "<|im_start|>system\nTranslate.<|im_end|>\n")
    middle = encode(tokenizer, "<|im_start|>user\nthe old river<|im_end|>\n")
    tail = encode(tokenizer, "<|im_start|>user\nbig dog<|im_end|>\n<|im_start|>assistant\n")
    long = generate(model, None, [head + middle + tail], [0], {END}, Sampler()).cache
    before = [k[0, :, : len(head)].clone() for k in long.keys]
    short = generate(model, None, [head + tail], [0], {END}, Sampler()).cache
    evict(long, [0], [len(head)], [len(middle)], RopeShift(model))
    assert long.lengths == short.lengths
    n = short.lengths[0]
    assert torch.allclose(long.keys[0][0, :, :n], short.keys[0][0, :, :n], atol=1e-5)
    assert torch.allclose(long.values[0][0, :, :n], short.values[0][0, :, :n], atol=1e-6)
    for layer, k in enumerate(before):
        assert torch.equal(long.keys[layer][0, :, : len(head)], k)


def test_unsupported_positions_are_refused_for_a_bounded_cache():
    from transformers import GPT2Config, GPT2LMHeadModel

    from simulpo.errors import ConfigError

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    with pytest.raises(ConfigError, match="without cache_window"):
        RopeShift(model)


def test_empty_block_properties():
    block = KVBlock(lengths=[0, 0])
    assert block.rows == 2 and block.nbytes == 0


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
def test_cuda_graph_steps_equal_eager_steps(lm):
    import copy

    model, tokenizer = lm
    model = copy.deepcopy(model).to("cuda")
    p = prompts(tokenizer)
    runs = {}
    for graphs in (True, False):
        first = generate(model, None, p, [6] * 4, {END}, Sampler(), cuda_graphs=graphs)
        follow = [
            t[-1:] + encode(tokenizer, "\n<|im_start|>user\nnear<|im_end|>\n") for t in first.tokens
        ]
        again = generate(model, first.cache, follow, [9] * 4, {END}, Sampler(), cuda_graphs=graphs)
        assert bool(first.cache.graphs) == graphs
        runs[graphs] = (first, again)
    for a, b in zip(runs[True], runs[False]):
        assert a.tokens == b.tokens
        for x, y in zip(a.logprobs, b.logprobs):
            assert x == pytest.approx(y, abs=1e-4)


@cuda
def test_cuda_rollouts_equal_cpu_rollouts(lm):
    import copy

    model, tokenizer = lm
    gpu = copy.deepcopy(model).to("cuda")
    sources = [s.split() for s in ("the dog sees a cat", "big house", "every old river runs")]
    out = {}
    for name, m in (("cpu", model), ("cuda", gpu)):
        policy = LLMPolicy(m, tokenizer, max_piece_tokens=5, max_final_tokens=8, cache_window=200)
        episodes = run_stream(sources * 3, policy, FixedWords(1), progress=False)
        out[name] = [e.memory["dialogue"].token_ids for e in episodes]
    assert out["cpu"] == out["cuda"]

import math

import pytest
import torch
from tiny_lm import build_tokenizer, tiny_chat_lm

from simulpo.decoding import Sampler
from simulpo.errors import ConfigError, SimulpoError
from simulpo.policies.llm import LLMPolicy
from simulpo.stream.dialogue import user_message
from simulpo.stream.episode import Episode
from simulpo.stream.loop import StreamState, run_stream
from simulpo.stream.segmenter import FixedWords, RandomMerge

SOURCES = [
    "the dog sees a cat",
    "big house",
    "the old river runs near every small house quickly",
    "a cat runs",
    "every big dog sees the small old cat near the river",
]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def lm(one_thread):
    return tiny_chat_lm()


class Capture:
    """Wraps a policy to keep every episode's state (run_stream returns episodes only)."""

    def __init__(self, policy):
        self.policy = policy
        self.name = policy.name
        self.states: dict[int, StreamState] = {}

    def act(self, states):
        self.states.update({s.episode.index: s for s in states})
        return self.policy.act(states)


def run(policy, sources=SOURCES, segmenter=None, batch_size=256):
    capture = Capture(policy)
    episodes = run_stream(
        [s.split() for s in sources],
        capture,
        segmenter or FixedWords(1),
        batch_size=batch_size,
        progress=False,
    )
    return episodes, [capture.states[e.index].memory["dialogue"] for e in episodes]


def encode(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("budget", [8, 2])
def test_cached_turns_equal_full_recomputation(lm, budget):
    model, tokenizer = lm
    policy = LLMPolicy(model, tokenizer, max_piece_tokens=budget, max_final_tokens=12)
    episodes, records = run(policy)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for episode, rec in zip(episodes, records):
        # Append-only: the ids held are the tokenizer's encoding of the rendered dialogue
        # (character-level: any split encodes the same), up to its last end-of-turn token.
        full = tokenizer.apply_chat_template(rec.messages, tokenize=False)
        assert full.endswith("<|im_end|>\n")
        assert rec.token_ids == encode(tokenizer, full[: -len("\n")])
        assert len(rec.piece_spans) == len(episode.chunks)
        for t, (start, stop) in enumerate(rec.piece_spans):
            # The prompt of turn t is the rendered dialogue up to its user turn...
            prompt = tokenizer.apply_chat_template(
                rec.messages[: 2 + 2 * t], tokenize=False, add_generation_prompt=True
            )
            assert rec.token_ids[:start] == encode(tokenizer, prompt)
            # ...and a fresh uncached greedy generation from it writes the same piece.
            last = t == len(episode.chunks) - 1
            gen = model.generate(
                torch.tensor([rec.token_ids[:start]]),
                attention_mask=torch.ones(1, start, dtype=torch.long),
                max_new_tokens=12 if last else budget,
                do_sample=False,
                eos_token_id=end,
                pad_token_id=tokenizer.pad_token_id,
                use_cache=False,
            )[0, start:].tolist()
            piece = rec.token_ids[start:stop]
            assert piece[-1] == end
            assert gen == (piece[:-1] if rec.truncated[t] else piece)


def test_some_pieces_wait_stop_and_truncate(lm):
    """The tiny model exercises all three ways a turn ends, or the tests above prove little."""
    model, tokenizer = lm
    episodes, records = run(LLMPolicy(model, tokenizer, max_piece_tokens=4, max_final_tokens=12))
    pieces = [p for e in episodes for p in e.pieces]
    truncated = [t for r in records for t in r.truncated]
    assert "" in pieces
    assert any(truncated) and not all(truncated)


def test_truncated_piece_is_closed_and_dialogue_goes_on(lm):
    model, tokenizer = lm
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    episodes, records = run(LLMPolicy(model, tokenizer, max_piece_tokens=1, max_final_tokens=3))
    for episode, rec in zip(episodes, records):
        assert len(episode.pieces) == len(episode.chunks)
        for t, ((start, stop), truncated) in enumerate(zip(rec.piece_spans, rec.truncated)):
            assert rec.token_ids[stop - 1] == end
            if truncated:  # the budget's sampled tokens, then the added end of turn
                assert stop - start == (3 if t == len(episode.chunks) - 1 else 1) + 1
                assert rec.policy_mask[start] and not rec.policy_mask[stop - 1]
        for t, (_, stop) in enumerate(rec.piece_spans[:-1]):  # next user turn follows
            chunk = user_message(episode.chunks[t + 1].content)["content"]
            nxt = encode(tokenizer, "\n<|im_start|>user\n" + chunk)
            assert rec.token_ids[stop : stop + len(nxt)] == nxt


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_batched_turns_equal_episodes_run_alone(lm, attention):
    model, tokenizer = lm
    model.set_attn_implementation(attention)
    segmenter = RandomMerge(FixedWords(1), 1, 3, seed=4)
    policy = LLMPolicy(model, tokenizer, max_piece_tokens=6, max_final_tokens=10)
    together, rec_together = run(policy, segmenter=segmenter)
    segmenter = RandomMerge(FixedWords(1), 1, 3, seed=4)
    alone, rec_alone = run(policy, segmenter=segmenter, batch_size=1)
    assert [e.to_instance() for e in together] == [e.to_instance() for e in alone]
    for a, b in zip(rec_together, rec_alone):
        assert a.token_ids == b.token_ids
        assert a.policy_mask == b.policy_mask
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)
    model.set_attn_implementation("sdpa")


def test_episodes_may_join_leave_and_reorder_between_turns(lm):
    """act() gets any subset of episodes in any order: caches of different turns are merged."""
    model, tokenizer = lm
    policy = LLMPolicy(model, tokenizer, max_piece_tokens=5, max_final_tokens=8)
    sources = [s.split() for s in SOURCES[:4]]

    def states():
        return [
            StreamState(Episode(i, src, FixedWords(2).split(src), len(src)))
            for i, src in enumerate(sources)
        ]

    def step(group):
        group = [s for s in group if s.turn < len(s.episode.chunks)]
        for s in group:
            s.source_read.append(s.new_chunk)
        for s, piece in zip(group, policy.act(group)):
            s.episode.write(piece, s.delay)
            s.turn += 1

    mixed = states()
    step([mixed[0], mixed[1]])
    step([mixed[2], mixed[1], mixed[0]])  # a new episode joins; order changes
    step([mixed[3], mixed[0]])  # another joins; episode 1 skips a turn
    while any(s.turn < len(s.episode.chunks) for s in mixed):
        step(mixed[::-1])
    for s in states():
        while s.turn < len(s.episode.chunks):
            step([s])
        m = mixed[s.episode.index]
        assert m.episode.pieces == s.episode.pieces
        assert m.memory["dialogue"].token_ids == s.memory["dialogue"].token_ids


def test_sampling_is_seeded_and_logprobs_belong_to_policy_tokens(lm):
    model, tokenizer = lm

    def sample(seed):
        policy = LLMPolicy(model, tokenizer, do_sample=True, seed=seed, max_piece_tokens=6)
        return run(policy)

    episodes, records = sample(7)
    again, records_again = sample(7)
    other, _ = sample(8)
    greedy, _ = run(LLMPolicy(model, tokenizer, max_piece_tokens=6))
    assert [e.pieces for e in episodes] == [e.pieces for e in again]
    assert [r.logprobs for r in records] == [r.logprobs for r in records_again]
    assert [e.pieces for e in episodes] != [e.pieces for e in greedy]
    assert [e.pieces for e in episodes] != [e.pieces for e in other]
    for rec in records:
        assert len(rec.token_ids) == len(rec.policy_mask) == len(rec.logprobs)
        # The mask marks exactly the assistant pieces and the end-of-turn tokens sampled,
        # found here independently through the template: piece t starts where the
        # rendered prompt of turn t ends and spans the encoding of its text.
        expected = [False] * len(rec.token_ids)
        for t, truncated in enumerate(rec.truncated):
            prompt = tokenizer.apply_chat_template(
                rec.messages[: 2 + 2 * t], tokenize=False, add_generation_prompt=True
            )
            start = len(encode(tokenizer, prompt))
            n = len(encode(tokenizer, rec.messages[2 + 2 * t]["content"]))
            expected[start : start + n + (not truncated)] = [True] * (n + (not truncated))
        assert rec.policy_mask == expected
        for logp, masked in zip(rec.logprobs, rec.policy_mask):
            assert math.isfinite(logp) and logp <= 0.0
            if not masked:
                assert logp == 0.0


def test_sampled_logprobs_are_those_of_the_tempered_distribution():
    torch.manual_seed(0)
    logits = torch.randn(4, 11)
    gen = torch.Generator().manual_seed(0)
    tokens, logp = Sampler(True, temperature=0.7, generator=gen)(logits)
    expected = torch.log_softmax(logits / 0.7, dim=-1).gather(1, tokens[:, None])[:, 0]
    assert torch.allclose(logp, expected)
    # A tiny nucleus keeps only the most likely token: greedy, with probability 1.
    tokens, logp = Sampler(True, top_p=1e-6, generator=gen)(logits)
    assert tokens.tolist() == logits.argmax(-1).tolist() and torch.allclose(logp, torch.zeros(4))
    greedy, logp = Sampler()(logits)
    assert greedy.tolist() == logits.argmax(-1).tolist()
    assert torch.allclose(logp, torch.log_softmax(logits, -1).max(-1).values)


def test_run_stream_end_to_end_records_delays(lm):
    model, tokenizer = lm
    segmenter = RandomMerge(FixedWords(1), 1, 3, seed=1)
    episodes, records = run(LLMPolicy(model, tokenizer, max_piece_tokens=6), segmenter=segmenter)
    for episode, rec in zip(episodes, records):
        chunk_ends = [c.end for c in episode.chunks]
        expected = [end for piece, end in zip(episode.pieces, chunk_ends) for _ in piece.split()]
        assert episode.delays == expected
        assert episode.prediction == " ".join(p for p in episode.pieces if p)
        assert episode.to_instance()["prediction_length"] == len(episode.delays)
        assert rec.kv is None  # the cache is released when the episode ends
        raw = [m["content"] for m in rec.messages[2::2]]
        visible = [tokenizer.decode(encode(tokenizer, t), skip_special_tokens=True) for t in raw]
        assert [" ".join(t.split()) for t in visible] == episode.pieces


def test_template_that_rewrites_history_is_refused(lm):
    model, _ = lm
    tokenizer = build_tokenizer()
    # Shows only the latest user turn: not append-only, so the cache cannot be reused.
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] != 'user' or loop.index == messages|length %}"
        "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
        "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\\n{% endif %}"
    )
    with pytest.raises(SimulpoError, match="not append-only"):
        run(LLMPolicy(model, tokenizer, max_piece_tokens=3), sources=["a b c"])


def test_a_window_larger_than_the_dialogue_changes_nothing(lm):
    model, tokenizer = lm
    plain, rec_plain = run(LLMPolicy(model, tokenizer, max_piece_tokens=5, max_final_tokens=8))
    windowed, rec_windowed = run(
        LLMPolicy(model, tokenizer, max_piece_tokens=5, max_final_tokens=8, cache_window=4096)
    )
    assert [e.pieces for e in plain] == [e.pieces for e in windowed]
    for a, b in zip(rec_plain, rec_windowed):
        assert a.token_ids == b.token_ids and a.logprobs == b.logprobs
        assert b.evicted == [0] * len(b.piece_spans)


class CacheProbe(Capture):
    """Records the cache of the (one) episode after every turn."""

    def __init__(self, policy):
        super().__init__(policy)
        self.bytes, self.lengths, self.held = [], [], []

    def act(self, states):
        pieces = super().act(states)
        rec = states[0].memory["dialogue"]
        if rec.kv is not None:
            block, row = rec.kv
            self.bytes.append(block.nbytes)
            self.lengths.append(block.lengths[row])
            # what the record says the cache holds: all tokens but the evicted and pending
            self.held.append(len(rec.token_ids) - rec.pending - rec.evicted[-1])
        return pieces


def test_bounded_cache_stays_flat_over_a_500_turn_stream(lm):
    model, tokenizer = lm
    words = [WORD for _ in range(100) for WORD in ("the", "dog", "sees", "a", "cat")]
    window = 256
    policy = LLMPolicy(
        model, tokenizer, max_piece_tokens=4, max_final_tokens=8, cache_window=window
    )
    probe = CacheProbe(policy)
    (episode,) = run_stream([words], probe, FixedWords(1), progress=False)
    rec = episode.memory["dialogue"]
    assert len(episode.pieces) == 500 and len(probe.bytes) == 499
    assert len(set(probe.bytes)) == 1  # the buffers hold exactly the window from turn one
    assert probe.bytes[0] == 2 * 2 * 2 * window * 8 * 4  # K+V, layers, kv heads, head dim, fp32
    assert max(probe.lengths) <= window and probe.lengths == probe.held
    # The record keeps the whole dialogue; the window slid many times over it.
    assert len(rec.token_ids) > 20 * window
    assert rec.evicted == sorted(rec.evicted) and rec.evicted[-1] > 19 * window
    for t, dropped in enumerate(rec.evicted):  # only whole turns after the system prompt go
        assert dropped == 0 or rec.system_len + dropped in rec.turn_starts[:t]
    # It goes on writing past the window (positions never exceed it), with finite log-probs.
    assert any(episode.pieces[-50:]) and all(math.isfinite(x) for x in rec.logprobs)
    # Without a window the same stream's cache grows with the dialogue.
    probe = CacheProbe(LLMPolicy(model, tokenizer, max_piece_tokens=4, max_final_tokens=8))
    run_stream([words[:100]], probe, FixedWords(1), progress=False)
    assert probe.lengths[-1] > window and probe.bytes[-1] > probe.bytes[0]


def test_a_window_too_small_for_one_turn_is_refused(lm):
    model, tokenizer = lm
    policy = LLMPolicy(model, tokenizer, max_piece_tokens=4, max_final_tokens=8, cache_window=60)
    with pytest.raises(ConfigError, match="cache_window=60 is too small"):
        run(policy, sources=["the dog sees a cat near the river"])

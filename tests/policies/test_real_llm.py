"""The LLM policy on a real pretrained model (SmolLM2-135M-Instruct: Llama architecture,
standard RoPE, its own chat template): the bounded cache past its window."""

import math

import pytest
from real_models import smollm2

from simulpo.policies.llm import LLMPolicy
from simulpo.stream.loop import run_stream
from simulpo.stream.segmenter import FixedWords

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

WORDS = [
    "in",
    "the",
    "beginning",
    "god",
    "created",
    "the",
    "heaven",
    "and",
    "the",
    "earth",
    "and",
    "the",
    "earth",
    "was",
    "without",
    "form",
    "and",
    "void",
    "and",
    "darkness",
    "was",
    "upon",
    "the",
    "face",
    "of",
    "the",
    "deep",
]


def stream(window):
    model, tokenizer = smollm2()
    policy = LLMPolicy(
        model, tokenizer, max_piece_tokens=3, max_final_tokens=6, cache_window=window
    )
    (episode,) = run_stream([WORDS], policy, FixedWords(1), progress=False)
    return episode, episode.memory["dialogue"]


def test_bounded_cache_on_a_real_rope_model():
    plain, rec_plain = stream(None)
    windowed, rec = stream(192)
    first_evicted = next(t for t, e in enumerate(rec.evicted) if e)
    # the window slid at least twice within this 27-turn stream, a few turns in
    assert 4 <= first_evicted and len(set(rec.evicted)) >= 3
    # until then the windowed run is the unbounded one, token for token
    cut = rec.piece_spans[first_evicted - 1][1]
    assert rec.token_ids[:cut] == rec_plain.token_ids[:cut]
    assert windowed.pieces[:first_evicted] == plain.pieces[:first_evicted]
    # past the window it goes on writing, within the window, with finite log-probs
    assert len(windowed.pieces) == len(WORDS) and any(windowed.pieces[first_evicted:])
    assert all(math.isfinite(x) for x in rec.logprobs)
    assert len(rec.token_ids) > 192  # the record keeps the whole dialogue
    for t, dropped in enumerate(rec.evicted):  # whole turns after the system prompt go
        assert dropped == 0 or rec.system_len + dropped in rec.turn_starts[:t]

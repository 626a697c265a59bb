import pytest
import torch
from tiny_lm import tiny_chat_lm

from simulpo.policies import WaitK
from simulpo.stream.dialogue import offline_messages
from simulpo.stream.loop import run_stream
from simulpo.stream.segmenter import FixedWords
from simulpo.translators.llm import LLMTranslator

SOURCES = [
    ["the", "dog", "sees", "a", "cat"],
    ["big", "house"],
    ["the", "old", "river", "runs", "near", "every", "small", "house", "quickly"],
    [],
]


@pytest.fixture(scope="module")
def lm():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # fastest for a model this small
    yield tiny_chat_lm()
    torch.set_num_threads(threads)


def reference(model, tokenizer, source, prefix, max_new_tokens):
    """Units written after ``prefix`` by plain uncached greedy ``generate`` on one prompt."""
    prompt = tokenizer.apply_chat_template(
        offline_messages(" ".join(source)), tokenize=False, add_generation_prompt=True
    ) + " ".join(prefix)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=end,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=False,
    )[0, ids.shape[1] :]
    text = tokenizer.decode(out, skip_special_tokens=True)
    return (" ".join(prefix) + text).split()[len(prefix) :]


def test_translate_batch_equals_one_by_one_and_plain_generate(lm):
    model, tokenizer = lm
    translator = LLMTranslator(model, tokenizer, max_new_tokens=24)
    batch = translator.translate_batch(SOURCES)
    assert batch == [translator.translate(s) for s in SOURCES]
    assert batch == [reference(model, tokenizer, s, [], 24) for s in SOURCES]
    assert any(batch)


def test_continue_batch_writes_on_after_the_forced_prefix(lm):
    model, tokenizer = lm
    translator = LLMTranslator(model, tokenizer, max_new_tokens=16, batch_size=2)
    prefixes = [["THE", "DOG"], [], ["THE"], ["X"]]
    conts = translator.continue_batch(SOURCES, prefixes)
    assert conts == [reference(model, tokenizer, s, p, 16) for s, p in zip(SOURCES, prefixes)]


def test_wait_k_over_the_llm_translator_runs_through_the_loop(lm):
    model, tokenizer = lm
    translator = LLMTranslator(model, tokenizer, max_new_tokens=12)
    episodes = run_stream(SOURCES[:3], WaitK(translator, 2), FixedWords(1), progress=False)
    for episode in episodes:
        assert len(episode.delays) == len(episode.prediction.split())
        assert episode.delays == sorted(episode.delays)
        n = len(episode.chunks)
        # wait-2: unit i (0-based) is written once min(i + 2, n) words are read.
        assert all(d >= min(i + 2, n) for i, d in enumerate(episode.delays))

"""Chat tokenizers (and random tiny LMs over them) for the tests that must hold for every
chat template: the mask-equality test (tests/train/test_chat_masks.py) runs on each entry
of :data:`CHAT_MODELS`.

``tests/fixtures/<name>/tokenizer_config.json`` holds a real model's chat template and
special tokens (written by hand from the public ``tokenizer_config.json`` of the model;
``added_tokens_decoder`` is left out, its ids belong to the real vocabulary).
:func:`fixture_tokenizer` puts them on a small byte-level BPE trained here on the bundled
synthetic corpus: the real template and specials, a vocabulary small enough for a random
2-layer model. To add a template, add a fixture folder (or a factory that loads an
installed model's tokenizer) to :data:`CHAT_MODELS`. Two entries are real installed models
(tests/real_models.py): SmolLM2-135M-Instruct, always (scripts/setup.sh --test installs
it), and the Qwen2.5-1.5B's tokenizer on a random LM, where that model is installed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import real_models
from tiny_lm import random_qwen2, tiny_chat_lm
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from simulpo.data.synthetic import generate_corpus

FIXTURES = Path(__file__).parent / "fixtures"


@cache
def _corpus() -> tuple[str, ...]:
    pairs = generate_corpus(300, seed=3)
    return tuple(t for p in pairs for t in (p.source, p.target))


def fixture_tokenizer(name: str, vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A small byte-level BPE with the chat template and special tokens of fixture ``name``."""
    config = json.loads((FIXTURES / name / "tokenizer_config.json").read_text())
    roles = {k: config.get(k) for k in ("bos_token", "eos_token", "pad_token", "unk_token")}
    extra = [t for t in config.get("additional_special_tokens", []) if t not in roles.values()]
    specials = list(dict.fromkeys([t for t in roles.values() if t] + extra))
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        **{k: v for k, v in roles.items() if v},
        extra_special_tokens=extra,
        chat_template=config["chat_template"],
        clean_up_tokenization_spaces=False,
    )


def _fixture_model(name: str) -> Callable[[], tuple]:
    def build():
        tokenizer = fixture_tokenizer(name)
        return random_qwen2(tokenizer).eval(), tokenizer

    return build


#: name -> a factory of ``(model, tokenizer)``; the model only needs to run, not to be good
CHAT_MODELS: dict[str, Callable[[], tuple]] = {
    "tiny-chatml": tiny_chat_lm,
    "qwen2.5-instruct": _fixture_model("qwen2.5-instruct"),
    "llama-3-instruct": _fixture_model("llama-3-instruct"),
    # the real SmolLM2-135M-Instruct, model and tokenizer (installed by setup.sh --test)
    "smollm2-135m-instruct": real_models.smollm2,
}
if real_models.is_installed(real_models.QWEN):  # the real Qwen2.5 tokenizer, where installed
    CHAT_MODELS["qwen2.5-1.5b-instruct-tokenizer"] = real_models.qwen_tokenizer_on_a_random_lm

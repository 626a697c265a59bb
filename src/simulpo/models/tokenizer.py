"""A small byte-level BPE tokenizer trained on the bundled corpora, with simulpo's chat format.

Byte-level BPE (GPT-2 style: every byte is in the base alphabet, no normalizer) encodes any
text and decodes it back exactly — accents, punctuation, tabs, newlines, repeated spaces.
The special tokens and the ChatML template come from :mod:`simulpo.models.chat`, so the
tokenizer is a drop-in ``transformers`` tokenizer: ``apply_chat_template`` renders the
dialogue format and ``save_pretrained`` / ``AutoTokenizer.from_pretrained`` round-trip it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from simulpo.errors import ConfigError
from simulpo.models.chat import CHAT_TEMPLATE, END_OF_TURN, PAD, SPECIAL_TOKENS, TURN_START
from simulpo.stream.dialogue import OFFLINE_SYSTEM_PROMPT, SYSTEM_PROMPT

#: the chat scaffolding every dialogue repeats (role names, system prompts), fed to the BPE
#: trainer beside the corpus so it gets its own merges instead of costing 4 tokens a word.
_SCAFFOLD = ["system\n", "user\n", "assistant\n", SYSTEM_PROMPT, OFFLINE_SYSTEM_PROMPT]
#: one scaffold copy per this many corpus texts: about as often as real dialogues show it.
_SCAFFOLD_EVERY = 4
_BYTE_ALPHABET = 256


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 2000, out_dir: str | Path | None = None
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer of ``vocab_size`` tokens on ``texts``.

    The vocabulary holds the 3 special tokens (ids 0, 1, 2: pad, turn start, end of turn),
    the 256 byte symbols, then the learned merges. ``eos_token`` is the end of turn (the
    token an assistant piece stops at), ``pad_token`` the pad; there is no BOS, as in
    ChatML. The result is saved with ``save_pretrained`` when ``out_dir`` is given.
    """
    minimum = len(SPECIAL_TOKENS) + _BYTE_ALPHABET + 1
    if vocab_size < minimum:
        raise ConfigError(
            f"vocab_size must be at least {minimum} (specials + 256 bytes + 1), got {vocab_size}"
        )
    bpe = Tokenizer(models.BPE())
    # add_prefix_space=False: the first word of a turn is encoded as written, so the text
    # decodes back byte for byte; the regex splits words, numbers and punctuation first.
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    counter = _Counter(texts)
    bpe.train_from_iterator(_with_scaffold(counter), trainer)
    if counter.n == 0:
        raise ConfigError("cannot train a tokenizer on no text: the corpus is empty")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=END_OF_TURN,
        pad_token=PAD,
        extra_special_tokens=[TURN_START],
        chat_template=CHAT_TEMPLATE,
        # the default clean-up would drop spaces before punctuation: no exact round trip
        clean_up_tokenization_spaces=False,
        padding_side="right",
    )
    if out_dir is not None:
        tokenizer.save_pretrained(str(out_dir))
    return tokenizer


class _Counter:
    """Wraps an iterable of texts, counting them as they go by (for the empty-corpus check)."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.texts = texts
        self.n = 0

    def __iter__(self) -> Iterator[str]:
        for text in self.texts:
            self.n += 1
            yield text


def _with_scaffold(texts: Iterable[str]) -> Iterator[str]:
    for i, text in enumerate(texts):
        yield text
        if i % _SCAFFOLD_EVERY == 0:
            yield from _SCAFFOLD

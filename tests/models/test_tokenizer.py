"""The byte-level BPE tokenizer: exact round trips, special tokens, ChatML, save/load."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from simulpo.data.synthetic import generate_corpus
from simulpo.errors import ConfigError
from simulpo.models.chat import CHAT_TEMPLATE, END_OF_TURN, PAD, TURN_START
from simulpo.models.tokenizer import train_tokenizer

SPANISH = [
    "Y dijo Dios: Sea la luz; y fué la luz.",
    "¿Quién es éste que viene de Edom, con vestidos bermejos?",
    "El niño comió pan con aceite; «¡qué bueno!», dijo él.",
]


def corpus() -> list[str]:
    pairs = generate_corpus(200, seed=3)
    return [p.source for p in pairs] + [p.target for p in pairs] + SPANISH * 5


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(corpus(), vocab_size=500)


@pytest.mark.parametrize(
    "text",
    [
        "the big dog does not see a small cat",
        "Y dijo Dios: Sea la luz; y fué la luz.",
        "Él vió á Jerusalem… «¿Qué tal?» — ¡ñandú!",
        "two  spaces,\ttab,\nnew line\r\nand trailing space ",
        "  leading spaces, digits 1234567 and 3.14, symbols @#$%^&*()[]{}",
        "unseen scripts: 你好 Привет مرحبا 🙂",
        "",
    ],
)
def test_round_trip_is_exact(tok, text):
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text


def test_special_tokens_and_ids(tok):
    assert tok.convert_tokens_to_ids([PAD, TURN_START, END_OF_TURN]) == [0, 1, 2]
    assert tok.pad_token == PAD and tok.pad_token_id == 0
    assert tok.eos_token == END_OF_TURN and tok.eos_token_id == 2
    assert tok.bos_token is None
    assert len(tok) == 500
    # a special token in text is one token, never split into bytes
    ids = tok.encode(f"a{END_OF_TURN}b", add_special_tokens=False)
    assert ids[1] == 2 and len(ids) == 3
    # no BOS/EOS is added behind the caller's back
    assert tok.encode("a b", add_special_tokens=True) == tok.encode("a b", add_special_tokens=False)


def test_chat_template_gives_chatml(tok):
    messages = [
        {"role": "system", "content": "Translate."},
        {"role": "user", "content": "the dog"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "sees"},
        {"role": "assistant", "content": "toba hon"},
    ]
    expected = (
        "<|im_start|>system\nTranslate.<|im_end|>\n"
        "<|im_start|>user\nthe dog<|im_end|>\n"
        "<|im_start|>assistant\n<|im_end|>\n"
        "<|im_start|>user\nsees<|im_end|>\n"
        "<|im_start|>assistant\ntoba hon<|im_end|>\n"
    )
    assert tok.chat_template == CHAT_TEMPLATE
    assert tok.apply_chat_template(messages, tokenize=False) == expected
    prompt = tok.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert prompt == (
        "<|im_start|>system\nTranslate.<|im_end|>\n<|im_start|>user\nthe dog<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    # the rendered dialogue decodes back to itself, special tokens included
    ids = tok.encode(expected, add_special_tokens=False)
    assert tok.decode(ids) == expected


def test_chat_scaffold_gets_its_own_tokens(tok):
    # role names are in every dialogue: the trainer sees them, so they are not spelled by bytes
    assert len(tok.encode("assistant\n", add_special_tokens=False)) <= 2
    assert len(tok.encode("user\n", add_special_tokens=False)) <= 2


def test_save_and_load(tmp_path):
    texts = corpus()
    tok = train_tokenizer(iter(texts), vocab_size=400, out_dir=tmp_path / "tok")  # any iterable
    loaded = AutoTokenizer.from_pretrained(tmp_path / "tok")
    text = "Él vió á Jerusalem, the big dog.\n"
    assert loaded.encode(text, add_special_tokens=False) == tok.encode(
        text, add_special_tokens=False
    )
    assert loaded.decode(loaded.encode(text, add_special_tokens=False)) == text
    assert loaded.chat_template == CHAT_TEMPLATE
    assert (loaded.eos_token, loaded.pad_token) == (END_OF_TURN, PAD)
    assert TURN_START in loaded.all_special_tokens


def test_bad_arguments():
    with pytest.raises(ConfigError, match="vocab_size"):
        train_tokenizer(["a b c"], vocab_size=100)
    with pytest.raises(ConfigError, match="empty"):
        train_tokenizer([], vocab_size=300)


def test_training_is_deterministic():
    a = train_tokenizer(corpus(), vocab_size=450).backend_tokenizer.to_str()
    b = train_tokenizer(corpus(), vocab_size=450).backend_tokenizer.to_str()
    assert a == b

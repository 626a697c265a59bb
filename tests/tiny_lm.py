"""A tiny chat LM for the LLM policy and translator tests, built locally in about a second.

The tokenizer is character-level (a BPE model with no merges) with simpulo's ChatML
template and special tokens, so any generated token sequence decodes to a text that
encodes back to the same tokens: the append-only checks can then demand exact equality.
The model is a 2-layer Qwen2 (hidden 32) trained for a few steps on upper-casing
dialogues, enough that it closes its turns with the end-of-turn token on its own.
"""

from __future__ import annotations

import string
from functools import cache

import torch
from tokenizers import Tokenizer, decoders, models
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from simulpo.models.chat import CHAT_TEMPLATE, END_OF_TURN, PAD, SPECIAL_TOKENS
from simulpo.stream.dialogue import episode_messages, offline_messages

CHARS = string.ascii_letters + string.digits + " \n.,!?'-:;"
WORDS = [
    "the",
    "a",
    "dog",
    "cat",
    "sees",
    "big",
    "small",
    "old",
    "house",
    "river",
    "runs",
    "near",
    "every",
    "quickly",
]


def build_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + list(CHARS))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=END_OF_TURN)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _training_texts(tokenizer, n: int = 8) -> list[str]:
    gen = torch.Generator().manual_seed(0)
    texts = []
    for i in range(n):
        length = int(torch.randint(3, 8, (1,), generator=gen))
        words = [WORDS[int(j)] for j in torch.randint(len(WORDS), (length,), generator=gen)]
        if i % 3 == 0:
            messages = offline_messages(" ".join(words), " ".join(words).upper())
        else:  # wait-1 dialogues: each word is a chunk, its upper-case form the piece
            pieces = [""] + [w.upper() for w in words[:-1]]
            pieces[-1] = " ".join(w.upper() for w in words[-2:])
            messages = episode_messages([[w] for w in words], pieces)
        texts.append(tokenizer.apply_chat_template(messages, tokenize=False))
    return texts


def random_qwen2(tokenizer, seed: int = 0) -> Qwen2ForCausalLM:
    """A random 2-layer Qwen2 (hidden 32) over ``tokenizer``'s vocabulary, stopping at its EOS."""
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return Qwen2ForCausalLM(config)


@cache
def tiny_chat_lm(steps: int = 100) -> tuple[Qwen2ForCausalLM, PreTrainedTokenizerFast]:
    """The shared tiny model and tokenizer (trained once per test session, in eval mode)."""
    tokenizer = build_tokenizer()
    model = random_qwen2(tokenizer)
    batch = tokenizer(_training_texts(tokenizer), padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # faster for a model this small, and immune to a busy machine
    try:
        model.train()
        for _ in range(steps):
            loss = model(**batch, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return model, tokenizer


def tiny_whisper_config(encoder_layers: int = 1):
    """A random Whisper this small: 16-dim frames, 80 mels, Whisper's 1500 positions."""
    from transformers import WhisperConfig

    return WhisperConfig(
        d_model=16, encoder_layers=encoder_layers, encoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=32,
        vocab_size=100, num_mel_bins=80, max_source_positions=1500, max_target_positions=32,
        pad_token_id=1, bos_token_id=2, eos_token_id=2, decoder_start_token_id=3,
    )  # fmt: skip


def save_tiny_whisper(path) -> None:
    """A random tiny Whisper checkpoint (seeded) at ``path``, as a user's local model."""
    from transformers import WhisperModel

    torch.manual_seed(0)
    WhisperModel(tiny_whisper_config()).save_pretrained(path)


def tiny_speech_parts():
    """A speech policy's parts: a copy of the tiny chat LM with the ``<|speech|>`` token,
    a random 1-layer Whisper encoder (16-dim frames) and a projector whose embeddings are
    about as large as the token embeddings. Fresh on every call (tests train them)."""
    import copy

    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from simulpo.models.projector import ProjectorConfig, SpeechProjector, add_speech_token
    from simulpo.models.speech_encoder import SpeechEncoder

    lm = copy.deepcopy(tiny_chat_lm()[0])  # the shared model keeps its vocabulary
    tokenizer = build_tokenizer()
    speech_id = add_speech_token(tokenizer, lm)
    torch.manual_seed(0)
    encoder = SpeechEncoder(WhisperEncoder(tiny_whisper_config()), name="tiny")
    projector = SpeechProjector(ProjectorConfig(16, 32, stack=4), seed=1).eval()
    with torch.no_grad():
        projector.mlp[2].weight.mul_(0.3)
    return lm.eval(), tokenizer, encoder, projector, speech_id

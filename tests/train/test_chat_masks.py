"""SFT trains on exactly what the policy writes, on every chat template of CHAT_MODELS.

Random dialogues (text and speech user turns; empty pieces = wait, pieces closed by the
model, pieces cut by their token budget) are written by the real LLM policy through the
rollout engine, its sampler forced to a scripted piece per turn. The same dialogues as
SFT data (their messages, the cut pieces marked ``"truncated": true``) must tokenize to
the same token ids, and SFT's label mask must be the rollout's policy mask, token for
token. Nothing here is computed by the code under test on both sides except the shared
renderer: the script is drawn here, the rollout comes from decoding, the SFT tokens from
``tokenize_dialogue``.
"""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch
from chat_models import CHAT_MODELS
from tiny_lm import WORDS, tiny_whisper_config

from simulpo.decoding import Sampler
from simulpo.models.projector import (
    ProjectorConfig,
    SpeechProjector,
    add_speech_token,
    speech_content,
)
from simulpo.models.speech_encoder import ChunkSpec, SpeechEncoder
from simulpo.policies.llm import LLMPolicy
from simulpo.policies.speech_front import SpeechFrontEnd
from simulpo.stream.dialogue import SYSTEM_PROMPT, user_message
from simulpo.stream.segmenter import FixedMilliseconds, FixedWords, RandomMerge
from simulpo.train.rollout import sample_groups
from simulpo.train.sft import IGNORE, tokenize_dialogue

BUDGET, FINAL = 4, 7
SPEC = ChunkSpec(chunk_ms=240, context_ms=480)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class Script(Sampler):
    """The sampler, forced: each call writes the next queued token (one row at a time)."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: list[int] = []

    def __call__(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert logits.shape[0] == 1, "one episode at a time"
        token = torch.tensor([self.queue.pop(0)])
        return token, self.log_probs(logits).gather(1, token[:, None])[:, 0]


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def draw_piece(rng: random.Random, tokenizer, budget: int) -> tuple[list[int], bool]:
    """A piece's tokens and whether the model closes it: empty (wait), shorter than the
    budget (closed), or exactly the budget (cut: the policy closes it). Its tokens are
    the tokenizer's own encoding of its text, as SFT encodes the text."""
    kind = rng.choice(["wait", "closed", "cut"])
    if kind == "wait":
        return [], True
    while True:
        ids = encode(tokenizer, " ".join(rng.choices(WORDS, k=8)).upper())
        n = budget if kind == "cut" else rng.randint(1, budget - 1)
        ids = ids[:n]
        if encode(tokenizer, tokenizer.decode(ids)) == ids:
            return ids, kind != "cut"


def script_for(
    rng, tokenizer, end_id, turns: int
) -> tuple[list[int], list[tuple[list[int], bool]]]:
    """The sampler's queue for an episode of ``turns`` turns, and its pieces."""
    queue, pieces = [], []
    for t in range(turns):
        ids, closed = draw_piece(rng, tokenizer, FINAL if t == turns - 1 else BUDGET)
        queue += ids + ([end_id] if closed else [])
        pieces.append((ids, closed))
    return queue, pieces


def sft_messages(tokenizer, system, users, pieces) -> list[dict]:
    """The episode as an SFT dialogue: its user contents and its pieces as text."""
    messages = [] if system is None else [{"role": "system", "content": system}]
    for user, (ids, closed) in zip(users, pieces):
        messages.append({"role": "user", "content": user})
        piece = {"role": "assistant", "content": tokenizer.decode(ids)}
        if not closed:
            piece["truncated"] = True
        messages.append(piece)
    return messages


def assert_same_tokens_and_masks(tokenizer, rollout, messages, queue) -> None:
    # the mask holds exactly the tokens the (forced) sampler wrote, in order
    assert [i for i, m in zip(rollout.token_ids, rollout.policy_mask) if m] == queue
    ids, labels = tokenize_dialogue(tokenizer, messages)
    assert ids == rollout.token_ids, (
        f"SFT tokens {tokenizer.decode(ids)!r}\nrollout {tokenizer.decode(rollout.token_ids)!r}"
    )
    assert [y != IGNORE for y in labels] == rollout.policy_mask


@pytest.fixture(scope="module", params=sorted(CHAT_MODELS))
def chat_model(request, one_thread):
    return CHAT_MODELS[request.param]()


@pytest.mark.parametrize("system", [SYSTEM_PROMPT, None])
def test_sft_labels_are_the_rollout_policy_mask_on_text(chat_model, system):
    model, tokenizer = chat_model
    policy = LLMPolicy(
        model, tokenizer, max_piece_tokens=BUDGET, max_final_tokens=FINAL, system_prompt=system
    )
    policy.sampler = script = Script()
    rng = random.Random(0)
    kinds = set()
    for n in range(8):
        source = rng.choices(WORDS, k=rng.randint(1, 7))
        turns = len(merges(n).split(source))
        queue, pieces = script_for(rng, tokenizer, policy.chat.end_id, turns)
        script.queue = list(queue)
        (rollout,) = sample_groups(policy, [source], [None], merges(n), 1, batch_size=1)
        assert script.queue == [], "the policy wrote the whole script"
        users = [user_message(c.content)["content"] for c in rollout.episode.chunks]
        messages = sft_messages(tokenizer, system, users, pieces)
        assert_same_tokens_and_masks(tokenizer, rollout, messages, queue)
        kinds |= {"wait" if not ids else ("closed" if closed else "cut") for ids, closed in pieces}
    assert kinds == {"wait", "closed", "cut"}
    # the template's own system prompt handling is in the tokens: ours, or its default
    text = tokenizer.decode(rollout.token_ids)
    if system is not None:
        assert system in text
    elif "You are Qwen" in tokenizer.chat_template:
        assert "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." in text


def merges(seed: int) -> RandomMerge:
    """Chunks of 1 to 3 words, the same cut for the same seed."""
    return RandomMerge(FixedWords(1), 1, 3, seed=seed)


def speech_parts(model, tokenizer):
    """Copies of the LM and tokenizer with the speech placeholder, a random tiny Whisper
    encoder (16-dim frames) and a projector into the LM."""
    lm, tokenizer = copy.deepcopy(model), copy.deepcopy(tokenizer)
    add_speech_token(tokenizer, lm)
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    torch.manual_seed(0)
    encoder = SpeechEncoder(WhisperEncoder(tiny_whisper_config()), name="tiny")
    hidden = lm.get_input_embeddings().embedding_dim
    projector = SpeechProjector(ProjectorConfig(16, hidden, stack=4), seed=1).eval()
    return lm.eval(), tokenizer, SpeechFrontEnd(encoder, projector, SPEC)


def test_sft_labels_are_the_rollout_policy_mask_on_speech(chat_model):
    lm, tokenizer, front = speech_parts(*chat_model)
    policy = LLMPolicy(lm, tokenizer, max_piece_tokens=BUDGET, max_final_tokens=FINAL, speech=front)
    policy.sampler = script = Script()
    rng = random.Random(1)
    audio = np.random.default_rng(0)
    for _ in range(4):
        source = audio.normal(0, 0.1, rng.randint(2000, 20000)).astype(np.float32)
        segmenter = FixedMilliseconds(SPEC.chunk_ms)
        turns = len(segmenter.split(source))
        queue, pieces = script_for(rng, tokenizer, policy.chat.end_id, turns)
        script.queue = list(queue)
        (rollout,) = sample_groups(policy, [source], [None], segmenter, 1, batch_size=1)
        assert script.queue == []
        # SFT's speech turns: as many placeholders as the projector makes of the turn's frames
        users = [speech_content(front.projector.num_embeddings(len(f))) for f in rollout.speech]
        messages = sft_messages(tokenizer, SYSTEM_PROMPT, users, pieces)
        assert_same_tokens_and_masks(tokenizer, rollout, messages, queue)

import math
import shutil

import numpy as np
import torch
from tiny_lm import build_tokenizer
from transformers import Qwen2Config, Qwen2ForCausalLM

from simulpo.models.projector import SPEECH_TOKEN
from simulpo.train.sft import SFTConfig
from simulpo.train.speech_sft import (
    AlignConfig,
    align_projector,
    fill_speech_turns,
    new_projector,
    train_speech_sft,
    word_targets,
)

DIM = 6


def tiny_lm(tokenizer):
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    return Qwen2ForCausalLM(config)


def data():
    rng = np.random.default_rng(0)
    features = {f"u{k}": rng.normal(size=(30 + 7 * k, DIM)).astype(np.float16) for k in range(4)}
    records = []
    for k in range(4):
        end = 20.0 * len(features[f"u{k}"])
        messages = [
            {"role": "system", "content": "go"},
            {"role": "user", "content": "", "speech": [0.0, 240.0]},
            {"role": "assistant", "content": "ab"[k % 2]},
            {"role": "user", "content": "", "speech": [240.0, end]},
            {"role": "assistant", "content": "cd"},
        ]
        records.append({"utterance": f"u{k}", "messages": messages})
    return records, features


def test_speech_turns_hold_their_rows_and_placeholders():
    records, features = data()
    tokenizer = build_tokenizer()
    projector = new_projector(DIM, tiny_lm(tokenizer), stack=4)
    dialogues, speech = fill_speech_turns(records, features, projector)
    for k, (messages, turns) in enumerate(zip(dialogues, speech)):
        frames = features[f"u{k}"]
        np.testing.assert_array_equal(turns[0], frames[:12])  # 240 ms = 12 frames of 20 ms
        np.testing.assert_array_equal(turns[1], frames[12:])
        users = [m["content"] for m in messages if m["role"] == "user"]
        assert users == [SPEECH_TOKEN * 3, SPEECH_TOKEN * math.ceil((len(frames) - 12) / 4)]
        assert "speech" not in messages[1]


def fresh():
    tokenizer = build_tokenizer()
    lm = tiny_lm(tokenizer)
    return lm, tokenizer, new_projector(DIM, lm, stack=4, seed=1)


def test_dialogue_stage_resumes_exactly(tmp_path):
    records, features = data()
    config = SFTConfig(lr=1e-2, epochs=2, batch_tokens=256, max_length=256, log_every=0)
    lm, tokenizer, projector = fresh()
    train_speech_sft(lm, tokenizer, projector, records, features, None, config,
                     tmp_path / "once", progress=False)  # fmt: skip
    lm2, tokenizer2, projector2 = fresh()
    train_speech_sft(lm2, tokenizer2, projector2, records, features, None, config,
                     tmp_path / "killed", progress=False)  # fmt: skip
    # as if killed after the first epoch: only its checkpoint is left
    checkpoints = sorted((tmp_path / "killed" / "checkpoints").iterdir())
    assert len(checkpoints) == 2
    shutil.rmtree(checkpoints[-1])
    shutil.rmtree(tmp_path / "killed" / "final")
    # a new process starts from fresh weights: resuming restores the checkpoint's
    lm3, tokenizer3, projector3 = fresh()
    train_speech_sft(lm3, tokenizer3, projector3, records, features, None, config,
                     tmp_path / "killed", progress=False)  # fmt: skip
    for a, b in zip(projector.parameters(), projector3.parameters()):
        torch.testing.assert_close(a, b)
    for a, b in zip(lm.parameters(), lm3.parameters()):
        torch.testing.assert_close(a, b)
    fresh_projector = fresh()[2]
    assert not all(
        torch.equal(a, b) for a, b in zip(projector.parameters(), fresh_projector.parameters())
    )


def word_utterance(words, starts):
    from simulpo.data.speech import SpeechUtterance

    return SpeechUtterance(
        "w0", " ".join(words), "x", None, 0.0, 1.0, "en-us", 175, list(starts)
    )  # fmt: skip


def test_word_targets_name_the_word_spoken_at_each_embedding_centre():
    tokenizer = build_tokenizer()  # character level: a word's token is its first letter
    projector = new_projector(DIM, tiny_lm(tokenizer), stack=4)  # 80 ms per embedding
    utt = word_utterance(["dog", "cat", "river"], [0, 300, 700])
    targets = word_targets(utt, tokenizer, projector, frames=50)  # 1 s: 13 embeddings
    # centres 40, 120, 200, 280 ms: dog; 360 ... 680: cat; 760 ... 1000: river
    letters = "dddd" + "ccccc" + "rrrr"
    assert tokenizer.convert_ids_to_tokens(targets.tolist()) == list(letters)


def test_stage1_aligns_the_projector_to_the_lm_embeddings_of_the_spoken_words():
    tokenizer = build_tokenizer()
    lm = tiny_lm(tokenizer)
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    projector = new_projector(DIM, lm, stack=2, seed=1)
    # Every frame of a word carries that word's own random vector: a learnable truth.
    rng = np.random.default_rng(0)
    vocab = ["dog", "cat", "river", "house", "big"]
    vectors = {w: rng.normal(size=DIM) for w in vocab}
    utterances, features = [], {}
    for k in range(40):
        words = list(rng.choice(vocab, size=4))
        utt = word_utterance(words, [0, 200, 400, 600])
        utt.id = f"u{k}"
        features[utt.id] = np.repeat([vectors[w] for w in words], 10, axis=0).astype(np.float16)
        utterances.append(utt)
    config = AlignConfig(epochs=100, lr=1e-2, batch_utterances=8)
    result = align_projector(projector, lm, tokenizer, utterances[:32], features,
                             utterances[32:], config, progress=False)  # fmt: skip
    assert result["dev_accuracy"] == 1.0
    for k, v in lm.state_dict().items():  # the LM is untouched
        torch.testing.assert_close(v, before[k])

import math
import shutil

import numpy as np
import torch
from tiny_lm import build_tokenizer
from transformers import Qwen2Config, Qwen2ForCausalLM

from simulpo.models.projector import SPEECH_TOKEN, load_speech_model
from simulpo.train.sft import SFTConfig
from simulpo.train.speech_sft import fill_speech_turns, new_projector, train_speech_sft

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


def test_projector_stage_trains_the_projector_only_and_saves_both(tmp_path):
    records, features = data()
    lm, tokenizer, projector = fresh()
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    proj_before = [p.clone() for p in projector.parameters()]
    config = SFTConfig(lr=1e-2, epochs=2, batch_tokens=512, max_length=256, log_every=0)
    result = train_speech_sft(
        lm, tokenizer, projector, records, features, records, "projector", config, tmp_path,
        progress=False,
    )  # fmt: skip
    after = lm.state_dict()
    # the LM is frozen (its embedding matrix only grew by the placeholder's row)
    for k, v in before.items():
        torch.testing.assert_close(after[k][: len(v)], v)
    assert any(not torch.equal(a, b) for a, b in zip(proj_before, projector.parameters()))
    assert all(p.requires_grad for p in lm.parameters())  # unfrozen again for what follows
    _lm2, _, projector2 = load_speech_model(result["final_dir"])
    for a, b in zip(projector.parameters(), projector2.parameters()):
        torch.testing.assert_close(a, b)


def test_dialogue_stage_resumes_exactly(tmp_path):
    records, features = data()
    config = SFTConfig(lr=1e-2, epochs=2, batch_tokens=256, max_length=256, log_every=0)
    lm, tokenizer, projector = fresh()
    train_speech_sft(lm, tokenizer, projector, records, features, None, "dialogue", config,
                     tmp_path / "once", progress=False)  # fmt: skip
    lm2, tokenizer2, projector2 = fresh()
    train_speech_sft(lm2, tokenizer2, projector2, records, features, None, "dialogue", config,
                     tmp_path / "killed", progress=False)  # fmt: skip
    # as if killed after the first epoch: only its checkpoint is left
    checkpoints = sorted((tmp_path / "killed" / "checkpoints").iterdir())
    assert len(checkpoints) == 2
    shutil.rmtree(checkpoints[-1])
    shutil.rmtree(tmp_path / "killed" / "final")
    # a new process starts from fresh weights: resuming restores the checkpoint's
    lm3, tokenizer3, projector3 = fresh()
    train_speech_sft(lm3, tokenizer3, projector3, records, features, None, "dialogue", config,
                     tmp_path / "killed", progress=False)  # fmt: skip
    for a, b in zip(projector.parameters(), projector3.parameters()):
        torch.testing.assert_close(a, b)
    for a, b in zip(lm.parameters(), lm3.parameters()):
        torch.testing.assert_close(a, b)
    fresh_projector = fresh()[2]
    assert not all(torch.equal(a, b) for a, b in zip(projector.parameters(), fresh_projector.parameters()))

"""The installed real models load offline, by name, and are what their packages claim."""

import json

import numpy as np
import pytest
import torch
from real_models import SMOLLM2, WHISPER_BASE, require, smollm2

from simulpo.models.lm import load_model
from simulpo.models.projector import (
    ProjectorConfig,
    SpeechLM,
    SpeechProjector,
    add_speech_token,
    speech_content,
    speech_inputs_embeds,
)
from simulpo.models.registry import MODELS
from simulpo.models.speech_encoder import ChunkSpec, SpeechEncoder
from simulpo.models.store import MANIFEST


def test_smollm2_is_a_real_llama_with_its_chat_template():
    folder = require(SMOLLM2)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["sha256"] == {p.name: p.sha256 for p in MODELS[SMOLLM2].parts}
    assert sorted(p.name for p in folder.glob("*.safetensors")) == ["model.safetensors"]
    model, tokenizer = smollm2()
    config = model.config
    # SmolLM2-135M as published: 30 layers, hidden 576, 9 heads over 3 KV heads, 49152 tokens
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("llama", 30, 576)
    assert (config.num_attention_heads, config.num_key_value_heads) == (9, 3)
    assert config.vocab_size == 49152 and model.dtype == torch.float32
    assert not hasattr(config, "quantization_config")
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_smollm2_answers_like_the_published_model():
    # a wrong dequantization or tensor layout would not answer this (greedy, deterministic)
    model, tokenizer = smollm2()
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids.shape[1] :])


def test_smollm2_takes_lora_by_name():
    model, _ = load_model(SMOLLM2, lora=True, lora_r=2)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_whisper_base_loads_by_name_matches_ctranslate2_and_feeds_a_projector():
    ctranslate2 = pytest.importorskip("ctranslate2")
    folder = require(WHISPER_BASE)
    encoder = SpeechEncoder.load(WHISPER_BASE)
    # Whisper base: 6 encoder layers of width 512 over 80 mel bins
    assert encoder.dim == 512 and encoder.n_mels == 80 and len(encoder.encoder.layers) == 6
    t = np.arange(round(3.12 * 16000)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype(np.float32)
    mel = encoder.log_mel(audio)
    reference = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32")
    expected = np.array(
        reference.encode(ctranslate2.StorageView.from_array(mel[None].numpy()), to_cpu=True)
    )[0]
    ours = encoder.encode_mel(mel).numpy()
    assert ours.shape == expected.shape == (156, 512)
    np.testing.assert_allclose(ours, expected, atol=2e-3 * np.abs(expected).max())
    # two chunks' frames, projected, take a SmolLM2 user turn's placeholders
    frames = encoder.encode_chunks(audio, ChunkSpec(chunk_ms=1120, context_ms=2000))
    chunks = [frames[:56], frames[56:112]]
    lm, tokenizer = load_model(SMOLLM2)
    speech_id = add_speech_token(tokenizer, lm)
    projector = SpeechProjector(ProjectorConfig(input_dim=512, output_dim=576, stack=4))
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": speech_content(28)}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )["input_ids"]  # fmt: skip
    assert (ids == speech_id).sum() == 28
    with torch.inference_mode():
        logits = SpeechLM(lm, projector, speech_id)(ids, speech=[chunks]).logits
        embeds = speech_inputs_embeds(lm, projector, ids, [chunks], speech_id)
        expected = projector(chunks)
    assert logits.shape == (1, ids.shape[1], len(tokenizer)) and torch.isfinite(logits).all()
    torch.testing.assert_close(embeds[ids == speech_id], expected)

"""Tiny LMs: building, atomic save + load, load errors, LoRA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import BertConfig, T5Config

from simulpo.data.synthetic import generate_corpus
from simulpo.errors import SimulpoError
from simulpo.models.lm import (
    add_lora,
    atomic_write_dir,
    build_tiny_lm,
    count_parameters,
    load_model,
    save_model,
)
from simulpo.models.tokenizer import train_tokenizer

SMALL = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "max_positions": 128}


@pytest.fixture(scope="module")
def tok():
    pairs = generate_corpus(200, seed=3)
    return train_tokenizer([p.source for p in pairs] + [p.target for p in pairs], vocab_size=400)


def batch(tok) -> torch.Tensor:
    text = tok.apply_chat_template(
        [{"role": "user", "content": "the big dog"}, {"role": "assistant", "content": "toba vuro"}],
        tokenize=False,
    )
    return torch.tensor([tok.encode(text, add_special_tokens=False)])


@torch.no_grad()
def logits(model, ids: torch.Tensor) -> torch.Tensor:
    model.eval()
    return model(input_ids=ids).logits


def test_default_size_and_config(tok):
    model = build_tiny_lm(tok)
    cfg = model.config
    assert cfg.model_type == "qwen2"
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (128, 4, 4)
    assert cfg.vocab_size == len(tok)
    assert cfg.tie_word_embeddings
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert (cfg.eos_token_id, cfg.pad_token_id) == (tok.eos_token_id, tok.pad_token_id)
    assert model.generation_config.eos_token_id == tok.eos_token_id
    # 4 layers x (4 h^2 attention + q, k, v biases + 3 h x 384 MLP + 2 norms) + final norm
    # + (vocab x h) shared embeddings
    h, v = 128, len(tok)
    assert count_parameters(model) == 4 * (4 * h * h + 3 * h + 3 * h * 384 + 2 * h) + h + v * h
    assert 0.5e6 < count_parameters(model) < 3e6


def test_same_seed_same_weights(tok):
    a, b = build_tiny_lm(tok, seed=1, **SMALL), build_tiny_lm(tok, seed=1, **SMALL)
    c = build_tiny_lm(tok, seed=2, **SMALL)
    wa, wb, wc = (next(m.parameters()) for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_save_load_round_trip_gives_identical_logits(tok, tmp_path, arch):
    model = build_tiny_lm(tok, arch=arch, **SMALL)
    assert model.config.model_type == arch
    save_model(model, tok, tmp_path / "m")
    loaded, loaded_tok = load_model(tmp_path / "m")
    assert type(loaded) is type(model)
    ids = batch(tok)
    assert torch.equal(logits(model, ids), logits(loaded, ids))
    assert loaded_tok.chat_template == tok.chat_template
    assert loaded.get_output_embeddings().weight is loaded.get_input_embeddings().weight
    # the saved model generates with the standard API and stops at the end of turn
    out = loaded.generate(ids[:, :-3], max_new_tokens=3, do_sample=False)
    assert out.shape[1] <= ids.shape[1]


def test_save_replaces_an_old_dir_atomically(tok, tmp_path):
    target = tmp_path / "m"
    save_model(build_tiny_lm(tok, seed=1, **SMALL), tok, target)
    (target / "stale.txt").write_text("from the old version")
    new = build_tiny_lm(tok, seed=2, **SMALL)
    save_model(new, tok, target)
    assert not (target / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary left behind
    loaded, _ = load_model(target)
    assert torch.equal(logits(loaded, batch(tok)), logits(new, batch(tok)))


def test_failed_write_keeps_the_old_dir(tmp_path):
    target = tmp_path / "out"
    atomic_write_dir(target, lambda d: (d / "a.txt").write_text("old"))

    def crash(d: Path) -> None:
        (d / "a.txt").write_text("half-written new")
        raise KeyboardInterrupt  # killed mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write_dir(target, crash)
    assert (target / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_load_errors(tok, tmp_path):
    with pytest.raises(SimulpoError, match="no such model directory"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SimulpoError, match="no config.json"):
        load_model(tmp_path / "empty")
    BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    ).save_pretrained(tmp_path / "bert")
    with pytest.raises(SimulpoError, match="bidirectional encoder"):
        load_model(tmp_path / "bert")
    T5Config(d_model=32, num_layers=1, num_heads=2, d_ff=64).save_pretrained(tmp_path / "t5")
    with pytest.raises(SimulpoError, match="encoder-decoder"):
        load_model(tmp_path / "t5")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_garbage_weights_are_a_clear_error_naming_the_file(tok, tmp_path, damage):
    weights = save_model(build_tiny_lm(tok, **SMALL), tok, tmp_path / "m") / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(b"not weights " * 9 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(SimulpoError, match=r"cannot read the model weights \(model.safetensors\)"):
        load_model(tmp_path / "m")


def test_tokenizer_without_chat_template_is_refused(tok, tmp_path):
    save_model(build_tiny_lm(tok, **SMALL), tok, tmp_path / "m")
    (tmp_path / "m" / "chat_template.jinja").unlink()
    with pytest.raises(SimulpoError, match="no chat template") as err:
        load_model(tmp_path / "m")
    assert "tokenizer.chat_template = " in str(err.value)  # says how to fix it


def test_lora_trains_only_the_adapters(tok, tmp_path):
    save_model(build_tiny_lm(tok, **SMALL), tok, tmp_path / "base")
    model, _ = load_model(tmp_path / "base", lora=True, lora_r=4)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    # every linear layer of every block is adapted, the output head is not
    adapted = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n in trainable if "lora_A" in n}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert not any("lm_head" in n for n in trainable)

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = batch(tok)
    model.train()
    for _ in range(3):
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= trainable

    # saving merges the adapters: the merged model computes what the LoRA model computes
    save_model(model, tok, tmp_path / "merged")
    merged, _ = load_model(tmp_path / "merged")
    assert torch.allclose(logits(merged, ids), logits(model, ids), atol=1e-5)
    assert any("lora_" in n for n, _ in model.named_parameters())  # the original keeps adapters


def test_add_lora_on_llama(tok):
    model = add_lora(build_tiny_lm(tok, arch="llama", **SMALL), r=2)
    assert 0 < count_parameters(model, trainable_only=True) < count_parameters(model) / 5

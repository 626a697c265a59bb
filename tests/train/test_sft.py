"""SFT: assistant-only labels for any chat template, batching, training, checkpoints, resume."""

from __future__ import annotations

import copy
import json
import random
import shutil

import numpy as np
import pytest
import torch
from kill import Killed, killed_after_checkpoint

from simulpo.data.synthetic import generate_corpus
from simulpo.errors import ConfigError, SimulpoError
from simulpo.models.lm import build_tiny_lm, load_model
from simulpo.models.tokenizer import train_tokenizer
from simulpo.stream.dialogue import episode_messages, offline_messages
from simulpo.train import sft
from simulpo.train.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from simulpo.train.sft import (
    IGNORE,
    SFTConfig,
    length_grouped_batches,
    load_dialogues,
    tokenize_dialogue,
    tokenize_dialogues,
    train_sft,
)

SMALL = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "max_positions": 256}

TWO_TURNS = [
    {"role": "system", "content": "Translate."},
    {"role": "user", "content": "the dog"},
    {"role": "assistant", "content": ""},  # wait
    {"role": "user", "content": "sees the cat"},
    {"role": "assistant", "content": "toba hon"},
]

LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
ZEPHYR = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def tok():
    pairs = generate_corpus(300, seed=3)
    return train_tokenizer([p.source for p in pairs] + [p.target for p in pairs], vocab_size=400)


def other_template(tok, template: str, specials: list[str], eos: str | None = None):
    other = copy.deepcopy(tok)  # the module's tokenizer stays as it is
    other.add_special_tokens({"extra_special_tokens": specials}, replace_extra_special_tokens=False)
    if eos:
        other.add_special_tokens({"eos_token": eos, "bos_token": "<|begin_of_text|>"})
    other.chat_template = template
    return other


def labelled_runs(tok, ids: list[int], labels: list[int]) -> list[str]:
    """The decoded runs of consecutive labelled tokens."""
    runs, current = [], []
    for i, y in zip(ids, labels):
        if y != IGNORE:
            assert y == i
            current.append(i)
        elif current:
            runs.append(tok.decode(current))
            current = []
    if current:
        runs.append(tok.decode(current))
    return runs


# ------------------------------------------------------------------------ labels


def segments(tok, *parts) -> list[int]:
    """Token ids of text segments each encoded on its own; an int part is a token id."""
    ids = []
    for part in parts:
        ids += [part] if isinstance(part, int) else tok.encode(part, add_special_tokens=False)
    return ids


def test_chatml_labels_only_what_the_assistant_writes(tok):
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    ids, labels = tokenize_dialogue(tok, TWO_TURNS)
    # As the policy writes it: the template's text between the pieces, each segment
    # tokenized on its own, every piece closed by <|im_end|>, nothing after the last one.
    assert ids == segments(
        tok,
        "<|im_start|>system\nTranslate.<|im_end|>\n",
        "<|im_start|>user\nthe dog<|im_end|>\n<|im_start|>assistant\n",
        eot,
        "\n<|im_start|>user\nsees the cat<|im_end|>\n<|im_start|>assistant\n",
        "toba hon",
        eot,
    )
    # the empty (waiting) turn trains its end-of-turn; the other its content + end-of-turn;
    # nothing else: not the headers, not the newline after <|im_end|>
    assert labelled_runs(tok, ids, labels) == ["<|im_end|>", "toba hon<|im_end|>"]
    n_content = len(tok.encode("toba hon", add_special_tokens=False))
    assert sum(y != IGNORE for y in labels) == 1 + n_content + 1
    assert labels[-1] == eot and ids[-1] == eot


def test_a_truncated_piece_does_not_train_its_end_of_turn(tok):
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    messages = [dict(m) for m in TWO_TURNS]
    messages[4]["truncated"] = True  # cut by its token budget: the policy closed it
    ids, labels = tokenize_dialogue(tok, messages)
    assert ids == tokenize_dialogue(tok, TWO_TURNS)[0]
    assert labelled_runs(tok, ids, labels) == ["<|im_end|>", "toba hon"]
    assert ids[-1] == eot and labels[-1] == IGNORE


def test_llama3_style_template_with_trim(tok):
    other = other_template(
        tok, LLAMA3, ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], eos="<|eot_id|>"
    )
    eot = other.convert_tokens_to_ids("<|eot_id|>")
    messages = [dict(m) for m in TWO_TURNS]
    messages[3]["content"] = " sees the cat "  # a user turn: trimmed by the template
    messages[4]["content"] = " toba hon "  # a piece: written as the policy wrote it
    ids, labels = tokenize_dialogue(other, messages)
    assert ids == segments(
        other,
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nTranslate.<|eot_id|>",
        "<|start_header_id|>user<|end_header_id|>\n\nthe dog<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        eot,
        "<|start_header_id|>user<|end_header_id|>\n\nsees the cat<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        " toba hon ",
        eot,
    )
    assert labelled_runs(other, ids, labels) == ["<|eot_id|>", " toba hon <|eot_id|>"]


def test_zephyr_style_template(tok):
    other = other_template(tok, ZEPHYR, ["<|system|>", "<|user|>", "<|assistant|>"])
    eot = other.convert_tokens_to_ids("<|im_end|>")  # the tokenizer's EOS closes turns
    ids, labels = tokenize_dialogue(other, TWO_TURNS)
    assert ids == segments(
        other,
        "<|system|>\nTranslate.<|im_end|>\n",
        "<|user|>\nthe dog<|im_end|>\n<|assistant|>\n",
        eot,
        "\n<|user|>\nsees the cat<|im_end|>\n<|assistant|>\n",
        "toba hon",
        eot,
    )
    assert labelled_runs(other, ids, labels) == ["<|im_end|>", "toba hon<|im_end|>"]


def test_template_without_an_end_of_turn_token_is_refused(tok):
    plain = "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}"
    other = other_template(tok, plain, [])
    with pytest.raises(SimulpoError, match="does not close an assistant turn"):
        tokenize_dialogue(other, TWO_TURNS)


def test_bad_dialogues(tok):
    with pytest.raises(SimulpoError, match="no assistant turn"):
        tokenize_dialogue(tok, TWO_TURNS[:2])
    with pytest.raises(SimulpoError, match="train dialogue 1: .*no assistant turn"):
        tokenize_dialogues(tok, [TWO_TURNS, TWO_TURNS[:2]], 512)
    with pytest.raises(SimulpoError, match="train set has no dialogues"):
        tokenize_dialogues(tok, [], 512)
    with pytest.raises(SimulpoError, match='"role" and a "content"'):
        tokenize_dialogue(tok, [{"role": "user"}])
    with pytest.raises(SimulpoError, match="alternating"):
        tokenize_dialogue(tok, TWO_TURNS[:2] + TWO_TURNS[3:])


def test_overlong_dialogues_are_skipped_or_truncated(tok, caplog):
    short = offline_messages("the dog", "toba")
    long_out = offline_messages("the dog", " ".join(["toba vuro"] * 30))
    long_in = offline_messages(" ".join(["the big dog"] * 30), "toba")
    n_short = len(tokenize_dialogue(tok, short)[0])
    data = tokenize_dialogues(tok, [short, long_out, short], max_length=n_short + 5)
    assert (len(data), data.skipped, data.truncated) == (2, 1, 0)
    assert "1 of 3 dialogues longer than max_length" in caplog.text
    # truncation keeps the start, and the labels in it; a dialogue cut before its first
    # assistant token has nothing to teach and is skipped
    data = tokenize_dialogues(
        tok, [short, long_out, long_in], max_length=n_short + 5, overlong="truncate"
    )
    assert (len(data), data.truncated, data.skipped) == (2, 2, 1)
    assert list(data.lengths) == [n_short, n_short + 5]
    assert data.label_counts[1] > data.label_counts[0]
    assert "1 truncated dialogues kept no assistant token" in caplog.text
    assert (
        tokenize_dialogue(tok, long_out, max_length=7)[0] == tokenize_dialogue(tok, long_out)[0][:7]
    )


def test_load_dialogues(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        json.dumps({"messages": TWO_TURNS})
        + "\n\n"
        + json.dumps({"messages": TWO_TURNS[:2]})
        + "\n"
    )
    with pytest.raises(SimulpoError, match=r"d.jsonl:3: the dialogue has no assistant turn"):
        load_dialogues(path)
    path.write_text(json.dumps({"messages": TWO_TURNS}) + "\n")
    assert load_dialogues(path) == [TWO_TURNS]


def test_a_message_role_other_than_system_user_assistant_is_refused(tmp_path):
    path = tmp_path / "d.jsonl"
    odd = [{"role": "narrator", "content": "x"}, *TWO_TURNS[1:]]
    path.write_text(json.dumps({"messages": TWO_TURNS}) + "\n" + json.dumps({"messages": odd}))
    with pytest.raises(SimulpoError, match=r"d.jsonl:2: unknown role 'narrator': a message is from"):
        load_dialogues(path)


# ------------------------------------------------------------------------ batches


def test_length_grouped_batches():
    lengths = np.array([random.Random(i).randint(5, 60) for i in range(300)])
    batches = length_grouped_batches(lengths, batch_tokens=256, seed=1, epoch=0)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(300))  # every example once
    assert all(
        lengths[b].max() * len(b) <= 256 for b in batches
    )  # the budget holds, padding included
    padding = sum(lengths[b].max() * len(b) - lengths[b].sum() for b in batches)
    assert padding < 0.05 * lengths.sum()  # grouped by length: little padding
    again = length_grouped_batches(lengths, 256, seed=1, epoch=0)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))  # reproducible
    other = length_grouped_batches(lengths, 256, seed=1, epoch=1)
    assert [b.tolist() for b in other] != [b.tolist() for b in batches]  # reshuffled each epoch


def test_config_is_checked():
    with pytest.raises(ConfigError, match="batch_tokens"):
        SFTConfig(batch_tokens=100, max_length=200).check()
    with pytest.raises(ConfigError, match="schedule"):
        SFTConfig(schedule="step").check()
    assert all(sft.config_help().values())  # every field has a help line


# ------------------------------------------------------------------------ training


def dialogues(n: int, seed: int = 0) -> list[list[dict]]:
    """Simultaneous dialogues (chunks of 1-2 words, pieces of the target, some empty)."""
    rng = random.Random(seed)
    out = []
    for p in generate_corpus(n, seed=seed, min_len=4, max_len=8):
        chunks, pieces, i, j = [], [], 0, 0
        while i < len(p.src):
            step = rng.randint(1, 2)
            chunks.append(p.src[i : i + step])
            i += step
            k = len(p.tgt) if i >= len(p.src) else min(len(p.tgt), j + rng.randint(0, 2))
            pieces.append(" ".join(p.tgt[j:k]))
            j = k
        out.append(episode_messages(chunks, pieces))
    return out


def fast(**kw) -> SFTConfig:
    base = {"lr": 1e-2, "batch_tokens": 512, "max_length": 256, "warmup_ratio": 0.0, "log_every": 5}
    return SFTConfig(**(base | kw))


def test_sft_memorizes_a_few_dialogues(tok, tmp_path):
    data = dialogues(4)
    assert any(m["content"] == "" for d in data for m in d if m["role"] == "assistant")
    model = build_tiny_lm(tok, **SMALL)
    data_set = tokenize_dialogues(tok, data, 256)
    before = sft.evaluate_loss(model, data_set, 512, tok.pad_token_id)
    result = train_sft(
        model, tok, data, data[:2], fast(epochs=40, schedule="constant"), tmp_path, progress=False
    )
    after = sft.evaluate_loss(model, data_set, 512, tok.pad_token_id)
    assert after < 0.1 * before and after < 0.5
    assert result["train_loss"] < 0.3 * before and result["dev_loss"] is not None
    assert result["steps"] == 40 and result["tokens_per_s"] > 0
    # the final model is saved and loads back with the same loss
    loaded, loaded_tok = load_model(result["final_dir"])
    assert sft.evaluate_loss(loaded, data_set, 512, tok.pad_token_id) == pytest.approx(
        after, rel=1e-5
    )
    # greedy decoding of the first assistant turn reproduces it
    prompt = loaded_tok.apply_chat_template(data[0][:2], tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([loaded_tok.encode(prompt, add_special_tokens=False)])
    out = loaded.generate(
        ids, max_new_tokens=20, do_sample=False, pad_token_id=loaded_tok.pad_token_id
    )
    assert loaded_tok.decode(out[0, ids.shape[1] :]) == data[0][2]["content"] + "<|im_end|>"
    log_lines = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert sum("dev_loss" in x for x in log_lines) == 40  # one dev loss per epoch
    assert json.loads((tmp_path / "result.json").read_text()) == result


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("save_every", [0, 3], ids=["kill-after-epoch", "kill-mid-epoch"])
def test_resume_after_kill_gives_the_same_weights(tok, tmp_path, monkeypatch, save_every):
    data = dialogues(24, seed=1)
    config = fast(epochs=2, lr=3e-3, batch_tokens=300, save_every=save_every, grad_accum=2)

    straight = build_tiny_lm(tok, seed=0, **SMALL)
    reference = train_sft(straight, tok, data, None, config, tmp_path / "a", progress=False)

    with killed_after_checkpoint(monkeypatch):
        train_sft(
            build_tiny_lm(tok, seed=0, **SMALL),
            tok,
            data,
            None,
            config,
            tmp_path / "b",
            progress=False,
        )
    first = latest_checkpoint(tmp_path / "b" / "checkpoints")
    state = json.loads((first / "trainer_state.json").read_text())
    assert (state["epoch"], state["step_in_epoch"] > 0) == ((0, True) if save_every else (1, False))

    # a fresh process: the model is built again (even from another seed); the checkpoint wins
    resumed_model = build_tiny_lm(tok, seed=5, **SMALL)
    resumed = train_sft(resumed_model, tok, data, None, config, tmp_path / "b", progress=False)
    assert resumed["steps"] == reference["steps"]
    assert resumed["train_loss"] == pytest.approx(reference["train_loss"], rel=1e-5)
    a, b = weights(straight), weights(resumed_model)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_resume_refuses_other_data_and_restarts_on_request(tok, tmp_path):
    data = dialogues(6)
    first = train_sft(
        build_tiny_lm(tok, **SMALL), tok, data, None, fast(), tmp_path, progress=False
    )
    with pytest.raises(SimulpoError, match="other training data"):
        train_sft(
            build_tiny_lm(tok, **SMALL),
            tok,
            dialogues(6, seed=9),
            None,
            fast(),
            tmp_path,
            progress=False,
        )
    with pytest.raises(SimulpoError, match="another config: lr="):
        train_sft(
            build_tiny_lm(tok, **SMALL), tok, data, None, fast(lr=0.5), tmp_path, progress=False
        )
    # a finished run resumed does nothing more; resume=False starts over
    again = train_sft(
        build_tiny_lm(tok, **SMALL), tok, data, None, fast(log_every=1), tmp_path, progress=False
    )
    assert again == first  # a finished result is never lost (its speed included)
    assert json.loads((tmp_path / "result.json").read_text()) == first
    fresh = train_sft(
        build_tiny_lm(tok, **SMALL),
        tok,
        data,
        None,
        fast(lr=0.5),
        tmp_path,
        resume=False,
        progress=False,
    )
    assert fresh["steps"] == again["steps"]


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    tok, tmp_path, monkeypatch
):
    data = dialogues(8)
    config = fast(epochs=3, batch_tokens=300)
    real_loss = sft.token_loss_sum
    calls = {"n": 0}
    steps_per_epoch = len(
        length_grouped_batches(tokenize_dialogues(tok, data, 256).lengths, 300, 0, 0)
    )

    def loss_goes_nan(model, batch):
        calls["n"] += 1
        loss = real_loss(model, batch)
        return loss * float("nan") if calls["n"] == steps_per_epoch + 2 else loss

    monkeypatch.setattr(sft, "token_loss_sum", loss_goes_nan)
    with pytest.raises(
        SimulpoError,
        match=rf"loss \(or its gradient\) became NaN or infinite at step {steps_per_epoch + 2} \(epoch 2\)",
    ) as err:
        train_sft(build_tiny_lm(tok, **SMALL), tok, data, None, config, tmp_path, progress=False)
    good = latest_checkpoint(tmp_path / "checkpoints")
    assert good.name == f"checkpoint-{steps_per_epoch:08d}" and str(good) in str(err.value)
    assert not (tmp_path / "final").exists()


# ------------------------------------------------------------------------ checkpoints


def test_checkpoint_round_trip_restores_everything(tok, tmp_path):
    model = build_tiny_lm(tok, **SMALL)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 / (1 + s))
    ids = torch.tensor([tok.encode("the big dog sees a cat", add_special_tokens=False)])
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    sched.step()
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    path = save_checkpoint(
        tmp_path, model, {"step": 7, "epoch": 1}, opt, sched, tok, extra={"t": torch.ones(2)}
    )
    expected = (random.random(), np.random.rand(), torch.rand(1))

    other = build_tiny_lm(tok, seed=9, **SMALL)
    opt2 = torch.optim.AdamW(other.parameters(), lr=1e-3)
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, lambda s: 1 / (1 + s))
    state = load_checkpoint(path, other, opt2, sched2)
    assert (state["step"], state["epoch"]) == (7, 1) and torch.equal(
        state["extra"]["t"], torch.ones(2)
    )
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected
    for k, v in model.state_dict().items():
        assert torch.equal(v, other.state_dict()[k])
    assert other.get_output_embeddings().weight is other.get_input_embeddings().weight
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert torch.equal(
        opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"]
    )
    # a checkpoint with its tokenizer is a model directory of its own
    loaded, _ = load_model(path)
    assert torch.equal(loaded.get_input_embeddings().weight, model.get_input_embeddings().weight)


def test_leftovers_of_a_killed_save_do_not_count(tok, tmp_path, monkeypatch):
    model = build_tiny_lm(tok, **SMALL)
    good = save_checkpoint(tmp_path, model, {"step": 4})
    # a save killed mid-write (while writing the training state)
    real_save = torch.save

    def die(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(torch, "save", die)
    with pytest.raises(Killed):
        save_checkpoint(tmp_path, model, {"step": 8})
    monkeypatch.setattr(torch, "save", real_save)
    # also what a hard kill could leave: a temporary directory, half filled, with a later step
    leftover = tmp_path / ".checkpoint-00000012.tmp-abc"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"torn")
    (tmp_path / "checkpoint-00000010").mkdir()  # not ours: no trainer_state.json, so incomplete
    assert latest_checkpoint(tmp_path) == good
    assert list_checkpoints(tmp_path) == [good]
    newer = save_checkpoint(tmp_path, model, {"step": 16}, keep=1)
    assert latest_checkpoint(tmp_path) == newer and not good.exists()
    assert not leftover.exists()  # cleaned by the next save


def test_lora_checkpoint_holds_only_the_adapters(tok, tmp_path):
    from simulpo.models.lm import add_lora

    model = add_lora(build_tiny_lm(tok, **SMALL), r=2)
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p)
    path = save_checkpoint(tmp_path, model, {"step": 1})
    assert (path / "adapter_model.safetensors").is_file() and not (
        path / "model.safetensors"
    ).exists()
    fresh = add_lora(build_tiny_lm(tok, **SMALL), r=2)
    load_checkpoint(path, fresh)
    ids = torch.tensor([tok.encode("the dog", add_special_tokens=False)])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, fresh(input_ids=ids).logits)


def test_sft_with_lora_trains_the_adapters_and_saves_a_merged_model(tok, tmp_path):
    from simulpo.models.lm import save_model

    save_model(build_tiny_lm(tok, **SMALL), tok, tmp_path / "base")
    model, _ = load_model(tmp_path / "base", lora=True, lora_r=4)
    base_before = {
        n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad
    }
    data = dialogues(4)
    data_set = tokenize_dialogues(tok, data, 256)
    before = sft.evaluate_loss(model, data_set, 512, tok.pad_token_id)
    result = train_sft(
        model, tok, data, None, fast(epochs=30, lr=3e-2), tmp_path / "run", progress=False
    )
    assert result["train_loss"] < before
    assert all(
        torch.equal(p, base_before[n]) for n, p in model.named_parameters() if not p.requires_grad
    )
    ckpt = latest_checkpoint(tmp_path / "run" / "checkpoints")
    assert (ckpt / "adapter_model.safetensors").is_file()  # checkpoints hold the adapters only
    merged, _ = load_model(result["final_dir"])  # the final model is merged: a plain model
    after = sft.evaluate_loss(merged, data_set, 512, tok.pad_token_id)
    assert after == pytest.approx(
        sft.evaluate_loss(model, data_set, 512, tok.pad_token_id), rel=1e-4
    )
    assert after < before - 0.1  # slow from a random base, but learning


def test_resume_accepts_fields_added_since_the_checkpoint_at_their_defaults(tok, tmp_path):
    """A checkpoint written before a config field existed was written with its default."""
    data = dialogues(6)
    train_sft(
        build_tiny_lm(tok, **SMALL), tok, data, None, fast(epochs=2), tmp_path, progress=False
    )
    checkpoints = sorted((tmp_path / "checkpoints").iterdir())
    for extra in checkpoints[1:]:  # as if killed after the first epoch
        shutil.rmtree(extra)
    state_file = checkpoints[0] / "trainer_state.json"
    state = json.loads(state_file.read_text())
    del state["config"]["adam_beta2"]  # "the field did not exist yet"
    state_file.write_text(json.dumps(state))
    with pytest.raises(SimulpoError, match="another config: adam_beta2="):
        train_sft(build_tiny_lm(tok, **SMALL), tok, data, None, fast(epochs=2, adam_beta2=0.9),
                  tmp_path, progress=False)  # fmt: skip
    resumed = train_sft(
        build_tiny_lm(tok, **SMALL), tok, data, None, fast(epochs=2), tmp_path, progress=False
    )
    assert resumed["epochs"] == 2


def _truncate(file) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


@pytest.mark.parametrize(
    "damaged", ["model.safetensors", "training_state.pt", "trainer_state.json"]
)
def test_resume_falls_back_past_a_damaged_checkpoint(tok, tmp_path, caplog, damaged):
    data = dialogues(12, seed=2)
    config = fast(epochs=2, batch_tokens=300, keep_checkpoints=0)
    straight = build_tiny_lm(tok, seed=0, **SMALL)
    reference = train_sft(straight, tok, data, None, config, tmp_path / "a", progress=False)
    train_sft(build_tiny_lm(tok, seed=0, **SMALL), tok, data, None, config, tmp_path / "b")
    older, newest = list_checkpoints(tmp_path / "b" / "checkpoints")
    _truncate(newest / damaged)

    resumed_model = build_tiny_lm(tok, seed=7, **SMALL)
    with caplog.at_level("WARNING"):
        resumed = train_sft(resumed_model, tok, data, None, config, tmp_path / "b", progress=False)
    assert f"{newest / damaged}: unreadable" in caplog.text
    assert (
        f"resuming from {older} (step {json.loads((older / 'trainer_state.json').read_text())['step']}), the newest that loads"
        in caplog.text
    )
    assert resumed["train_loss"] == pytest.approx(reference["train_loss"], rel=1e-5)
    for k, v in weights(straight).items():
        torch.testing.assert_close(weights(resumed_model)[k], v, rtol=1e-5, atol=1e-6)


def test_no_readable_checkpoint_suggests_restart(tok, tmp_path):
    data = dialogues(6)
    train_sft(build_tiny_lm(tok, **SMALL), tok, data, None, fast(), tmp_path, progress=False)
    (only,) = list_checkpoints(tmp_path / "checkpoints")
    (only / "trainer_state.json").write_text('{"step": 3, "epo')
    with pytest.raises(SimulpoError, match=r"trainer_state.json: unreadable .*--restart"):
        train_sft(build_tiny_lm(tok, **SMALL), tok, data, None, fast(), tmp_path, progress=False)
    again = train_sft(
        build_tiny_lm(tok, **SMALL), tok, data, None, fast(), tmp_path, resume=False, progress=False
    )
    assert again["steps"] > 0


def test_a_damaged_checkpoint_names_its_file_and_restores_nothing(tok, tmp_path):
    from simulpo.train.checkpoint import CorruptCheckpoint

    saved = build_tiny_lm(tok, seed=1, **SMALL)
    path = save_checkpoint(tmp_path, saved, {"step": 1})
    _truncate(path / "model.safetensors")
    model = build_tiny_lm(tok, seed=2, **SMALL)
    before = weights(model)
    with pytest.raises(CorruptCheckpoint, match=rf"{path / 'model.safetensors'}: unreadable"):
        load_checkpoint(path, model)
    assert all(torch.equal(v, before[k]) for k, v in weights(model).items())


def test_a_new_start_removes_what_killed_writes_left(tok, tmp_path):
    data = dialogues(6)
    out = tmp_path / "run"
    train_sft(build_tiny_lm(tok, **SMALL), tok, data, None, fast(), out, progress=False)
    torn = [
        out / ".final.tmp-k3j2",  # save_model's folder (atomic_write_dir)
        out / ".result.json.x8f1.tmp",  # atomic_write_text's file
        out / "checkpoints" / ".checkpoint-00000009.tmp-a1",
    ]
    for path in torn:
        if path.name.endswith(".tmp"):
            path.write_text("{")
        else:
            path.mkdir()
            (path / "model.safetensors").write_bytes(b"torn")
    keep = out / ".notes.txt"  # hidden, but not ours: stays
    keep.write_text("mine")
    train_sft(build_tiny_lm(tok, **SMALL), tok, data, None, fast(), out, progress=False)
    assert not any(p.exists() for p in torn) and keep.exists()

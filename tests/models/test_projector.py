import pytest
import torch
from tiny_lm import build_tokenizer
from transformers import Qwen2Config, Qwen2ForCausalLM

from simulpo.errors import ConfigError
from simulpo.models.projector import (
    CONFIG_FILE,
    SPEECH_TOKEN,
    WEIGHTS_FILE,
    ProjectorConfig,
    SpeechLM,
    SpeechProjector,
    add_speech_token,
    load_speech_model,
    speech_content,
    speech_inputs_embeds,
)
from simulpo.train.checkpoint import load_weights


def tiny_lm(tokenizer):
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    return Qwen2ForCausalLM(config).eval()


@pytest.fixture
def parts():
    tokenizer = build_tokenizer()
    lm = tiny_lm(tokenizer)
    speech_id = add_speech_token(tokenizer, lm)
    projector = SpeechProjector(ProjectorConfig(input_dim=6, output_dim=16, stack=4, hidden_dim=8))
    return lm, tokenizer, projector, speech_id


def test_frames_are_stacked_within_each_chunk():
    projector = SpeechProjector(ProjectorConfig(input_dim=3, output_dim=5, stack=4))
    # float16 values: the projector reads frames in float16 (FEATURE_DTYPE), exactly these
    a, b = torch.randn(6, 3).half().float(), torch.randn(4, 3).half().float()
    out = projector([a, b])
    # by hand: 6 frames -> 2 stacks (the second zero-padded), 4 frames -> 1 stack
    stacks = torch.stack(
        [a[:4].flatten(), torch.cat([a[4:], torch.zeros(2, 3)]).flatten(), b.flatten()]
    )
    torch.testing.assert_close(out, projector.mlp(stacks))
    assert [projector.num_embeddings(n) for n in (0, 1, 4, 5, 56)] == [0, 1, 1, 2, 14]
    with pytest.raises(ConfigError, match=r"chunks of frames \[n, 3\]"):
        projector([torch.randn(4, 2)])


def test_float32_and_float16_frames_give_the_same_embeddings():
    # Training reads float16 features from the cache, the policy fresh float32 frames from
    # the encoder: the projector rounds both to float16 first, so the same frames give
    # bit-identical embeddings, those of the float16 frames.
    projector = SpeechProjector(ProjectorConfig(input_dim=3, output_dim=5, stack=2), seed=1)
    fresh = torch.randn(7, 3) * 3
    stored = torch.from_numpy(fresh.numpy().astype("float16"))  # as FeatureCache keeps them
    assert not torch.equal(fresh, stored.float())  # the rounding is real...
    assert torch.equal(projector([fresh]), projector([stored]))  # ...and done at the entry
    by_hand = projector.mlp(stored[:6].float().reshape(3, 6))  # 3 stacks of 2 frames
    torch.testing.assert_close(projector([fresh[:6]]), by_hand)


def test_save_and_load_round_trip(tmp_path):
    projector = SpeechProjector(ProjectorConfig(input_dim=3, output_dim=5, stack=2), seed=3)
    projector.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {CONFIG_FILE, WEIGHTS_FILE}
    again = SpeechProjector.load(tmp_path)
    assert again.config == projector.config
    x = [torch.randn(5, 3)]
    torch.testing.assert_close(again(x), projector(x))


def test_speech_token_is_one_token_and_grows_the_embeddings():
    tokenizer = build_tokenizer()
    lm = tiny_lm(tokenizer)
    before = lm.get_input_embeddings().num_embeddings
    speech_id = add_speech_token(tokenizer, lm)
    assert add_speech_token(tokenizer, lm) == speech_id  # idempotent
    assert lm.get_input_embeddings().num_embeddings == before + 1 == len(tokenizer)
    ids = tokenizer("ab" + speech_content(3) + "c", add_special_tokens=False)["input_ids"]
    assert ids.count(speech_id) == 3 and len(ids) == 6
    assert tokenizer.decode(ids, skip_special_tokens=True) == "abc"


def test_placeholders_take_the_projected_chunks_in_order(parts):
    lm, _tokenizer, projector, speech_id = parts
    p, x = speech_id, 5
    ids = torch.tensor([[x, p, p, x, p, x], [p, x, x, x, x, x]])
    c1, c2, c3 = torch.randn(8, 6), torch.randn(3, 6), torch.randn(2, 6)
    embeds = speech_inputs_embeds(lm, projector, ids, [[c1, c2], [c3]], speech_id)
    table = lm.get_input_embeddings().weight
    with torch.no_grad():
        e1, e2, e3 = projector([c1]), projector([c2]), projector([c3])
    torch.testing.assert_close(embeds[0, [1, 2]], e1)
    torch.testing.assert_close(embeds[0, 4], e2[0])
    torch.testing.assert_close(embeds[1, 0], e3[0])
    torch.testing.assert_close(embeds[0, [0, 3, 5]], table[[x, x, x]])
    with pytest.raises(
        ConfigError, match=f"row 1 holds 1 {SPEECH_TOKEN} placeholders but its speech makes 2"
    ):
        speech_inputs_embeds(lm, projector, ids, [[c1, c2], [c1]], speech_id)


def test_speech_lm_saves_a_model_dir_that_loads_back(parts, tmp_path):
    lm, tokenizer, projector, speech_id = parts
    model = SpeechLM(lm, projector, speech_id)
    assert {k.split(".")[0] for k in model.state_dict()} == {"model", "lm_head", "speech_projector"}
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    lm2, _tokenizer2, projector2 = load_speech_model(tmp_path)
    ids = torch.tensor([[3, speech_id, speech_id, 4]])
    frames = [[torch.randn(7, 6)]]
    with torch.no_grad():
        want = model(ids, speech=frames).logits
        got = lm2(
            inputs_embeds=speech_inputs_embeds(lm2, projector2, ids, frames, speech_id)
        ).logits
    torch.testing.assert_close(got, want)
    # a checkpoint of the module loads back into a fresh one, key for key
    fresh = SpeechLM(tiny_lm(tokenizer), SpeechProjector(projector.config, seed=9), speech_id)
    load_weights(fresh, tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(fresh(ids, speech=frames).logits, want)


def test_input_norm_makes_embeddings_blind_to_each_frames_offset_and_scale(tmp_path):
    config = ProjectorConfig(input_dim=6, output_dim=16, stack=2, input_norm=True)
    projector = SpeechProjector(config)
    frames = torch.randn(5, 6)
    shifted = (
        frames * torch.tensor([[3.0], [0.5], [2.0], [1.0], [7.0]]) + torch.arange(5.0)[:, None]
    )
    # up to float16 rounding of the frames (11 significant bits: ~1e-3 of a frame's spread)
    torch.testing.assert_close(projector([shifted]), projector([frames]), atol=2e-3, rtol=2e-3)
    projector.save(tmp_path)
    loaded = SpeechProjector.load(tmp_path)
    assert loaded.config.input_norm
    torch.testing.assert_close(loaded([frames]), projector([frames]))

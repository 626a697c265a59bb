"""The other speech encoders (a wav2vec2-family checkpoint, weight-free log-mel frames) and
the projector's causal conv front end."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import (
    BertConfig,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Model,
    WhisperFeatureExtractor,
)

from simulpo.errors import InputError, SimulpoError
from simulpo.models.projector import CONFIG_FILE, ProjectorConfig, SpeechProjector
from simulpo.models.speech_encoder import (
    ChunkSpec,
    FeatureCache,
    LogMelKind,
    SpeechEncoder,
    Wav2Vec2Kind,
    chunk_rows,
    frames_for,
)

pytestmark = pytest.mark.usefixtures("one_thread")

LENGTHS = (0, 100, 160, 319, 320, 399, 400, 480, 4000, 17920 + 5, 17920 + 170)


def chirp(seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(round(seconds * 16000)) / 16000
    noise = np.random.default_rng(seed).normal(0, 0.05, len(t))
    return (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.1 + noise).astype(np.float32)


def tiny_wav2vec2() -> Wav2Vec2Model:
    config = Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        vocab_size=10,
    )  # fmt: skip
    torch.manual_seed(0)
    return Wav2Vec2Model(config).eval()


@pytest.fixture(scope="module")
def w2v_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("w2v")
    tiny_wav2vec2().save_pretrained(path)
    Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def w2v(w2v_dir):
    return SpeechEncoder.load(w2v_dir)


def by_hand(model: Wav2Vec2Model, window: np.ndarray, normalize: bool = True) -> torch.Tensor:
    """The library's own normalization and forward; padding as documented: 80 zeros on the
    left, the right to whole 20 ms frames."""
    values = Wav2Vec2FeatureExtractor(do_normalize=normalize)(
        window, sampling_rate=16000, return_tensors="np"
    ).input_values[0]
    n = frames_for(len(window)) * 320
    padded = np.zeros(80 + n, np.float32)
    padded[80 : 80 + min(n, len(values))] = values[:n]
    with torch.no_grad():
        return model(torch.from_numpy(padded)[None]).last_hidden_state[0]


# ------------------------------------------------------------------ wav2vec2 family


def test_wav2vec2_checkpoint_gives_frames_for_every_length(w2v):
    assert isinstance(w2v.kind, Wav2Vec2Kind) and w2v.dim == 16 and w2v.kind.normalize
    assert w2v.name.startswith("wav2vec2:") and w2v.kind.left_pad == 80
    audio = chirp(1.2)
    for n in LENGTHS:
        assert w2v.encode(audio[:n]).shape == (frames_for(n), 16), n
    assert w2v.encode_chunks(audio, ChunkSpec(240, 480)).shape == (frames_for(len(audio)), 16)


def test_wav2vec2_frames_are_the_models_on_the_normalized_padded_window(w2v_dir, w2v):
    model = Wav2Vec2Model.from_pretrained(w2v_dir).eval()
    for n in (480, 4000, 17920 + 170):
        window = chirp(1.2, seed=n)[:n]
        torch.testing.assert_close(w2v.encode(window), by_hand(model, window))
    # a chunk with left context is the model on [context + chunk], the chunk's rows kept
    spec, audio = ChunkSpec(240, 480), chirp(1.0)
    chunk2 = w2v.encode_chunks(audio, spec)[24:36]
    torch.testing.assert_close(chunk2, by_hand(model, audio[0 : 3 * 3840])[24:36])


def test_wav2vec2_batched_windows_are_each_the_models_on_its_own_window(w2v_dir, w2v):
    model = Wav2Vec2Model.from_pretrained(w2v_dir).eval()
    windows = [chirp(0.3, 1), 0.01 * chirp(0.3, 2), chirp(0.5, 3), 4 * chirp(0.3, 4)]
    for window, frames in zip(windows, w2v.encode_windows(windows)):
        torch.testing.assert_close(frames, by_hand(model, window))


def test_wav2vec2_chunks_are_causal(w2v):
    spec = ChunkSpec(chunk_ms=240, context_ms=480)
    audio = chirp(1.5)
    whole = w2v.encode_chunks(audio, spec)
    prefix = w2v.encode_chunks(audio[: 3 * 3840 + 1000], spec)  # 3 chunks and a partial one
    torch.testing.assert_close(prefix[:36], whole[:36])
    assert not torch.allclose(prefix[36:], whole[36 : len(prefix)])  # its window ended sooner
    # and with the same rows whichever chunk the encoding starts from
    torch.testing.assert_close(w2v.encode_chunks(audio, spec, start=2 * 3840), whole[24:])
    assert len(chunk_rows(whole, 480.0, 720.0)) == 12


def test_wav2vec2_without_normalization_and_in_the_feature_cache(tmp_path):
    model = tiny_wav2vec2()
    model.save_pretrained(tmp_path / "m")
    Wav2Vec2FeatureExtractor(do_normalize=False).save_pretrained(tmp_path / "m")
    encoder = SpeechEncoder.load(tmp_path / "m")
    assert not encoder.kind.normalize
    window = chirp(0.5)
    torch.testing.assert_close(encoder.encode(window), by_hand(model, window, normalize=False))
    # no preprocessor_config.json: the feature extractor's default, normalized
    (tmp_path / "m" / "preprocessor_config.json").unlink()
    assert SpeechEncoder.load(tmp_path / "m").kind.normalize
    cache = FeatureCache(tmp_path / "features", encoder, ChunkSpec(240, 480))
    assert cache.get("u", window).shape == (frames_for(len(window)), 16)


@pytest.mark.parametrize("kind", ["hubert", "wavlm", "data2vec-audio", "wav2vec2-ctc"])
def test_other_members_of_the_family_load(tmp_path, kind):
    import copy

    import transformers

    sizes = {
        "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 32, "conv_dim": (8,) * 7, "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 2,
    }  # fmt: skip
    classes = {
        "hubert": ("HubertConfig", "HubertModel"),
        "wavlm": ("WavLMConfig", "WavLMModel"),
        "data2vec-audio": ("Data2VecAudioConfig", "Data2VecAudioModel"),
        "wav2vec2-ctc": ("Wav2Vec2Config", "Wav2Vec2ForCTC"),  # a fine-tuned checkpoint
    }
    config_class, model_class = (getattr(transformers, name) for name in classes[kind])
    torch.manual_seed(0)
    model = model_class(config_class(**sizes, vocab_size=10)).eval()
    model.save_pretrained(tmp_path)
    encoder = SpeechEncoder.load(tmp_path)
    assert encoder.name.split(":")[0] == kind.removesuffix("-ctc") and encoder.dim == 16
    window = chirp(0.7)
    base = model.wav2vec2 if kind == "wav2vec2-ctc" else model
    # (float32 normalization in numpy vs torch: a few 1e-5 apart after the layer norms)
    torch.testing.assert_close(encoder.encode(window), by_hand(base, window), atol=1e-4, rtol=1e-4)
    twin = copy.deepcopy(encoder)
    torch.testing.assert_close(twin.encode(window), encoder.encode(window))


def test_load_errors(tmp_path):
    with pytest.raises(SimulpoError, match="no model.bin .* or config.json"):
        SpeechEncoder.load(tmp_path)
    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2).save_pretrained(
        tmp_path / "bert"
    )
    with pytest.raises(InputError, match="model type 'bert' is not a speech encoder"):
        SpeechEncoder.load(tmp_path / "bert")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("[1, 2", encoding="utf-8")
    with pytest.raises(InputError, match="not a model config"):
        SpeechEncoder.load(tmp_path / "bad")
    tiny_wav2vec2().save_pretrained(tmp_path / "8k")
    Wav2Vec2FeatureExtractor(sampling_rate=8000).save_pretrained(tmp_path / "8k")
    with pytest.raises(InputError, match="8000 Hz"):
        SpeechEncoder.load(tmp_path / "8k")
    config = Wav2Vec2Config(conv_dim=(8,) * 6, conv_kernel=(10, 3, 3, 3, 3, 2),
                            conv_stride=(5, 2, 2, 2, 2, 2), hidden_size=16,
                            num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)  # fmt: skip
    Wav2Vec2Model(config).save_pretrained(tmp_path / "10ms")
    with pytest.raises(SimulpoError, match="every 160 samples"):
        SpeechEncoder.load(tmp_path / "10ms")


# ------------------------------------------------------------------ log-mel, no weights


def test_logmel_frames_are_two_stacked_whisper_log_mel_frames():
    encoder = SpeechEncoder.load("logmel")
    assert isinstance(encoder.kind, LogMelKind) and encoder.dim == 160
    assert encoder.name == "logmel"
    audio = chirp(1.3)
    for n in LENGTHS:
        window = audio[:n]
        got = encoder.encode(window)
        assert got.shape == (frames_for(n), 160), n
        if n <= 200:  # the library's reflect padding needs more than half a window
            continue
        mel = WhisperFeatureExtractor()(
            window, sampling_rate=16000, padding="longest", return_tensors="np"
        ).input_features[0]  # [80, n // 160], normalized over this window
        if mel.shape[1] % 2:  # the odd last frame's partner: the window's silence floor
            mel = np.concatenate([mel, np.full((80, 1), mel.max() - 2.0, np.float32)], 1)
        expected = np.stack([mel[:, 2 * j : 2 * j + 2].T.reshape(-1) for j in range(len(got))])
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)
    # batched windows of one length: each row normalized over its own window
    windows = [audio[:4000], 0.01 * audio[1000:5000], audio[:3000], 3 * audio[2000:6000]]
    for window, frames in zip(windows, encoder.encode_windows(windows)):
        torch.testing.assert_close(frames, encoder.encode(window))
    # chunked like every encoder: causal, and the context shifts the normalization only
    spec = ChunkSpec(240, 480)
    whole = encoder.encode_chunks(audio, spec)
    torch.testing.assert_close(encoder.encode_chunks(audio[:10000], spec)[:24], whole[:24])


# ------------------------------------------------------------------ causal conv projector


def conv_projector(**kwargs) -> SpeechProjector:
    config = ProjectorConfig(input_dim=6, output_dim=5, stack=4, conv_layers=2, **kwargs)
    return SpeechProjector(config, seed=0)


def test_conv_front_end_is_causal_and_left_padded():
    projector = conv_projector(conv_kernel=3, conv_dim=7)
    assert projector.mlp[0].in_features == 28 and len(projector.conv) == 2
    frames = torch.randn(17, 6)
    out = projector([frames])
    assert out.shape == (5, 5)
    for t in (4, 8, 13):  # change frames from t on: the stacks before t's stay
        edited = frames.clone()
        edited[t:] = torch.randn(17 - t, 6)
        changed = projector([edited])
        torch.testing.assert_close(changed[: t // 4], out[: t // 4])
        assert not torch.allclose(changed[t // 4 :], out[t // 4 :])
    # by hand: zero padding on the left only, GELU after each layer
    x = frames.T[None]
    for conv in projector.conv:
        x = torch.nn.functional.gelu(conv(torch.nn.functional.pad(x, (2, 0))))
    stacks = torch.cat([x[0].T, torch.zeros(3, 7)]).reshape(5, 28)
    torch.testing.assert_close(out, projector.mlp(stacks))
    # chunks never see each other; a chunk with no frames makes no embedding
    a, b = torch.randn(8, 6), torch.randn(5, 6)
    torch.testing.assert_close(
        projector([a, torch.zeros(0, 6), b]), torch.cat([projector([a]), projector([b])])
    )
    assert projector([]).shape == (0, 5) and projector([torch.zeros(0, 6)]).shape == (0, 5)


def test_conv_window_makes_a_merged_turn_its_chunks_one_by_one():
    projector = conv_projector(conv_window=8)
    a, b, c = torch.randn(8, 6), torch.randn(8, 6), torch.randn(3, 6)
    merged = projector([torch.cat([a, b, c])])
    torch.testing.assert_close(merged, projector([a, b, c]))
    whole = conv_projector(conv_window=0)
    assert not torch.allclose(whole([torch.cat([a, b])]), whole([a, b]))


def test_projector_without_conv_is_unchanged_and_old_configs_load(tmp_path):
    old = {"input_dim": 3, "output_dim": 5, "stack": 2, "hidden_dim": 0, "input_norm": False}
    projector = SpeechProjector(ProjectorConfig(**old), seed=3)
    assert projector.conv is None
    projector.save(tmp_path)
    (tmp_path / CONFIG_FILE).write_text(json.dumps(old), encoding="utf-8")  # before conv
    again = SpeechProjector.load(tmp_path)
    assert again.config.conv_layers == 0 and again.conv is None
    x = [torch.randn(5, 3)]
    torch.testing.assert_close(again(x), projector(x))
    conv = conv_projector(conv_window=4)
    conv.save(tmp_path / "conv")
    loaded = SpeechProjector.load(tmp_path / "conv")
    assert loaded.config == conv.config
    y = [torch.randn(9, 6)]
    torch.testing.assert_close(loaded(y), conv(y))


# ------------------------------------------------------------------ the recipe, end to end


def test_recipe_stage1_on_logmel_features_trains_a_conv_projector(tmp_path):
    from tiny_lm import build_tokenizer
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from simulpo.recipes import load_recipe
    from simulpo.recipes.speech import SpeechRecipe, features_step, stage1_step

    recipe = load_recipe(SpeechRecipe, None, ["encoder.path=logmel", "stage1.epochs=2"])
    assert recipe.model.conv_layers is None
    utterances = {
        split: [
            SimpleNamespace(
                id=f"{split}{k}", audio=lambda k=k: chirp(1.5 + 0.3 * k, seed=k),
                source="a b c", word_starts=[0.0, 400.0, 900.0],
            )
            for k in range(3)
        ]
        for split in ("train", "dev")
    }  # fmt: skip
    encoder, features = features_step(recipe, tmp_path, utterances, progress=False)
    assert encoder.dim == 160 and features["train1"].shape == (frames_for(24000 + 4800), 160)
    tokenizer = build_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(0)
    lm = Qwen2ForCausalLM(config).eval()
    projector = stage1_step(recipe, tmp_path, lm, tokenizer, encoder, utterances, features, False)
    c = projector.config
    assert (c.input_dim, c.conv_layers, c.conv_window) == (160, 2, 56)
    result = json.loads((tmp_path / "stage1" / "result.json").read_text())
    assert np.isfinite(result["train_loss"]) and 0 <= result["dev_accuracy"] <= 1
    again = SpeechProjector.load(tmp_path / "stage1")
    frames = torch.from_numpy(features["dev0"].astype(np.float32))
    torch.testing.assert_close(again([frames]), projector([frames]))
    # Whisper-style encoders keep the plain projector unless asked
    assert load_recipe(SpeechRecipe, None, ["model.conv_layers=1"]).model.conv_layers == 1

"""RL of the speech policy on the text trainer: speech rollouts, log-probs rebuilt from the
encoder frames equal to the sampler's, the projector trained or frozen, long-form sources
rewarded per reference segment, and exact resumption with the projector in the checkpoints."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import soundfile
import torch
from kill import killed_after_checkpoint
from tiny_lm import tiny_speech_parts

from simulpo.data.speech import SpeechUtterance
from simulpo.errors import ConfigError
from simulpo.models.projector import (
    SpeechLM,
    load_speech_model,
)
from simulpo.models.speech_encoder import ChunkSpec
from simulpo.policies.llm import LLMPolicy
from simulpo.policies.speech_front import SpeechFrontEnd
from simulpo.rewards.base import as_segments
from simulpo.stream.segmenter import FixedMilliseconds
from simulpo.stream.settings import StreamConfig
from simulpo.train import rl
from simulpo.train.grpo import GRPOConfig, grpo_update, token_logprobs
from simulpo.train.rl import RLConfig, train_rl
from simulpo.train.rl_data import recordings
from simulpo.train.rollout import collate, sample_groups

SPEC = ChunkSpec(chunk_ms=240, context_ms=480)
SR = 16000


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def parts(one_thread):
    """A tiny chat LM with the placeholder token, a random Whisper encoder, a projector."""
    return tiny_speech_parts()


def audio(seconds: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, round(seconds * SR)).astype(np.float32)


def speech_rollouts(parts, temperature=0.7, group_size=3):
    lm, tokenizer, encoder, projector, _ = parts
    front = SpeechFrontEnd(encoder, projector, SPEC, precomputed=True)
    policy = LLMPolicy(
        lm, tokenizer, do_sample=True, temperature=temperature, seed=2,
        max_piece_tokens=4, max_final_tokens=6, speech=front,
    )  # fmt: skip
    sources = [audio(s, k) for k, s in enumerate([0.9, 1.3, 0.5])]
    return sample_groups(policy, sources, ["A B", "C D", "E"], FixedMilliseconds(240), group_size)


def test_speech_rollouts_refuse_a_policy_that_drops_the_frames(parts):
    lm, tokenizer, encoder, projector, _ = parts
    front = SpeechFrontEnd(encoder, projector, SPEC)
    policy = LLMPolicy(lm, tokenizer, speech=front, record_speech=False)  # eval's policy
    with pytest.raises(ValueError, match="record_speech=True"):
        sample_groups(policy, [audio(0.5, 0)], ["A"], FixedMilliseconds(240), 2)


def test_speech_rollouts_carry_each_turns_frames(parts):
    _, tokenizer, encoder, projector, speech_id = parts
    rollouts = speech_rollouts(parts)
    for r in rollouts:
        assert len(r.speech) == len(r.episode.chunks) > 0
        # the first turn's frames are the chunked encoding's first rows (240 ms = 12 frames)
        whole = encoder.encode_chunks(r.episode.source, SPEC)
        torch.testing.assert_close(r.speech[0], whole[:12])
        placeholders = r.token_ids.count(speech_id)
        assert placeholders == sum(projector.num_embeddings(len(f)) for f in r.speech)
        assert not r.speech[0].is_inference()  # the update can backpropagate through them
    batch = collate(rollouts, tokenizer.pad_token_id)
    assert batch.speech is not None and len(batch.speech) == len(rollouts)
    part = batch[slice(2, 5)]
    assert part.speech == batch.speech[2:5] and part.input_ids.shape[0] == 3


def test_recomputed_speech_logprobs_equal_the_rollouts(parts):
    lm, tokenizer, _, projector, speech_id = parts
    batch = collate(speech_rollouts(parts, temperature=0.7), tokenizer.pad_token_id)
    m = batch.policy_mask
    assert m.sum() > 20
    model = SpeechLM(lm, projector, speech_id)
    with torch.no_grad():
        logp = token_logprobs(
            model, batch.input_ids, batch.attention_mask, 0.7, speech=batch.speech
        )
    torch.testing.assert_close(logp[m], batch.old_logprobs[m], rtol=0, atol=1e-4)
    # Not vacuous: the same tokens with other speech are another distribution.
    silent = [[torch.zeros_like(f) for f in row] for row in batch.speech]
    with torch.no_grad():
        other = token_logprobs(model, batch.input_ids, batch.attention_mask, 0.7, speech=silent)
    assert (other[m] - batch.old_logprobs[m]).abs().max() > 1e-2


def test_a_speech_batch_needs_a_speech_model(parts):
    lm, tokenizer = parts[:2]
    batch = collate(speech_rollouts(parts, group_size=2), tokenizer.pad_token_id)
    with pytest.raises(ConfigError, match="SpeechLM"):
        token_logprobs(lm, batch.input_ids, batch.attention_mask, speech=batch.speech)


@pytest.mark.parametrize("train_projector", [True, False])
def test_the_update_trains_the_projector_unless_frozen(parts, train_projector):
    lm, tokenizer, _, projector, speech_id = parts
    batch = collate(speech_rollouts(parts), tokenizer.pad_token_id)
    model = SpeechLM(copy.deepcopy(lm), copy.deepcopy(projector), speech_id)
    model.speech_projector.requires_grad_(train_projector)
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    adv = torch.linspace(-1, 1, batch.input_ids.shape[0])
    stats = grpo_update(model, opt, batch, adv, GRPOConfig(temperature=0.7, micro_batch_size=4))
    # One epoch from the rollout's own policy: every importance ratio is 1.
    assert stats["ratio"] == pytest.approx(1.0, abs=1e-4)
    after = model.state_dict()
    moved = {k for k in after if not torch.equal(after[k], before[k])}
    assert any(k.startswith("model.") for k in moved)  # the LM's weights
    assert any(k.startswith("speech_projector.") for k in moved) == train_projector


def test_speech_gradient_accumulation_equals_one_big_batch(parts):
    """Micro-batches must carry their own rows' speech: any mix-up changes the gradient."""
    lm, tokenizer, _, projector, speech_id = parts
    batch = collate(speech_rollouts(parts), tokenizer.pad_token_id)
    adv = torch.linspace(-1, 1, batch.input_ids.shape[0])
    results = []
    for micro in (9, 2):
        model = SpeechLM(
            copy.deepcopy(lm), copy.deepcopy(projector).requires_grad_(True), speech_id
        )
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        cfg = GRPOConfig(temperature=0.7, micro_batch_size=micro, max_grad_norm=0.0)
        grpo_update(model, opt, batch, adv, cfg)
        results.append(model.state_dict())
    for key, value in results[0].items():
        torch.testing.assert_close(results[1][key], value, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- train_rl


@pytest.fixture
def corpus(tmp_path):
    """One recording of three utterances with pauses, and its utterances (word timings
    are not used by RL)."""
    spans = [(0.1, 0.7), (1.0, 1.5), (1.9, 2.4)]  # seconds
    wav = tmp_path / "wav" / "train_000.wav"
    wav.parent.mkdir()
    soundfile.write(wav, audio(2.6, 7), SR, subtype="PCM_16")
    refs = ["ONE TWO.", "THREE.", "FOUR FIVE."]
    utterances = [
        SpeechUtterance(f"u{k}", f"s{k}", ref, wav, a, b - a, "v", 175, [0])
        for k, ((a, b), ref) in enumerate(zip(spans, refs))
    ]
    return utterances


def test_recordings_hold_their_utterances_as_reference_segments(corpus):
    (rec,) = recordings(corpus[::-1])  # any order: segments come out in time order
    assert rec.wav == corpus[0].wav
    assert [(s.start, s.end, s.reference) for s in rec.segments] == pytest.approx(
        [(100.0, 700.0, "ONE TWO."), (1000.0, 1500.0, "THREE."), (1900.0, 2400.0, "FOUR FIVE.")]
    )
    assert len(rec.audio()) == round(2.6 * SR)


def test_passages_are_spans_with_segments_on_their_own_timeline(corpus):
    first, last = recordings(corpus[::-1], size=2)
    assert [s.reference for s in first.segments] == ["ONE TWO.", "THREE."]
    assert [(s.start, s.end) for s in first.segments] == pytest.approx([(0, 600), (900, 1400)])
    assert (first.offset, first.duration) == pytest.approx((0.1, 1.4))
    assert [(s.start, s.end) for s in last.segments] == pytest.approx([(0, 500)])
    # the span's audio is the recording's samples from 1.9 s to 2.4 s
    whole = recordings(corpus)[0].audio()
    np.testing.assert_array_equal(last.audio(), whole[round(1.9 * SR) : round(2.4 * SR)])
    with pytest.raises(ConfigError, match="at least one"):
        recordings(corpus, size=0)


def test_passage_segments_lie_inside_the_audio_the_reward_sees(tmp_path):
    # offsets of a real demo passage, where seconds -> ms in another order left the last
    # segment 2e-12 ms past the audio and the reward refused the episode
    wav = tmp_path / "long.wav"
    soundfile.write(wav, audio(170.0, 3), SR, subtype="PCM_16")
    spans = [(143.702125, 148.0), (149.0, 159.891813)]
    utterances = [
        SpeechUtterance(f"u{k}", "s", "r.", wav, a, b - a, "v", 175, [0])
        for k, (a, b) in enumerate(spans)
    ]
    for rec in recordings(utterances, size=2) + recordings(utterances):
        source_length = FixedMilliseconds(1120).source_length(rec.audio())
        assert as_segments(rec.segments, source_length)[-1].end <= source_length


def speech_config(**changes) -> RLConfig:
    config = RLConfig(
        steps=2, sources_per_step=2, group_size=3, stream=StreamConfig(chunk_ms=240),
        max_piece_tokens=4,
        max_final_tokens=6, save_every=1, eval_segments=1,
    )  # fmt: skip
    config.grpo.lr = 1e-3
    config.grpo.micro_batch_size = 4
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def fresh(parts):
    lm, _, encoder, projector, _ = parts
    return copy.deepcopy(lm), SpeechFrontEnd(encoder, copy.deepcopy(projector), SPEC, True)


def test_killed_speech_run_resumes_to_the_same_lm_and_projector(
    parts, corpus, tmp_path, monkeypatch
):
    tokenizer = parts[1]
    config = speech_config()

    lm, front = fresh(parts)
    result = train_rl(
        lm, tokenizer, corpus, corpus[:1], config, tmp_path / "a", progress=False, speech=front
    )
    assert result["steps"] == 2 and {"BLEU", "chrF"} <= set(result["dev"])
    straight = SpeechLM(lm, front.projector, 0).state_dict()
    assert not torch.equal(straight["speech_projector.mlp.0.weight"], parts[3].mlp[0].weight)

    with killed_after_checkpoint(monkeypatch):
        train_rl(*fresh(parts)[:1], tokenizer, corpus, None, config, tmp_path / "b",
                 progress=False, speech=fresh(parts)[1])  # fmt: skip
    lm, front = fresh(parts)
    train_rl(lm, tokenizer, corpus, None, config, tmp_path / "b", progress=False, speech=front)
    resumed = SpeechLM(lm, front.projector, 0).state_dict()
    for key, value in straight.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0)

    # final/ is a speech model directory holding the trained LM and projector
    final_lm, _, final_projector = load_speech_model(tmp_path / "a" / "final")
    loaded = SpeechLM(final_lm, final_projector, 0).state_dict()
    for key, value in straight.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)


def test_long_form_sources_are_rewarded_by_their_segments(parts, corpus, tmp_path, monkeypatch):
    seen = []
    real_build = rl.build_reward

    def spying_build(config):
        reward = real_build(config)

        def spy(group, segments=None):
            seen.append((len(group), segments))
            return reward(group, segments=segments)

        return spy

    monkeypatch.setattr(rl, "build_reward", spying_build)
    (rec,) = recordings(corpus)
    config = speech_config(steps=1, sources_per_step=1, cache_window=200)
    config.reward.kind = "hpo"
    lm, front = fresh(parts)
    train_rl(lm, parts[1], [rec], None, config, tmp_path / "lf", progress=False, speech=front)
    assert seen == [(3, rec.segments)]


def test_speech_and_text_sources_do_not_mix(parts, corpus, tmp_path):
    from simulpo.eval.testset import Sentence

    lm, front = fresh(parts)
    with pytest.raises(ConfigError, match="front end"):
        train_rl(lm, parts[1], corpus, None, speech_config(), tmp_path / "x", progress=False)
    text = [Sentence("0", "the dog", "THE DOG")]
    with pytest.raises(ConfigError, match="audio"):
        train_rl(
            lm, parts[1], text, None, speech_config(), tmp_path / "y", progress=False, speech=front
        )
    with pytest.raises(ConfigError, match="utterances"):
        train_rl(lm, parts[1], corpus, recordings(corpus), speech_config(), tmp_path / "z",
                 progress=False, speech=front)  # fmt: skip

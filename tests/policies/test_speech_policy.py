"""The LLM policy on speech: the same dialogue, cache and decoding, with speech turns."""

import numpy as np
import pytest
import torch
from tiny_lm import tiny_speech_parts

from simulpo.models.projector import (
    speech_inputs_embeds,
)
from simulpo.models.speech_encoder import ChunkSpec, chunk_rows
from simulpo.policies.llm import LLMPolicy
from simulpo.policies.speech_front import SpeechFrontEnd
from simulpo.stream.loop import run_stream
from simulpo.stream.segmenter import FixedMilliseconds, RandomMerge

SPEC = ChunkSpec(chunk_ms=240, context_ms=480)
BUDGET, FINAL = 4, 6


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def speech_lm(one_thread):
    return tiny_speech_parts()


def sources():
    rng = np.random.default_rng(0)
    lengths = [0.9, 1.7, 0.35, 1.2]
    return [rng.normal(0, 0.1, round(s * 16000)).astype(np.float32) for s in lengths]


def run(parts, segmenter=None, batch_size=256, precomputed=False):
    model, tokenizer, encoder, projector, _ = parts
    front = SpeechFrontEnd(encoder, projector, SPEC, precomputed=precomputed)
    policy = LLMPolicy(
        model, tokenizer, max_piece_tokens=BUDGET, max_final_tokens=FINAL, speech=front
    )
    records = {}

    class Capture:
        name = "speech"

        def act(self, states):
            records.update({s.episode.index: s.memory for s in states})
            return policy.act(states)

    segmenter = segmenter or RandomMerge(FixedMilliseconds(SPEC.chunk_ms), 1, 2, seed=3)
    episodes = run_stream(sources(), Capture(), segmenter, batch_size=batch_size, progress=False)
    return episodes, [records[e.index]["dialogue"] for e in episodes]


def test_turn_frames_are_the_causal_chunked_encoding(speech_lm):
    """Each turn's frames equal the rows of that chunk in the whole-utterance chunked encoding."""
    encoder = speech_lm[2]
    episodes, records = run(speech_lm)
    for episode, rec in zip(episodes, records):
        whole = encoder.encode_chunks(episode.source, SPEC)
        starts = [0.0] + [c.end for c in episode.chunks[:-1]]
        assert len(rec.speech) == len(episode.chunks) > 0
        for frames, start, chunk in zip(rec.speech, starts, episode.chunks):
            torch.testing.assert_close(frames, chunk_rows(whole, start, chunk.end))


def test_cached_speech_turns_equal_an_uncached_full_forward(speech_lm):
    model, tokenizer, _, projector, speech_id = speech_lm
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    episodes, records = run(speech_lm)
    assert any(len(e.chunks) > 2 for e in episodes)
    for episode, rec in zip(episodes, records):
        for t, (start, stop) in enumerate(rec.piece_spans):
            ids = list(rec.token_ids[:start])
            # the prompt holds exactly the placeholders of turns 0..t
            assert ids.count(speech_id) == sum(
                projector.num_embeddings(len(f)) for f in rec.speech[: t + 1]
            )
            budget = FINAL if t == len(episode.chunks) - 1 else BUDGET
            written = []
            with torch.no_grad():
                for _ in range(budget):  # greedy, the whole dialogue recomputed each step
                    x = torch.tensor([ids + written])
                    embeds = speech_inputs_embeds(
                        model, projector, x, [rec.speech[: t + 1]], speech_id
                    )
                    token = int(model(inputs_embeds=embeds, use_cache=False).logits[0, -1].argmax())
                    written.append(token)
                    if token == end:
                        break
            piece = rec.token_ids[start:stop]
            assert written == (piece[:-1] if rec.truncated[t] else piece)


def test_speech_batched_equals_alone_and_precomputed_equals_online(speech_lm):
    together, rec_together = run(speech_lm)
    alone, rec_alone = run(speech_lm, batch_size=1)
    cached, rec_cached = run(speech_lm, precomputed=True)
    written = [(e.pieces, e.delays) for e in together]  # elapsed: wall clock, not compared
    assert (
        written == [(e.pieces, e.delays) for e in alone] == [(e.pieces, e.delays) for e in cached]
    )
    for a, b, c in zip(rec_together, rec_alone, rec_cached):
        assert a.token_ids == b.token_ids == c.token_ids
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


def test_chunks_off_the_encoding_grid_are_encoded_online(speech_lm):
    """FixedMilliseconds(100) chunks do not start on the 240 ms grid: still causal frames."""
    encoder = speech_lm[2]
    episodes, records = run(speech_lm, segmenter=FixedMilliseconds(100), precomputed=True)
    episode, rec = episodes[0], records[0]
    read = episode.source[: round(episode.chunks[1].end * 16)]
    torch.testing.assert_close(rec.speech[1], encoder.encode_chunks(read, SPEC, start=1600))


def test_a_batched_turn_encodes_its_rows_together(speech_lm, monkeypatch):
    """The rows of a step go through the encoder as one batch; each row's frames and
    tokens are those it gets alone (one episode a step)."""
    encoder = speech_lm[2]
    batches = []
    inner = encoder.kind.encode
    monkeypatch.setattr(encoder.kind, "encode", lambda w: batches.append(len(w)) or inner(w))
    _, rec_together = run(speech_lm)
    assert max(batches) == len(sources())  # the first turn: every episode's first chunk
    _, rec_alone = run(speech_lm, batch_size=1)
    for a, b in zip(rec_together, rec_alone, strict=True):
        assert a.token_ids == b.token_ids and len(a.speech) == len(b.speech)
        for frames_a, frames_b in zip(a.speech, b.speech):
            torch.testing.assert_close(frames_a, frames_b)


def test_precomputed_rows_of_one_source_encode_it_once(speech_lm, monkeypatch):
    """Rollouts of one source in a step (an RL group) share one encoding of it."""
    model, tokenizer, encoder, projector, _ = speech_lm
    front = SpeechFrontEnd(encoder, projector, SPEC, precomputed=True)
    policy = LLMPolicy(
        model, tokenizer, max_piece_tokens=BUDGET, max_final_tokens=FINAL, speech=front
    )
    calls = []
    inner = encoder.encode_streams
    monkeypatch.setattr(
        encoder,
        "encode_streams",
        lambda streams, spec: calls.append(len(streams)) or inner(streams, spec),
    )
    a, b = sources()[:2]
    episodes = run_stream(
        [a, b, a, b, a], policy, FixedMilliseconds(SPEC.chunk_ms), batch_size=8, progress=False
    )
    assert calls == [2]  # the first step encodes both sources whole; later steps reuse them
    assert episodes[0].pieces == episodes[2].pieces == episodes[4].pieces
    assert episodes[1].pieces == episodes[3].pieces

"""Load: 100 concurrent sessions on one server — whole streams of different lengths,
clients that vanish mid-stream, clients that send garbage. Every completed stream gets
exactly its solo (offline) translation, the engine really batches, and nothing is left
behind: the sessions, their queues and the memory of a second round."""

import asyncio
import random

import numpy as np
import psutil
import pytest
import websockets
from serve_helpers import TIMEOUT, exchange, ws_url
from tiny_lm import tiny_speech_parts

from simulpo.models.speech_encoder import ChunkSpec
from simulpo.policies.llm import LLMPolicy
from simulpo.policies.speech_front import SpeechFrontEnd
from simulpo.stream.loop import run_stream
from simulpo.stream.segmenter import FixedMilliseconds

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
SPEC = ChunkSpec(chunk_ms=240, context_ms=480)
GARBAGE = ["not json", {"sample_rate": 8000}, {"text": "speech server"}, {"sample_rate": -5}]


def sources(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [
        (
            np.rint(rng.normal(0, 3000, rng.integers(1600, 16000))).clip(-32768, 32767) / 32768
        ).astype(np.float32)
        for _ in range(n)
    ]


def frames(audio: np.ndarray, rng: random.Random) -> list[bytes]:
    pcm = np.rint(audio * 32768).astype("<i2").tobytes()
    size = rng.choice([640, 1601, 3200, 8000])  # odd sizes split samples across frames
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


async def vanish(url: str, audio: np.ndarray, rng: random.Random) -> None:
    async with websockets.connect(ws_url(url)) as ws:
        for frame in frames(audio, rng)[:3]:
            await ws.send(frame)
    # closed without end_of_stream


async def garbage(url: str, audio: np.ndarray, rng: random.Random) -> dict:
    bad = rng.choice(GARBAGE)
    return (await exchange(url, [*frames(audio, rng)[:2], bad]))[-1]


async def whole(url: str, audio: np.ndarray, rng: random.Random) -> str:
    replies = await exchange(url, [*frames(audio, rng), {"end_of_stream": True}])
    assert replies[-1] == {"end_of_processing": True}, replies[-1]
    return " ".join(r["new"] for r in replies[:-1] if r["new"])


async def crowd(url: str, audio: list[np.ndarray]) -> tuple[dict, list, list]:
    rng = random.Random(3)
    kinds = ["whole"] * 70 + ["vanish"] * 15 + ["garbage"] * 15
    rng.shuffle(kinds)
    jobs = {"whole": whole, "vanish": vanish, "garbage": garbage}
    async with asyncio.timeout(6 * TIMEOUT):
        results = await asyncio.gather(
            *(jobs[k](url, a, random.Random(i)) for i, (k, a) in enumerate(zip(kinds, audio)))
        )
    texts = {i: r for i, (k, r) in enumerate(zip(kinds, results)) if k == "whole"}
    errors = [r for k, r in zip(kinds, results) if k == "garbage"]
    return texts, errors, kinds


def test_100_sessions_no_cross_talk_no_leak(serve):
    model, tokenizer, encoder, projector, _ = tiny_speech_parts()
    front = SpeechFrontEnd(encoder, projector, SPEC, precomputed=False)
    policy = LLMPolicy(
        model, tokenizer, max_piece_tokens=3, max_final_tokens=6, speech=front, cache_window=256
    )
    audio = sources(100)
    solo = [e.prediction for e in run_stream(audio, policy, FixedMilliseconds(240), progress=False)]
    server, url = serve(policy, chunk_ms=SPEC.chunk_ms, max_sessions=100, acquire_timeout=60)
    process = psutil.Process()
    rss = []
    for _ in range(2):
        texts, errors, kinds = asyncio.run(crowd(url, audio))
        assert len(texts) == kinds.count("whole") == 70
        assert texts == {i: solo[i] for i in texts}  # each stream got its own translation
        assert all("error" in e for e in errors)
        asyncio.run(asyncio.sleep(0.5))  # the vanished clients' last chunks drain
        assert not server.engine.sessions and not server.outboxes
        rss.append(process.memory_info().rss)
    engine = server.engine
    assert engine.steps < engine.turns / 4  # turns of many sessions share a step
    assert rss[1] - rss[0] < 64 << 20  # a second round of 100 sessions keeps no memory

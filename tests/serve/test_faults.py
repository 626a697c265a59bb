"""Bad input and faults: every one gets a clear ``{"error": ...}`` (or close code) and the
server goes on serving the others."""

import asyncio
import json

import numpy as np
import pytest
import websockets
from serve_helpers import TIMEOUT, exchange, run, ws_url

from simulpo.serve.metrics_log import MetricsLog, read_metrics_log
from simulpo.serve.session import Session


class Lengths:
    """A speech policy writing, per chunk, the number of samples it read (so resampling,
    split samples and cross-talk show in the text)."""

    name = "lengths"

    def act(self, states):
        return [str(len(s.new_chunk)) for s in states]


def pcm(seconds: float, rate: int = 16000) -> bytes:
    rng = np.random.default_rng(1)
    return (rng.normal(0, 3000, round(seconds * rate)).clip(-32768, 32767)).astype("<i2").tobytes()


def test_odd_length_frames_are_joined_across_frames(serve):
    _, url = serve(Lengths(), chunk_ms=100)
    data = pcm(0.35)
    odd = [data[i : i + 777] for i in range(0, len(data), 777)]  # samples split across frames
    replies = run(exchange(url, [*odd, {"end_of_stream": True}]))
    assert [r["new"] for r in replies[:-1]] == ["1600", "1600", "1600", "800"]
    assert replies[-1] == {"end_of_processing": True}


def test_other_sample_rates_are_resampled(serve, caplog):
    _, url = serve(Lengths(), chunk_ms=100)
    with caplog.at_level("INFO", logger="simulpo.serve"):
        replies = run(
            exchange(url, [{"sample_rate": 8000}, pcm(0.5, 8000), {"end_of_stream": True}])
        )
    # 0.5 s at 8 kHz = 8000 samples at 16 kHz: five chunks of 1600
    assert sum(int(r["new"]) for r in replies[:-1]) == 8000
    assert "resampling 8000 Hz" in caplog.text


@pytest.mark.parametrize(
    "frame, message",
    [
        ("not json", "text frames must be JSON objects"),
        ("[1, 2]", "text frames must be JSON objects"),
        ({"sample_rate": "fast"}, "sample_rate must be a whole number"),
        ({"sample_rate": 1}, "unsupported sample_rate"),
        ({"target_lang": "de"}, "unknown target language 'de': this server translates en -> es"),
        ({"text": "hello"}, "do not fit this server's speech policy"),
    ],
)
def test_bad_frames_get_an_error_before_closing(serve, frame, message):
    _, url = serve(Lengths(), chunk_ms=100, source_lang="en", target_lang="es")
    replies = run(exchange(url, [pcm(0.01), frame]))
    assert message in replies[-1]["error"]


def test_a_known_language_is_accepted(serve):
    _, url = serve(Lengths(), chunk_ms=100, source_lang="en", target_lang="es")
    frames = [{"source_lang": "EN", "target_lang": "es"}, pcm(0.15), {"end_of_stream": True}]
    assert run(exchange(url, frames))[-1] == {"end_of_processing": True}


def test_a_huge_frame_gets_an_error_then_close_1009_and_others_go_on(serve):
    _, url = serve(Lengths(), chunk_ms=100, max_frame_bytes=1 << 20)

    async def huge():
        async with websockets.connect(ws_url(url), max_size=None) as ws:
            await ws.send(pcm(0.15))  # a stream under way
            with pytest.raises(websockets.ConnectionClosedError) as closed:
                await ws.send(b"\0" * (100 << 20))  # 100 MB
                async with asyncio.timeout(TIMEOUT):
                    while True:
                        replies.append(json.loads(await ws.recv()))
            return closed.value.rcvd

    replies = []
    rcvd = run(huge())
    assert rcvd.code == 1009  # message too big: refused from the frame header
    assert replies[-1] == {
        "error": "frame too large: frame exceeds limit of 1048576 bytes "
        "(the server's --max-frame-bytes)"
    }
    assert run(exchange(url, [pcm(0.15), {"end_of_stream": True}]))[-1] == {
        "end_of_processing": True
    }


def test_a_frame_at_the_limit_is_read(serve):
    _, url = serve(Lengths(), chunk_ms=100, max_frame_bytes=3200)
    replies = run(exchange(url, [pcm(0.1), pcm(0.1), {"end_of_stream": True}]))  # 3200 B each
    assert [r["new"] for r in replies[:-1]] == ["1600", "1600"]


def test_idle_client_is_closed_and_frees_its_slot(serve):
    _, url = serve(Lengths(), chunk_ms=100, idle_timeout=0.3, max_sessions=1, acquire_timeout=5)
    replies = run(exchange(url, [pcm(0.25)]))  # never ends the stream
    assert [r.get("new") for r in replies] == ["1600", "1600", None]
    assert "idle for 0.3 s" in replies[-1]["error"]
    assert run(exchange(url, [pcm(0.15), {"end_of_stream": True}]))[-1] == {
        "end_of_processing": True
    }


def test_connecting_when_full(serve):
    _, url = serve(Lengths(), chunk_ms=100, max_sessions=1, acquire_timeout=0.2)

    async def two():
        async with websockets.connect(ws_url(url)) as first:
            await first.send(pcm(0.05))
            replies = await exchange(url, [pcm(0.05)])
            await first.send(json.dumps({"end_of_stream": True}))
            async with asyncio.timeout(TIMEOUT):
                async for m in first:
                    last = json.loads(m)
                    if "end_of_processing" in last:
                        break
        return replies, last

    replies, last = run(two())
    assert "server full: all 1 sessions are busy" in replies[-1]["error"]
    assert last == {"end_of_processing": True}


def test_a_connection_can_stream_again_after_the_end(serve):
    _, url = serve(Lengths(), chunk_ms=100)
    frames = [pcm(0.15), {"end_of_stream": True}, pcm(0.25), {"end_of_stream": True}]

    async def twice():
        async with websockets.connect(ws_url(url)) as ws:
            for frame in frames:
                await ws.send(json.dumps(frame) if isinstance(frame, dict) else frame)
            out = []
            async with asyncio.timeout(TIMEOUT):
                async for m in ws:
                    out.append(json.loads(m))
                    if len([r for r in out if "end_of_processing" in r]) == 2:
                        return out

    out = run(twice())
    assert [r.get("new") for r in out] == ["1600", "800", None, "1600", "1600", "800", None]


def test_no_audio_at_all(serve):
    _, url = serve(Lengths(), chunk_ms=100)
    assert run(exchange(url, [{"end_of_stream": True}])) == [
        {"new": "", "deleted": ""},
        {"end_of_processing": True},
    ]


def test_a_failing_policy_fails_its_sessions_only(serve):
    class Fails:
        name = "fails"

        def act(self, states):
            if any(len(s.new_chunk) == 800 for s in states):
                raise RuntimeError("boom")
            return ["ok" for _ in states]

    _, url = serve(Fails(), chunk_ms=100)
    bad = run(exchange(url, [pcm(0.15), {"end_of_stream": True}]))
    assert "internal error: boom" in bad[-1]["error"]
    good = run(exchange(url, [pcm(0.2), {"end_of_stream": True}]))
    assert [r.get("new") for r in good] == ["ok", "ok", None]


def test_metrics_log_repairs_a_torn_line_and_goes_on(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(
        '{"model_loading_time": 1.0}\n{"id": 4, "metadata": {"wav_name": "a.wav"}}\n{"id": 4, "tot'
    )
    log = MetricsLog(path)
    assert log.new_id() == 5
    session = Session(5, "text", chunk_words=2)
    [item] = session.add_text("a b") + session.end()
    log.write({"id": 5, "metadata": {"wav_name": "b.txt"}})
    log.chunk(session, item, 0.01, ["A"])
    log.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == 4 and lines[-1]["generated_tokens"] == ["A"]
    assert read_metrics_log(path) == [
        {"name": "b", "prediction": "A", "delays": [2000.0], "elapsed": [2010.0]}
    ]

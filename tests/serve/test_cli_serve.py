"""``simulpo serve`` and ``simulpo stream`` as a user runs them, and kill -9 of the server."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import websockets
from serve_helpers import TIMEOUT

from simulpo.cli import main
from simulpo.policies.schedules import WaitK
from simulpo.serve.metrics_log import read_metrics_log
from simulpo.stream.loop import run_stream
from simulpo.stream.segmenter import FixedWords
from simulpo.translators import build_translator

BIN = Path(sys.executable).parent
WORDS = ["the", "dog", "sees", "the", "old", "house", "near", "the", "river"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port: int, log: Path) -> subprocess.Popen:
    args = [BIN / "simulpo", "serve", "--policy", "wait-3", "--translator", "grammar"]
    args += ["--port", str(port), "--metrics-log", str(log), "--idle-timeout", "20"]
    server = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/info", timeout=2) as r:
                return server if json.load(r)["mode"] == "text" else None
        except OSError:
            if server.poll() is not None:
                raise AssertionError(server.stdout.read())
            time.sleep(0.2)
    server.kill()
    raise AssertionError("the server did not start")


@pytest.fixture
def server(tmp_path):
    port, log = free_port(), tmp_path / "metrics.jsonl"
    proc = start(port, log)
    yield port, log, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=TIMEOUT)


def test_stream_prints_the_translation_of_the_offline_loop(server, tmp_path, capsys):
    port, log, _ = server
    text = tmp_path / "talk.txt"
    text.write_text(" ".join(WORDS) + "\n")
    assert main(["stream", str(text), "--url", f"ws://127.0.0.1:{port}/"]) == 0
    [episode] = run_stream(
        [WORDS], WaitK(build_translator("grammar"), 3), FixedWords(1), progress=False
    )
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == episode.prediction.split()
    assert "chunks; added latency per chunk p50" in out
    assert read_metrics_log(log)[0]["prediction"] == episode.prediction


def test_kill_9_mid_stream_leaves_a_valid_log_and_restarts_clean(server, tmp_path):
    port, log, proc = server

    async def half_a_stream():
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/")
        await ws.send(json.dumps({"metrics_metadata": {"wav_name": "cut.txt"}}))
        for w in WORDS:
            await ws.send(json.dumps({"text": w}))
        async with asyncio.timeout(TIMEOUT):
            while "new" not in json.loads(await ws.recv()) or len(log.read_text().splitlines()) < 6:
                pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=TIMEOUT)
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(TIMEOUT):
                while True:  # replies already on their way, then the dead connection
                    await ws.recv()

    asyncio.run(half_a_stream())
    before = [json.loads(line) for line in log.read_text().splitlines()]  # every line whole
    assert before[0].keys() == {"model_loading_time"} and len(before) >= 6
    restarted = start(port, log)
    try:
        text = tmp_path / "again.txt"
        text.write_text("the old dog\n")
        assert main(["stream", str(text), "--url", f"ws://127.0.0.1:{port}/"]) == 0
    finally:
        restarted.send_signal(signal.SIGINT)
        restarted.wait(timeout=TIMEOUT)
    streams = read_metrics_log(log)
    assert [s["name"] for s in streams] == ["cut", "again"]  # a fresh id for the new stream
    assert streams[1]["prediction"]


def test_serve_refuses_bad_limits(capsys):
    assert main(["serve", "--max-sessions", "0"]) == 2
    assert "--max-sessions must be at least 1" in capsys.readouterr().err


def test_serve_refuses_a_chunk_the_speech_model_was_not_trained_with(tmp_path, capsys):
    from simulpo.stream.settings import StreamConfig, save_stream

    model = tmp_path / "model"
    save_stream(model, StreamConfig(chunk_ms=960))
    (model / "projector.json").write_text("{}")  # a speech model directory
    assert main(["serve", "--policy", "llm", "--model", str(model), "--chunk-ms", "1120"]) == 2
    err = capsys.readouterr().err
    assert "--chunk-ms 1120 conflicts with stream.chunk_ms = 960" in err
    assert "model" in err and "stream.json" in err

"""simulstream 1.0.0's own clients against ``simulpo serve``: its WAV client over the
WebSocket protocol and ``simulstream_inference`` through its HTTP proxy processor. The text
they get equals the offline streaming loop (what ``eval --speech`` runs) of the same greedy
speech policy on the same audio, and simulstream's own log reader reads the metrics log."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from serve_helpers import TIMEOUT, ws_url
from tiny_lm import tiny_speech_parts

from simulpo.data.audio import read_audio, write_audio
from simulpo.models.speech_encoder import ChunkSpec
from simulpo.policies.llm import LLMPolicy
from simulpo.policies.speech_front import SpeechFrontEnd
from simulpo.serve.metrics_log import MetricsLog, read_metrics_log
from simulpo.stream.loop import run_stream
from simulpo.stream.segmenter import FixedMilliseconds

pytestmark = pytest.mark.usefixtures("one_thread")
SPEC = ChunkSpec(chunk_ms=240, context_ms=480)
BIN = Path(sys.executable).parent
STUBS = Path(__file__).parent / "stubs"
# 0.48 s is two whole chunks: the last full chunk must still be read as the last one
SECONDS = {"one": 0.9, "two": 1.7, "three": 0.48}


@pytest.fixture(scope="module")
def policy(one_thread):
    model, tokenizer, encoder, projector, _ = tiny_speech_parts()
    front = SpeechFrontEnd(encoder, projector, SPEC, precomputed=False)
    return LLMPolicy(model, tokenizer, max_piece_tokens=4, max_final_tokens=8, speech=front)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(0)
    paths = [
        write_audio(folder / f"{name}.wav", rng.normal(0, 0.1, round(s * 16000)).clip(-1, 1))
        for name, s in SECONDS.items()
    ]
    (folder / "list.txt").write_text("".join(f"{p.name}\n" for p in paths))
    return folder


def as_sent(audio: np.ndarray, frame: int) -> np.ndarray:
    """The audio simulstream's WAV client sends in frames of ``frame`` samples: its
    ``send_audio`` sends the last (partial) frame twice (``if i < len(data)`` after the
    loop), so the server hears that tail twice."""
    return np.concatenate([audio, audio[(len(audio) - 1) // frame * frame :]])


def offline(policy, wavs, frame: int | None = None) -> dict[str, str]:
    names = list(SECONDS)
    audio = [read_audio(wavs / f"{n}.wav") for n in names]
    if frame is not None:
        audio = [as_sent(a, frame) for a in audio]
    episodes = run_stream(audio, policy, FixedMilliseconds(SPEC.chunk_ms), progress=False)
    return {n: e.prediction for n, e in zip(names, episodes)}


def client(args, tmp_path):
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(STUBS), os.environ.get("PYTHONPATH", "")])
    )
    done = subprocess.run(
        args,
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=4 * TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def simulstream_texts(log: Path) -> dict[str, str]:
    from simulstream.metrics.readers import LogReader

    config = SimpleNamespace(detokenizer_type="simuleval", latency_unit="word")
    outputs = LogReader(config, str(log)).final_outputs_and_latencies()
    return {name: out.final_text for name, out in outputs.items()}


def test_wavs_client_gets_the_offline_translation(serve, policy, wavs, tmp_path):
    log = tmp_path / "metrics.jsonl"
    _, url = serve(policy, MetricsLog(log), chunk_ms=SPEC.chunk_ms)
    client(
        [
            BIN / "simulstream_wavs_client",
            "--uri",
            ws_url(url),
            "--wav-list-file",
            wavs / "list.txt",
            "--chunk-duration-ms",
            "100",
        ],
        tmp_path,
    )
    expected = offline(policy, wavs, frame=1600)
    assert any(expected.values())  # the tiny model writes something
    served = {s["name"]: s["prediction"] for s in read_metrics_log(log)}
    assert served == expected
    assert simulstream_texts(log) == expected
    assert served != offline(policy, wavs)  # the repeated tail does change the output
    # delays: the audio read (ms) when each word was written, ending at the source length
    for stream in read_metrics_log(log):
        sent = len(as_sent(np.zeros(round(SECONDS[stream["name"]] * 16000)), 1600))
        assert stream["delays"] == sorted(stream["delays"])
        assert max(stream["delays"], default=0) <= sent / 16 + 1e-6


def test_inference_through_the_http_proxy_processor(serve, policy, wavs, tmp_path):
    _, url = serve(policy, chunk_ms=SPEC.chunk_ms, session_ttl=5)
    host, port = url.rsplit("/", 1)[1].split(":")
    config = tmp_path / "proxy.yaml"
    config.write_text(
        "type: simulstream.server.speech_processors.remote.http_proxy_speech_processor."
        f"HttpProxySpeechProcessor\nhostname: {host}\nport: {port}\n"
    )
    log = tmp_path / "client_metrics.jsonl"
    client(
        [
            BIN / "simulstream_inference",
            "--speech-processor-config",
            config,
            "--wav-list-file",
            wavs / "list.txt",
            "--metrics-log-file",
            log,
            "--tgt-lang",
            "xx",
        ],
        tmp_path,
    )
    assert simulstream_texts(log) == offline(policy, wavs)

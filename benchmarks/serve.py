"""Throughput and real-time factor of ``simulpo serve``: batched turns vs one session at a time.

One server (``simulpo.serve``, in this process, on loopback) serves a speech LLM policy of
the speech demo's shape (the tiny Qwen2 LM of ``configs/demo-speech.yaml`` with random
weights, its 1120 ms chunks with 2000 ms of encoder context, the packaged Whisper tiny.en
encoder, a bounded cache per session). N clients (1, 8, 32, 100 by default) speak
simulstream's WebSocket protocol to it at once, each streaming its own ``--seconds`` of
noise and tones as PCM frames of 100 ms. Side by side in one run, with the same model and
the same audio:

- **batched**: the engine as served: every step, all sessions with a ready chunk take one
  batched turn (one ``policy.act``, one batched ``generate``);
- **one at a time**: the same engine with ``max_batch=1``: every step is one session's turn.

Throughput: the clients send their audio as fast as the server takes it; "wall" is the time
from the first connection to the last ``end_of_processing``. sessions/s = N ÷ wall, and the
real-time factor RTF = wall ÷ one stream's audio length: the N streams are translated in
RTF times their own length, so RTF < 1 means the server keeps up with N live streams.
batched ÷ one is the throughput ratio. The texts of the two runs are compared (greedy:
they must be identical). With ``--live`` each N is also run with clients pacing their
audio in real time, as microphones would, and the p50/p95 of the server's added latency
per chunk (``latency_ms``: from a chunk being ready to its reply) are printed.

The header also times the encoder alone on 32 windows of one turn's length (chunk +
context): one at a time vs one batched call (``SpeechEncoder.encode_windows``), and whether
the frames are identical.

Random weights never stop early: every piece runs to its budget (``--piece-tokens``), so
every turn of every session writes the same number of tokens. The clients share the
process (and its GIL) with the server.

    .venv/bin/python benchmarks/serve.py [--sessions 1,8,32,100] [--seconds 10] [--live] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from speech_rtf import build_random_model, load_encoder, recording

from simulpo.policies.build import PolicySpec, build_policy
from simulpo.serve.app import ServeConfig, Server, running
from simulpo.serve.client import stream_frames
from simulpo.stream.units import join_pieces

#: audio per binary frame a client sends (ms), as ``simulpo stream``'s default
FRAME_MS = 100


def pcm_frames(audio: np.ndarray) -> list[bytes]:
    pcm = np.rint(np.clip(audio, -1, 1) * 32767).astype("<i2")
    step = 16 * FRAME_MS
    return [pcm[i : i + step].tobytes() for i in range(0, len(pcm), step)]


class EncoderClock:
    """Times the speech encoder inside the policy's turns (one batched call per step: every
    session's windows of the step together)."""

    def __init__(self, policy) -> None:
        self.seconds = 0.0
        inner = policy.speech.chunk_frames

        def timed(states):
            tic = time.perf_counter()
            frames = inner(states)
            self.seconds += time.perf_counter() - tic
            return frames

        policy.speech.chunk_frames = timed


def encoder_batching(encoder, window_s: float, n: int = 32) -> dict:
    """The encoder alone: ``n`` windows of ``window_s`` one at a time vs in one batched call."""
    rng = np.random.default_rng(0)
    windows = [rng.normal(0, 0.1, round(window_s * 16000)).astype(np.float32) for _ in range(n)]
    encoder.encode(windows[0])  # warm-up
    tic = time.perf_counter()
    alone = [encoder.encode(w) for w in windows]
    mid = time.perf_counter()
    together = encoder.encode_windows(windows)
    end = time.perf_counter()
    return {
        "windows": n,
        "window_s": window_s,
        "one_by_one_s": mid - tic,
        "batched_s": end - mid,
        "identical": all(torch.equal(a, b) for a, b in zip(alone, together)),
    }


def serve_run(policy, streams: list[list[bytes]], max_batch: int, live: bool, timeout: float):
    """All ``streams`` at once against a fresh server; wall time, texts, latencies, steps,
    and the encoder's seconds (``policy.encoder_clock``)."""
    n = len(streams)
    encoder_s = policy.encoder_clock.seconds
    server = Server(
        policy,
        ServeConfig(mode="speech", max_sessions=n, max_batch=max_batch, idle_timeout=timeout),
    )

    async def crowd(url: str):
        pace = FRAME_MS / 1000 if live else 0.0
        return await asyncio.gather(
            *(stream_frames(url, {"sample_rate": 16000}, s, pace, timeout) for s in streams)
        )

    with running(server) as base:
        url = "ws" + base[len("http") :] + "/"
        tic = time.perf_counter()
        results = asyncio.run(crowd(url))
        wall = time.perf_counter() - tic
        steps, turns = server.engine.steps, server.engine.turns
    texts = [join_pieces([r.get("new", "") for r in replies], None) for replies in results]
    latencies = [r["latency_ms"] for replies in results for r in replies if "latency_ms" in r]
    return {
        "wall_s": wall,
        "texts": texts,
        "latency_ms": latencies,
        "steps": steps,
        "turns": turns,
        "encoder_s": policy.encoder_clock.seconds - encoder_s,
    }


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", default="1,8,32,100", help="concurrent sessions, comma-separated")
    ap.add_argument("--seconds", type=float, default=10.0, help="audio per stream (s)")
    ap.add_argument("--model", help="speech model dir (default: a random one of the demo's shape)")
    ap.add_argument(
        "--encoder",
        default="",
        help='"" = packaged Whisper tiny.en (the demo\'s), "random" = a 1-layer random Whisper',
    )
    ap.add_argument("--chunk-ms", type=int, default=1120, help="encoder chunk = a turn's audio")
    ap.add_argument("--context-ms", type=int, default=2000, help="encoder left context (ms)")
    ap.add_argument("--piece-tokens", type=int, default=8, help="token budget of a piece")
    ap.add_argument("--final-tokens", type=int, default=16, help="token budget of the last piece")
    ap.add_argument("--window", type=int, default=1024, help="cache window per session (tokens)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--live", action="store_true", help="also pace clients in real time: latency")
    ap.add_argument("--timeout", type=float, default=1800.0, help="bound on each client (s)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sessions.split(",")]
    encoder = load_encoder(args.encoder)
    streams = [pcm_frames(recording(args.seconds, seed=i)) for i in range(max(sizes))]
    audio_s = len(np.concatenate([np.frombuffer(f, "<i2") for f in streams[0]])) / 16000
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or build_random_model(Path(tmp) / "model", "tiny", encoder.dim)
        policy = build_policy(
            PolicySpec(
                kind="llm", speech=True, model=model_dir, chunk_ms=args.chunk_ms,
                context_ms=args.context_ms, max_piece_tokens=args.piece_tokens,
                max_new_tokens=args.final_tokens, cache_window=args.window, precomputed=False,
            ),
            encoder=encoder,
        )  # fmt: skip
        parameters = sum(p.numel() for p in policy.model.parameters())
    policy.encoder_clock = EncoderClock(policy)
    serve_run(policy, streams[:2], 256, False, args.timeout)  # warm-up
    result = {
        "model": args.model or "random tiny (demo shape)",
        "parameters": parameters,
        "encoder": encoder.name,
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "load_average": os.getloadavg()[0],
        "audio_s": audio_s,
        "chunk_ms": args.chunk_ms,
        "piece_tokens": args.piece_tokens,
        "encoder_batching": encoder_batching(encoder, (args.chunk_ms + args.context_ms) / 1000),
        "rows": [],
    }
    for n in sizes:
        row: dict = {"sessions": n}
        for label, max_batch in (("batched", 256), ("one", 1)):
            run = serve_run(policy, streams[:n], max_batch, False, args.timeout)
            row[label] = {
                "wall_s": run["wall_s"],
                "sessions_per_s": n / run["wall_s"],
                "rtf": run["wall_s"] / audio_s,
                "mean_batch": run["turns"] / max(run["steps"], 1),
                "encoder_share": run["encoder_s"] / run["wall_s"],
            }
            row[label + "_texts"] = run["texts"]
            if args.live:
                paced = serve_run(policy, streams[:n], max_batch, True, args.timeout)
                row[label]["p50_ms"] = percentile(paced["latency_ms"], 50)
                row[label]["p95_ms"] = percentile(paced["latency_ms"], 95)
        row["speedup"] = row["batched"]["sessions_per_s"] / row["one"]["sessions_per_s"]
        row["same_text"] = row.pop("batched_texts") == row.pop("one_texts")
        result["rows"].append(row)
        if not args.json:
            print_row(row, args.live, header=n == sizes[0], result=result)
    if args.json:
        print(json.dumps(result, indent=1))
    return result


def print_row(row: dict, live: bool, header: bool, result: dict) -> None:
    lat = f" {'p50 ms':>7} {'p95 ms':>7}" if live else ""
    if header:
        print(
            f"{result['model']}: {result['parameters'] / 1e6:.1f}M parameters, encoder "
            f"{result['encoder']}, on {result['cpu']} with {result['threads']} thread(s) "
            f"(load average {result['load_average']:.1f}); {result['audio_s']:g} s of audio per "
            f"stream in {result['chunk_ms']} ms chunks, {result['piece_tokens']} tokens a piece"
        )
        e = result["encoder_batching"]
        print(
            f"encoder alone, {e['windows']} windows of {e['window_s']:g} s: one by one "
            f"{e['one_by_one_s']:.2f} s, batched {e['batched_s']:.2f} s, frames identical: "
            f"{'yes' if e['identical'] else 'NO'}\n"
        )
        side = f"{'wall s':>7} {'sess/s':>7} {'RTF':>6} {'batch':>5} {'enc %':>5}{lat}"
        print(f"{'':>8} | {'batched':<{len(side)}} | {'one at a time':<{len(side)}} |")
        print(f"{'sessions':>8} | {side} | {side} | {'batched/one':>11} {'same text':>9}")

    def cells(x: dict) -> str:
        latency = f" {x['p50_ms']:>7.0f} {x['p95_ms']:>7.0f}" if live else ""
        return (
            f"{x['wall_s']:>7.1f} {x['sessions_per_s']:>7.2f} {x['rtf']:>6.2f} "
            f"{x['mean_batch']:>5.1f} {100 * x['encoder_share']:>5.0f}{latency}"
        )

    same = "yes" if row["same_text"] else "NO"
    print(
        f"{row['sessions']:>8} | {cells(row['batched'])} | {cells(row['one'])} | "
        f"{row['speedup']:>11.2f} {same:>9}",
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1:])

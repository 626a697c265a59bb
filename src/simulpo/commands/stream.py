"""``simulpo stream FILE --url ...``: stream a WAV or text file to a server, print the translation."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "stream"
HELP = "stream a .wav or .txt file to `simulpo serve`, print the translation as it arrives"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help=HELP)
    p.add_argument("file", help="a WAV file (mono PCM) or a text file (its words)")
    p.add_argument("--url", default="ws://127.0.0.1:8765/", help="the server's WebSocket URL")
    p.add_argument("--frame-ms", type=float, default=100.0, help="audio per binary frame (ms)")
    p.add_argument("--realtime", action="store_true", help="send audio at its real pace")
    p.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    p.add_argument(
        "--target-lang",
        help="the translation's language, sent to the server; zh, ja, th, ... print their "
        "pieces without spaces between them",
    )
    return p


def run(args: argparse.Namespace) -> None:
    import asyncio  # here: every command's parser imports this module

    from simulpo.serve.client import printer, stream_file

    show = printer(args.target_lang)
    replies = asyncio.run(
        stream_file(
            args.url, Path(args.file), args.frame_ms, args.realtime, args.timeout, show,
            args.target_lang,
        )
    )  # fmt: skip
    latencies = sorted(r["latency_ms"] for r in replies if "latency_ms" in r)
    print()
    if latencies:
        p50 = latencies[len(latencies) // 2]
        print(
            f"{len(latencies)} chunks; added latency per chunk p50 {p50:.0f} ms, max {latencies[-1]:.0f} ms"
        )

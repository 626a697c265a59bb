"""``simulpo serve``: one policy, loaded once, behind simulstream's protocols and a page.

docs/serve.md has the protocols, the flags and how to scale past one machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from simulpo.commands import CACHE_WINDOW, add_policy_arguments, policy_spec_fields
from simulpo.errors import SimulpoError

#: Apertium pairs' ISO 639-3 codes → the two-letter codes clients send
_TWO_LETTER = {"eng": "en", "spa": "es", "cat": "ca", "fra": "fr", "por": "pt", "ita": "it"}


NAME = "serve"
HELP = "serve a policy live: simulstream's WebSocket and HTTP protocols, and a web page"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help=HELP)
    add_policy_arguments(p, "policy (as in `simulpo eval`)")
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: all)")
    g.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    g.add_argument("--source-lang", help="source language clients may name (default: the pair's)")
    g.add_argument("--target-lang", help="target language clients may name (default: the pair's)")
    g.add_argument("--max-sessions", type=int, default=128, help="concurrent sessions")
    g.add_argument(
        "--acquire-timeout", type=float, default=5.0, help="seconds a client waits for a slot"
    )
    g.add_argument(
        "--idle-timeout", type=float, default=60.0, help="seconds without a frame before closing"
    )
    g.add_argument("--max-frame-bytes", type=int, default=1 << 20, help="larger frames are refused")
    g.add_argument(
        "--session-ttl", type=float, default=60.0, help="HTTP protocol: idle session lifetime (s)"
    )
    g.add_argument(
        "--metrics-log",
        default="runs/serve/metrics.jsonl",
        help="simulstream's JSONL metrics log, appended ('' = none)",
    )
    return p


def run(args: argparse.Namespace) -> None:
    from simulpo.serve.app import ServeConfig, Server, uvicorn_server
    from simulpo.serve.metrics_log import MetricsLog
    from simulpo.stream.units import default_unit

    for name in ("max_sessions", "max_frame_bytes", "chunk_words"):
        if getattr(args, name) < 1:
            raise SimulpoError(f"--{name.replace('_', '-')} must be at least 1")
    tic = time.perf_counter()
    policy, mode = build_served_policy(args)
    loading = time.perf_counter() - tic
    source, target = _languages(args)
    config = ServeConfig(
        mode=mode,
        chunk_ms=args.chunk_ms,
        chunk_words=args.chunk_words,
        unit=default_unit(target),  # latency and the metrics log's tokens: chars for zh/ja
        source_lang=source,
        target_lang=target,
        max_sessions=args.max_sessions,
        acquire_timeout=args.acquire_timeout,
        idle_timeout=args.idle_timeout,
        max_frame_bytes=args.max_frame_bytes,
        session_ttl=args.session_ttl,
    )
    metrics = MetricsLog(args.metrics_log) if args.metrics_log else None
    if metrics is not None:
        metrics.write({"model_loading_time": loading})
    uv = uvicorn_server(Server(policy, config, metrics), args.host, args.port)
    shown = f"{args.host}:{args.port}"
    print(
        f"serving {policy.name} ({mode}, {source or 'any'} -> {target or 'any'}) on "
        f"ws://{shown}/ and http://{shown}/ (page); metrics log {args.metrics_log or 'off'}",
        flush=True,
    )
    try:
        uv.run()
    finally:
        if metrics is not None:
            metrics.close()


def build_served_policy(args: argparse.Namespace):
    """The policy and what it reads (``"speech"`` or ``"text"``), from the same
    :class:`~simulpo.policies.build.PolicySpec` ``simulpo eval`` describes. A speech LLM
    reads the chunks it was trained on: a ``--chunk-ms`` its ``stream.json`` contradicts
    is an error (``args.chunk_ms`` is set to the one used)."""
    from simulpo.policies.build import PolicySpec, build_policy
    from simulpo.stream.settings import agree

    kind = args.policy or "wait-k"
    speech = kind == "cascade" or (
        kind == "llm" and bool(args.model) and (Path(args.model) / "projector.json").is_file()
    )
    trained = args.model if speech and kind == "llm" else None
    args.chunk_ms = float(agree("chunk_ms", args.chunk_ms, trained, "--chunk-ms"))
    window = CACHE_WINDOW if args.cache_window is None else args.cache_window
    spec = PolicySpec(
        **policy_spec_fields(args),
        kind=kind,
        translator=args.translator or "apertium",
        speech=speech,
        chunk_ms=args.chunk_ms,
        # a live stream is unbounded: the LLM's cache is bounded (the cascade keeps none)
        cache_window=(window or None) if kind == "llm" else None,
    )
    return build_policy(spec), "speech" if speech else "text"


def _languages(args: argparse.Namespace) -> tuple[str | None, str | None]:
    source, target = args.source_lang, args.target_lang
    if (args.translator or "apertium") == "apertium" and "-" in args.pair:
        src, tgt = args.pair.split("-", 1)
        source = source or _TWO_LETTER.get(src, src)
        target = target or _TWO_LETTER.get(tgt, tgt)
    return source, target

"""A command-line client of the WebSocket protocol: a WAV or text file in, the translation
printed as it arrives (``simulpo stream``)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from simulpo.errors import SimulpoError
from simulpo.io import read_text
from simulpo.stream.units import piece_separator


def source_frames(path: Path, frame_ms: float) -> tuple[dict[str, Any], list[bytes | dict], float]:
    """The config frame, the data frames and the seconds each frame spans (0 for text)."""
    if path.suffix.lower() == ".txt":
        words = read_text(path).split()
        return {"metrics_metadata": {"wav_name": str(path)}}, [{"text": w} for w in words], 0.0
    try:
        audio, rate = sf.read(str(path), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise SimulpoError(f"{path}: cannot read audio ({err})") from None
    if audio.shape[1] != 1:
        raise SimulpoError(f"{path}: {audio.shape[1]} channels; the protocol carries mono audio")
    step = max(1, round(rate * frame_ms / 1000))
    pcm = np.ascontiguousarray(audio[:, 0]).astype("<i2")
    frames = [pcm[i : i + step].tobytes() for i in range(0, len(pcm), step)]
    config = {"sample_rate": rate, "metrics_metadata": {"wav_name": str(path)}}
    return config, frames, step / rate


async def stream_file(
    url: str,
    path: Path,
    frame_ms: float = 100.0,
    realtime: bool = False,
    timeout: float = 600.0,
    show: Callable[[dict], None] | None = None,
    target_lang: str | None = None,
) -> list[dict]:
    """Stream ``path`` to the server at ``url``; returns its replies. ``realtime`` paces
    audio frames at their duration (as a microphone would send them); ``target_lang``
    is declared in the config frame (the server refuses one it does not translate to)."""
    config, frames, seconds = source_frames(Path(path), frame_ms)
    if target_lang:
        config["target_lang"] = target_lang
    return await stream_frames(url, config, frames, seconds if realtime else 0.0, timeout, show)


async def stream_frames(
    url: str,
    config: dict[str, Any],
    frames: list[bytes | dict],
    pace: float = 0.0,
    timeout: float = 600.0,
    show: Callable[[dict], None] | None = None,
) -> list[dict]:
    """One stream over simulstream's WebSocket protocol: the config frame, ``frames`` (one
    every ``pace`` seconds; 0 = as fast as the server takes them), end of stream; returns
    the replies up to ``end_of_processing``."""
    import websockets

    replies: list[dict] = []
    try:
        async with websockets.connect(url, max_size=None, open_timeout=timeout) as ws:

            async def send() -> None:
                await ws.send(json.dumps(config))
                start = time.monotonic()
                for i, frame in enumerate(frames):
                    await ws.send(json.dumps(frame) if isinstance(frame, dict) else frame)
                    if pace:
                        await asyncio.sleep(max(0.0, start + (i + 1) * pace - time.monotonic()))
                await ws.send(json.dumps({"end_of_stream": True}))

            sender = asyncio.create_task(send())
            async with asyncio.timeout(timeout):
                async for message in ws:
                    reply = json.loads(message)
                    if "error" in reply:
                        raise SimulpoError(f"the server says: {reply['error']}")
                    replies.append(reply)
                    if show is not None:
                        show(reply)
                    if reply.get("end_of_processing"):
                        break
            await sender
    except (OSError, websockets.InvalidURI, websockets.InvalidHandshake) as err:
        raise SimulpoError(f"cannot stream to {url}: {err}") from None
    except websockets.ConnectionClosedError as err:
        raise SimulpoError(f"the server closed the connection: {err}") from None
    except TimeoutError:
        raise SimulpoError(f"no end of processing from {url} within {timeout:g} s") from None
    return replies


def printer(target_lang: str | None = None) -> Callable[[dict], None]:
    """Shows committed text as it arrives, on one line, its pieces joined as
    ``target_lang`` is written (spaces or none)."""
    separator, started = piece_separator(target_lang), False

    def show(reply: dict) -> None:
        nonlocal started
        piece = (reply.get("new") or "").strip()
        if piece:
            sys.stdout.write((separator if started else "") + piece)
            sys.stdout.flush()
            started = True

    return show

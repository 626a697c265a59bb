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


def source_frames(path: Path, frame_ms: float) -> tuple[dict[str, Any], list[bytes | dict], float]:
    """The config frame, the data frames and the seconds each frame spans (0 for text)."""
    if path.suffix.lower() == ".txt":
        words = path.read_text(encoding="utf-8").split()
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
) -> list[dict]:
    """Stream ``path`` to the server at ``url``; returns its replies. ``realtime`` paces
    audio frames at their duration (as a microphone would send them)."""
    import websockets

    config, frames, seconds = source_frames(Path(path), frame_ms)
    replies: list[dict] = []
    try:
        async with websockets.connect(url, max_size=None, open_timeout=timeout) as ws:

            async def send() -> None:
                await ws.send(json.dumps(config))
                start = time.monotonic()
                for i, frame in enumerate(frames):
                    await ws.send(json.dumps(frame) if isinstance(frame, dict) else frame)
                    if realtime and seconds:
                        await asyncio.sleep(max(0.0, start + (i + 1) * seconds - time.monotonic()))
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


def print_reply(reply: dict) -> None:
    """Committed text as it arrives, on one line."""
    if reply.get("new"):
        sys.stdout.write(reply["new"] + " ")
        sys.stdout.flush()

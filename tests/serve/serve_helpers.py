"""Bounded loopback clients of the serving tests."""

from __future__ import annotations

import asyncio
import json

import websockets

#: every wait of a test client is bounded by this many seconds
TIMEOUT = 30


def ws_url(url: str) -> str:
    return "ws" + url[len("http") :] + "/"


async def exchange(url: str, frames, until_end: bool = True) -> list[dict]:
    """Send ``frames`` (bytes, str or dict) and collect the replies until
    ``end_of_processing``, an error or the server's close (bounded by TIMEOUT)."""
    replies = []
    async with websockets.connect(ws_url(url), max_size=None) as ws:
        for frame in frames:
            await ws.send(json.dumps(frame) if isinstance(frame, dict) else frame)
        try:
            async with asyncio.timeout(TIMEOUT):
                async for message in ws:
                    replies.append(json.loads(message))
                    if "end_of_processing" in replies[-1] and until_end:
                        break
        except websockets.ConnectionClosed:
            pass
    return replies


def run(coro):
    return asyncio.run(coro)

"""The server: simulstream's WebSocket protocol, its HTTP speech-processor protocol and the page.

One ASGI app (starlette, run by uvicorn, whose WebSocket side is the ``websockets``
library) on one port:

- ``ws://HOST:PORT/`` — simulstream's WebSocket protocol: an optional JSON config frame
  (``sample_rate``, ``source_lang``, ``target_lang``, ``metrics_metadata``), binary PCM
  s16le mono frames (or, for text policies, ``{"text": "words"}`` frames),
  ``{"end_of_stream": true}``; replies ``{"new", "deleted", ...}`` per processed chunk and
  ``{"end_of_processing": true}``. A bad frame, an unknown language, a full server or an
  idle client gets ``{"error": ...}`` and the connection is closed. After
  ``end_of_processing`` the same connection may start another stream, as in simulstream.
- ``/speech_chunk_size``, ``/process_chunk``, ``/source_language``, ``/target_language``,
  ``/end_of_stream``, ``/clear``, ``/tokens_to_string`` — simulstream's HTTP
  speech-processor protocol (JSON bodies with ``session_id``, also on GET), for its
  ``HttpProxySpeechProcessor``; sessions idle for ``session_ttl`` seconds are closed.
- ``GET /`` the page (``serve/static/``), ``GET /info`` what the page needs to know.

WebSocket and HTTP sessions share ``max_sessions`` slots; all of them go through one
:class:`~simulpo.serve.engine.Engine`, so one model serves them all in batched turns.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from simulpo.serve.engine import Engine
from simulpo.serve.metrics_log import MetricsLog
from simulpo.serve.session import SAMPLE_RATE, ClientError, Session
from simulpo.stream.loop import Policy
from simulpo.stream.units import join_pieces, piece_separator

LOG = logging.getLogger("simulpo.serve")

#: WebSocket close codes: bad input, server full (try again later), internal error
POLICY_VIOLATION, TRY_AGAIN_LATER, INTERNAL_ERROR = 1008, 1013, 1011


@dataclass
class ServeConfig:
    """Limits and stream settings (``simulpo serve`` flags of the same names)."""

    mode: str = "speech"  # "speech" (PCM in) or "text" (words in): what the policy reads
    chunk_ms: float = 1120.0
    chunk_words: int = 1
    unit: str = "word"
    source_lang: str | None = None  # None: any language a client names is accepted
    target_lang: str | None = None
    max_sessions: int = 128
    acquire_timeout: float = 5.0  # seconds a client waits for a free slot
    idle_timeout: float = 60.0  # seconds without a frame before a stream is closed
    max_frame_bytes: int = 1 << 20  # larger frames: an error, close 1009; never buffered
    session_ttl: float = 60.0  # HTTP protocol: idle seconds before a session is dropped
    max_batch: int = 256


class Server:
    """The policy, its engine and the sessions; :meth:`app` is the ASGI application."""

    def __init__(
        self, policy: Policy, config: ServeConfig, metrics: MetricsLog | None = None
    ) -> None:
        self.policy, self.config, self.metrics = policy, config, metrics
        self.loop: asyncio.AbstractEventLoop | None = None
        self.engine: Engine | None = None
        self.slots: asyncio.Semaphore | None = None
        self.outboxes: dict[int, asyncio.Queue] = {}
        self.http_sessions: dict[str, _HttpSession] = {}
        self._ids = 0

    # ------------------------------------------------------------ lifecycle

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        self.loop = asyncio.get_running_loop()
        self.slots = asyncio.Semaphore(self.config.max_sessions)
        self.engine = Engine(self.policy, self._deliver, self.metrics, self.config.max_batch)
        reaper = asyncio.create_task(self._reap_http_sessions())
        try:
            yield
        finally:
            reaper.cancel()
            self.engine.close()

    def app(self) -> Starlette:
        static = resources.files("simulpo.serve") / "static"
        routes = [
            WebSocketRoute("/", self.websocket),
            WebSocketRoute("/ws", self.websocket),
            Route("/", lambda r: FileResponse(str(static / "index.html"))),
            Route("/info", self.info),
            Mount("/static", StaticFiles(directory=str(static)), name="static"),
            Route("/speech_chunk_size", self.http_chunk_size, methods=["GET"]),
            Route("/process_chunk", self.http_process_chunk, methods=["POST"]),
            Route("/source_language", self.http_language, methods=["PUT"]),
            Route("/target_language", self.http_language, methods=["PUT"]),
            Route("/end_of_stream", self.http_end_of_stream, methods=["POST"]),
            Route("/clear", self.http_clear, methods=["POST"]),
            Route("/tokens_to_string", self.http_tokens_to_string, methods=["GET"]),
        ]
        return Starlette(routes=routes, lifespan=self.lifespan)

    async def info(self, request: Request) -> JSONResponse:
        c = self.config
        return JSONResponse(
            {
                "policy": self.policy.name,
                "mode": c.mode,
                "source_lang": c.source_lang,
                "target_lang": c.target_lang,
                "separator": piece_separator(c.target_lang),  # between two pieces
                "sample_rate": SAMPLE_RATE,
                "chunk_ms": c.chunk_ms if c.mode == "speech" else None,
                "chunk_words": c.chunk_words if c.mode == "text" else None,
                "limits": {
                    k: getattr(c, k)
                    for k in ("max_sessions", "idle_timeout", "max_frame_bytes", "session_ttl")
                },
            }
        )

    # -------------------------------------------------------------- sessions

    def _new_session(self) -> Session:
        c = self.config
        if self.metrics is not None:
            sid = self.metrics.new_id()
        else:
            sid, self._ids = self._ids, self._ids + 1
        session = Session(sid, c.mode, c.chunk_ms, c.chunk_words, c.unit, c.target_lang)
        self.outboxes[sid] = asyncio.Queue()
        self.engine.add(session)
        return session

    def _drop_session(self, session: Session) -> None:
        self.engine.remove(session)
        self.outboxes.pop(session.sid, None)

    def _deliver(self, session: Session, result: Any) -> None:
        """Engine thread → event loop: one processed chunk's reply (or the batch's error)."""
        self.loop.call_soon_threadsafe(self._put, session.sid, result)

    def _put(self, sid: int, result: Any) -> None:
        box = self.outboxes.get(sid)
        if box is not None:  # a session closed meanwhile gets nothing
            box.put_nowait(result)

    def _queue(self, session: Session, items: list) -> int:
        if items:
            if self.metrics is not None and not session.named:
                self._metadata(session, {"wav_name": f"session-{session.sid}"})
            self.engine.wake()
        return len(items)

    def _metadata(self, session: Session, metadata: Any) -> None:
        session.named = True
        if self.metrics is not None:
            self.metrics.write({"id": session.sid, "metadata": metadata})

    def _check_language(self, key: str, value: Any) -> None:
        expected = getattr(self.config, key)
        if not isinstance(value, str) or not value.strip():
            raise ClientError(f"{key} must be a language code such as 'en', got {value!r}")
        if expected is not None and value.strip().lower() != expected.lower():
            pair = f"{self.config.source_lang or '?'} -> {self.config.target_lang or '?'}"
            raise ClientError(
                f"unknown {key.split('_')[0]} language {value!r}: this server translates {pair}"
            )

    async def _acquire(self) -> None:
        try:
            await asyncio.wait_for(self.slots.acquire(), self.config.acquire_timeout)
        except TimeoutError:
            raise ClientError(
                f"server full: all {self.config.max_sessions} sessions are busy "
                f"(waited {self.config.acquire_timeout:g} s); try again later"
            ) from None

    # ------------------------------------------------------------ WebSocket

    async def websocket(self, ws: WebSocket) -> None:
        await ws.accept()
        try:
            await self._acquire()
        except ClientError as err:
            await _close_with_error(ws, str(err), TRY_AGAIN_LATER)
            return
        try:
            await self._serve_connection(ws)
        finally:
            self.slots.release()

    async def _serve_connection(self, ws: WebSocket) -> None:
        session, sender = None, None
        try:
            while True:
                try:
                    message = await asyncio.wait_for(ws.receive(), self.config.idle_timeout)
                except TimeoutError:
                    if session is not None and session.ended:
                        await sender  # finish the stream's replies, then close quietly
                        await ws.close()
                        return
                    raise ClientError(
                        f"idle for {self.config.idle_timeout:g} s without a frame; closing"
                    ) from None
                if message["type"] == "websocket.disconnect":
                    return
                if session is None or session.ended:
                    if sender is not None:
                        await sender  # the previous stream's replies go out first
                        self._drop_session(session)
                    session = self._new_session()
                    sender = asyncio.create_task(self._send_replies(ws, session))
                self._receive(session, message)
                if sender.done() and sender.result():  # the engine failed this stream
                    return
        except ClientError as err:
            await _close_with_error(ws, str(err), POLICY_VIOLATION)
        except WebSocketDisconnect:
            pass
        finally:
            if sender is not None and not sender.done():
                sender.cancel()
            if session is not None:
                self._drop_session(session)

    def _receive(self, session: Session, message: dict) -> None:
        """One client frame: audio, text words, config or end of stream."""
        if message.get("bytes") is not None:
            self._queue(session, session.add_pcm(message["bytes"]))
            return
        text = message.get("text")
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError):
            raise ClientError(
                f"text frames must be JSON objects (config, text or end_of_stream); got "
                f"{(text or '')[:40]!r}"
            ) from None
        if not isinstance(data, dict):
            raise ClientError(f"text frames must be JSON objects, got {type(data).__name__}")
        if "sample_rate" in data:
            session.set_sample_rate(data["sample_rate"])
            if session.sample_rate != SAMPLE_RATE:
                LOG.info(
                    "session %d: resampling %d Hz audio to %d Hz",
                    session.sid,
                    session.sample_rate,
                    SAMPLE_RATE,
                )
        for key in ("source_lang", "target_lang"):
            if key in data:
                self._check_language(key, data[key])
        if "target_lang" in data:  # its pieces join as that language's (spaces or none)
            session.target_lang = data["target_lang"].strip()
        if "metrics_metadata" in data:
            self._metadata(session, data["metrics_metadata"])
        if "text" in data:
            self._queue(session, session.add_text(data["text"]))
        if data.get("end_of_stream") and not self._queue(session, session.end()):
            self.outboxes[session.sid].put_nowait(None)  # nothing left to process

    async def _send_replies(self, ws: WebSocket, session: Session) -> bool:
        """Replies of one stream in order, then ``end_of_processing``. An engine error
        closes the connection with it (returns True then)."""
        box = self.outboxes[session.sid]
        sent = 0
        while True:
            result = await box.get()
            if isinstance(result, Exception):
                await _close_with_error(ws, f"internal error: {result}", INTERNAL_ERROR)
                return True
            if result is None:  # the stream ended with nothing left to read
                await ws.send_json({"new": "", "deleted": ""})
            else:
                await ws.send_json(result)
                sent += 1
            if result is None or (session.ended and sent == session.made):
                await ws.send_json({"end_of_processing": True})
                return False

    # ---------------------------------------------- simulstream's HTTP protocol

    async def _http_session(self, body: dict) -> _HttpSession:
        sid = body.get("session_id")
        if not isinstance(sid, str) or not sid:
            raise ClientError("every request needs a session_id string")
        entry = self.http_sessions.get(sid)
        if entry is None:
            await self._acquire()
            entry = self.http_sessions[sid] = _HttpSession(self._new_session())
            if self.metrics is not None:
                self._metadata(entry.session, {"wav_name": f"http-{sid}"})
        entry.seen = time.monotonic()
        return entry

    async def _run_http(self, request: Request, handler) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise ClientError("the request body must be a JSON object")
            return await handler(body)
        except json.JSONDecodeError:
            return JSONResponse({"error": "the request body is not JSON"}, status_code=400)
        except ClientError as err:
            full = str(err).startswith("server full")
            return JSONResponse({"error": str(err)}, status_code=503 if full else 400)

    async def http_chunk_size(self, request: Request) -> Response:
        async def handle(body):
            await self._http_session(body)
            return JSONResponse({"speech_chunk_size": self.config.chunk_ms / 1000})

        return await self._run_http(request, handle)

    async def http_process_chunk(self, request: Request) -> Response:
        async def handle(body):
            entry = await self._http_session(body)
            try:
                audio = np.frombuffer(base64.b64decode(body["waveform"], validate=True), "<f4")
            except (KeyError, TypeError, ValueError, binascii.Error):
                raise ClientError("waveform must be base64 of float32 samples at 16 kHz") from None
            async with entry.lock:
                return JSONResponse(await entry.run(self, entry.session.add_audio(audio)))

        return await self._run_http(request, handle)

    async def http_end_of_stream(self, request: Request) -> Response:
        async def handle(body):
            entry = await self._http_session(body)
            async with entry.lock:
                out = await entry.run(self, entry.session.end())
            self._close_http(body["session_id"])  # a stream ends once; clear() is then a no-op
            return JSONResponse(out)

        return await self._run_http(request, handle)

    async def http_language(self, request: Request) -> Response:
        key = "source_lang" if request.url.path.endswith("source_language") else "target_lang"

        async def handle(body):
            entry = await self._http_session(body)
            self._check_language(key, body.get("language"))
            if key == "target_lang":
                entry.session.target_lang = body["language"].strip()
            return Response(status_code=204)

        return await self._run_http(request, handle)

    async def http_clear(self, request: Request) -> Response:
        async def handle(body):
            self._close_http(body.get("session_id"))
            return Response(status_code=204)

        return await self._run_http(request, handle)

    async def http_tokens_to_string(self, request: Request) -> Response:
        async def handle(body):
            tokens = body.get("tokens")
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise ClientError("tokens must be a list of strings")
            entry = self.http_sessions.get(body.get("session_id"))
            lang = entry.session.target_lang if entry else self.config.target_lang
            return JSONResponse({"tokens_as_string": join_pieces(tokens, lang)})

        return await self._run_http(request, handle)

    def _close_http(self, sid: Any) -> None:
        entry = self.http_sessions.pop(sid, None)
        if entry is not None:
            self._drop_session(entry.session)
            self.slots.release()

    async def _reap_http_sessions(self) -> None:
        ttl = self.config.session_ttl
        while True:
            await asyncio.sleep(max(0.05, ttl / 4))
            now = time.monotonic()
            for sid in [s for s, e in self.http_sessions.items() if now - e.seen > ttl]:
                if not self.http_sessions[sid].lock.locked():
                    LOG.info("HTTP session %s idle for %g s: closed", sid, ttl)
                    self._close_http(sid)


class _HttpSession:
    """An HTTP-protocol session: its stream, a lock (requests of one session in order)
    and when it was last used."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.lock = asyncio.Lock()
        self.seen = time.monotonic()

    async def run(self, server: Server, items: list) -> dict[str, Any]:
        """Wait for the replies of ``items``; simulstream's merged incremental output."""
        server._queue(self.session, items)
        box = server.outboxes[self.session.sid]
        tokens: list[str] = []
        for _ in items:
            result = await box.get()
            if isinstance(result, Exception):
                raise ClientError(f"internal error: {result}")
            tokens += self.session.tokens(result["new"])
        return {
            "new_tokens": tokens,
            "new_string": join_pieces(tokens, self.session.target_lang),
            "deleted_tokens": [],
            "deleted_string": "",
        }


async def _close_with_error(ws: WebSocket, message: str, code: int) -> None:
    LOG.info("closing a connection: %s", message)
    with contextlib.suppress(Exception):
        await ws.send_json({"error": message})
        await ws.close(code, message[:120])


def uvicorn_server(server: Server, host: str, port: int):
    """The uvicorn server of ``server`` (WebSockets by the ``websockets`` library; a frame
    over ``max_frame_bytes`` is refused from its header: a JSON error, then close 1009)."""
    import uvicorn

    config = uvicorn.Config(
        server.app(),
        host=host,
        port=port,
        ws=_refusing_protocol(),
        ws_max_size=server.config.max_frame_bytes,
        ws_ping_interval=None,
        log_level="warning",
        lifespan="on",
    )
    return uvicorn.Server(config)


def _refusing_protocol():
    """uvicorn's ``websockets-sansio`` protocol whose connections send ``{"error": ...}``
    right before refusing a frame over the size limit. ``websockets`` refuses such a frame
    from its header (close code 1009), so its payload is never read or buffered; without
    this the client would get only the close code."""
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.frames import CloseCode
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    class ErrorBeforeClose(ServerProtocol):
        def fail(self, code: int, reason: str = "") -> None:
            if code == CloseCode.MESSAGE_TOO_BIG and self.state is State.OPEN:
                error = f"frame too large: {reason} (the server's --max-frame-bytes)"
                LOG.info("closing a connection: %s", error)
                self.send_text(json.dumps({"error": error}).encode())
            super().fail(code, reason)

    class Protocol(WebSocketsSansIOProtocol):
        def __init__(self, config, *args, **kwargs) -> None:
            super().__init__(config, *args, **kwargs)
            old = self.conn  # the same connection settings, with the error before the close
            self.conn = ErrorBeforeClose(
                extensions=old.available_extensions, max_size=config.ws_max_size, logger=old.logger
            )

    return Protocol


@contextlib.contextmanager
def running(server: Server, host: str = "127.0.0.1", port: int = 0):
    """Run ``server`` on a thread (tests, benchmarks); yields its base URL ``http://host:port``."""
    import threading

    uv = uvicorn_server(server, host, port)
    thread = threading.Thread(target=uv.run, name="simulpo-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.01)
    bound = uv.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        uv.should_exit = True
        thread.join(timeout=30)

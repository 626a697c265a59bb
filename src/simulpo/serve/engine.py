"""One model, many sessions: every step, all sessions with a ready chunk take one batched turn.

The engine owns the policy and runs it on one worker thread (the model is loaded once).
Each step it takes the oldest ready chunk of every session that has one, appends it to
that session's episode and calls :func:`~simulpo.stream.loop.step` on all of them
together: one ``policy.act`` for the whole batch, the same turn the offline loop takes,
so an LLM policy decodes the sessions in one batched ``generate`` (each with its own
cache row, bounded by the policy's ``cache_window``) whatever turn each is at. A session
never has two chunks in one step: its turns stay in order. The elapsed time of a piece is
its delay plus the wall time from its chunk being ready to the piece being written (the
delay the server adds: waiting for the step, then computing it). After its turn a
session lets go of the source its policy will not read again (the policy's ``lookback``,
:class:`~simulpo.stream.loop.Policy`), so a session's memory does not grow with its audio.

Results go back to the asyncio side through ``deliver(session, reply)``, called on the
engine thread (the server wraps it in ``call_soon_threadsafe``). A failing ``act``
fails the sessions of that step only (``deliver(session, exception)``); the engine goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from simulpo.serve.metrics_log import MetricsLog
from simulpo.serve.session import Pending, Session
from simulpo.stream.loop import Policy, StreamState, step

LOG = logging.getLogger("simulpo.serve")


class Engine:
    """The batching worker: ``wake()`` after queueing chunks, ``close()`` to stop."""

    def __init__(
        self,
        policy: Policy,
        deliver: Callable[[Session, Any], None],
        metrics: MetricsLog | None = None,
        max_batch: int = 256,
    ) -> None:
        self.policy = policy
        self.deliver = deliver
        self.metrics = metrics
        self.max_batch = max_batch
        self.sessions: dict[int, Session] = {}
        self.steps = 0  # batched turns taken (for tests and the benchmark)
        self.turns = 0  # session turns taken
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="simulpo-engine", daemon=True)
        self._thread.start()

    def add(self, session: Session) -> None:
        with self._cond:
            self.sessions[session.sid] = session

    def remove(self, session: Session) -> None:
        """Forget a session (closed or gone); a chunk of it in the current step still runs."""
        with self._cond:
            self.sessions.pop(session.sid, None)
            session.pending.clear()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=30)

    def _ready(self) -> list[Session]:
        return [s for s in self.sessions.values() if s.pending][: self.max_batch]

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self._ready():
                    self._cond.wait()
                if self._stop:
                    return
                batch = self._ready()
                items = [s.pending.popleft() for s in batch]
            self._step(batch, items)

    def _step(self, batch: list[Session], items: list[Pending]) -> None:
        states = []
        for session, item in zip(batch, items):
            state = session.state
            state.episode.chunks.append(item.chunk)
            state.turn = len(state.episode.chunks) - 1
            state.last = item.last
            states.append(state)
        clock = _WallClock(states, items)
        try:
            step(states, self.policy, clock)
        except Exception as err:  # a policy bug must not take the server down
            LOG.exception(
                "policy %s failed on a batch of %d sessions", self.policy.name, len(batch)
            )
            for session in batch:
                self.deliver(session, err)
            return
        self.steps += 1
        self.turns += len(batch)
        lookback = getattr(self.policy, "lookback", None)
        for session, item in zip(batch, items):
            session.forget(lookback)
            piece = session.state.episode.pieces[-1]
            if self.metrics is not None:
                self.metrics.chunk(session, item, clock.share / 1000, session.tokens(piece))
            self.deliver(session, session.reply(piece, item, clock.share))


class _WallClock:
    """The loop's clock for live sessions: a piece's elapsed time is its delay plus the
    wall time since its chunk was ready. Keeps the step's compute share per episode (ms)."""

    def __init__(self, states: list[StreamState], items: list[Pending]) -> None:
        self.ready = {id(s): item.ready for s, item in zip(states, items)}
        self.share = 0.0

    def elapsed(self, state: StreamState, compute_ms: float) -> float:
        self.share = compute_ms
        return state.delay + (time.perf_counter() - self.ready[id(state)]) * 1000

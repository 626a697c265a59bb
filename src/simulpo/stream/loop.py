"""The streaming loop: the one place where a source is translated chunk by chunk.

Evaluation, SFT data synthesis and RL rollouts all call :func:`run_stream`. Episodes
advance in lockstep, one turn at a time, so a policy receives the states of every live
episode at once and can batch its work (one Apertium call, one batched LLM forward).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from simulpo.stream.episode import Episode
from simulpo.stream.segmenter import Segmenter
from simulpo.stream.units import check_unit

if TYPE_CHECKING:
    from tqdm import tqdm


@dataclass
class StreamState:
    """What a policy sees of one episode at one turn.

    ``memory`` belongs to the policy: anything it wants to keep for this episode between
    turns (the previous hypothesis of local agreement, an LLM's dialogue and cache handle,
    ...). It lives on the episode, so the caller still has it after the loop (RL rollouts
    read the LLM's token ids and log-probs from it).
    """

    episode: Episode
    turn: int = 0
    source_read: list[Any] = field(default_factory=list)

    @property
    def memory(self) -> dict[str, Any]:
        return self.episode.memory

    @property
    def new_chunk(self) -> Any:
        return self.episode.chunks[self.turn].content

    @property
    def source_finished(self) -> bool:
        """True at the last turn: the policy must then write the rest of its translation."""
        return self.turn == len(self.episode.chunks) - 1

    @property
    def target(self) -> list[str]:
        """Target units written so far."""
        return self.episode.units

    @property
    def delay(self) -> float:
        return self.episode.chunks[self.turn].end


#: How the wall clock of a speech episode runs (``elapsed`` of each written unit):
#: ``cumulative`` — SimulEval's: the chunk's end plus *all* computation so far, as if the
#: audio were there from the start; right for sentences, unbounded on a long stream.
#: ``queue`` — a real-time system: a turn starts when its chunk has arrived and the previous
#: turn is done, ``ready_t = max(end_t, ready_{t-1}) + compute_t``; stays bounded on an
#: unbounded stream as long as computing is faster than real time.
CLOCKS = ("cumulative", "queue")


class Policy(Protocol):
    """Anything that, given the states of live episodes, writes one piece per episode.

    A policy may also say how much of the source it reads back: ``lookback``, the number
    of source elements (words, or audio samples) before its new chunk that a turn reads
    from ``state.source_read``. A live stream (the server) then keeps only those; without
    it, the whole source read so far is kept (the schedules re-read it).
    """

    name: str

    def act(self, states: Sequence[StreamState]) -> list[str]:
        """One piece of text per state ("" = wait); at ``source_finished`` the rest of the translation."""
        ...


def run_stream(
    sources: Sequence[Any],
    policy: Policy,
    segmenter: Segmenter,
    references: Sequence[str | None] | None = None,
    unit: str = "word",
    batch_size: int = 256,
    progress: bool = True,
    desc: str | None = None,
    clock: str = "cumulative",
) -> list[Episode]:
    """Translate every source with ``policy``, ``batch_size`` episodes in lockstep.

    ``clock`` says how a speech episode's ``elapsed`` is counted (see :data:`CLOCKS`).
    """
    check_unit(unit)
    Clock(clock)  # an unknown clock fails before any work
    if references is not None and len(references) != len(sources):
        raise ValueError(f"{len(sources)} sources but {len(references)} references")
    refs = references if references is not None else [None] * len(sources)
    episodes = [
        Episode(i, src, segmenter.split(src), segmenter.source_length(src), ref, unit)
        for i, (src, ref) in enumerate(zip(sources, refs))
    ]
    from tqdm.auto import tqdm  # here: scoring imports this package and needs no bar

    speech = segmenter.source_unit == "ms"
    bar = tqdm(total=len(episodes), desc=desc or policy.name, disable=not progress, unit="seg")
    for start in range(0, len(episodes), batch_size):
        batch = [StreamState(ep) for ep in episodes[start : start + batch_size]]
        _run_batch(batch, policy, Clock(clock) if speech else None, bar)
    bar.close()
    return episodes


class Clock:
    """The wall clock of a batch of speech episodes (one of :data:`CLOCKS`): the ``elapsed``
    time of each turn's piece, from the computation time each episode has paid so far."""

    def __init__(self, kind: str) -> None:
        if kind not in CLOCKS:
            raise ValueError(f"unknown clock {kind!r}; use one of {', '.join(CLOCKS)}")
        self.kind = kind
        self._compute_ms: dict[int, float] = {}  # cumulative: all compute so far
        self._ready_ms: dict[int, float] = {}  # queue: when the previous turn's output was out

    def elapsed(self, state: StreamState, compute_ms: float) -> float:
        """The elapsed time of ``state``'s piece written this turn after ``compute_ms``."""
        key = id(state)
        if self.kind == "queue":
            ready = max(state.delay, self._ready_ms.get(key, 0.0)) + compute_ms
            self._ready_ms[key] = ready
            return ready
        self._compute_ms[key] = self._compute_ms.get(key, 0.0) + compute_ms
        return state.delay + self._compute_ms[key]


def step(states: Sequence[StreamState], policy: Policy, clock: Clock | None = None) -> None:
    """One turn of every state, in lockstep: read its next chunk, let ``policy`` write one
    piece each, and record every piece with its delay and elapsed time.

    The one turn of simulpo: :func:`run_stream` calls it, and so does a policy that runs a
    policy of its own on sub-episodes (the cascade's sentences). The batch's computation
    time is split evenly: each episode pays its share. ``clock`` None: text sources, whose
    elapsed times are 0 as in SimulEval.
    """
    for s in states:
        s.source_read.append(s.new_chunk)
    tic = time.perf_counter()
    pieces = policy.act(states)
    share = (time.perf_counter() - tic) * 1000 / max(len(states), 1)
    if len(pieces) != len(states):
        raise RuntimeError(
            f"policy {policy.name} returned {len(pieces)} pieces for {len(states)} states"
        )
    for s, piece in zip(states, pieces):
        elapsed = clock.elapsed(s, share) if clock is not None else 0.0
        s.episode.write(piece, s.delay, elapsed)
        s.turn += 1


def _run_batch(states: list[StreamState], policy: Policy, clock: Clock | None, bar: tqdm) -> None:
    live = [s for s in states if s.episode.chunks]
    bar.update(len(states) - len(live))  # empty sources: nothing to read, nothing written
    while live:
        step(live, policy, clock)
        done = [s for s in live if s.turn == len(s.episode.chunks)]
        bar.update(len(done))
        live = [s for s in live if s.turn < len(s.episode.chunks)]


def source_words(state: StreamState) -> list[str]:
    """All source words read so far (text sources)."""
    return [w for chunk in state.source_read for w in chunk]


__all__ = ["CLOCKS", "Clock", "Policy", "StreamState", "run_stream", "source_words", "step"]

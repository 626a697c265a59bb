"""Classic simultaneous schedules, each wrapping a translator.

All schedules see target units (words, or characters for zh/ja when the translator says
so through ``joiner``) and never take back a written unit.

- ``WaitK``: read k source words, then write one target unit per source word read
  (Ma et al., 2019, STACL); target unit i (1-based) may be written once k+i-1 source
  words are read. With chunks of m words it writes all units allowed after each chunk.
- ``Offline``: read everything, then write the whole translation (latency upper bound).
- ``FixedChunk``: after every ``size`` source words (a fixed chunk), write everything
  the translator adds.
- ``LocalAgreement``: after every chunk re-translate the source read so far and write the
  longest common prefix of the last ``n`` translations past what is already written
  (Polák et al., 2022; Liu et al., 2020) — the usual strong baseline over an offline system.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from simulpo.errors import ConfigError
from simulpo.stream.loop import StreamState, source_words
from simulpo.translators.base import Translator


def _piece(translator: Translator, units: Sequence[str]) -> str:
    return translator.joiner.join(units)


@dataclass
class WaitK:
    translator: Translator
    k: int = 3
    #: the system's name in reports (default: the schedule's, with its parameter)
    label: str | None = None

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"wait-k needs k >= 1, got {self.k}")

    @property
    def name(self) -> str:
        return self.label or self._default_name()

    def _default_name(self) -> str:
        return f"wait-{self.k}"

    def allowed(self, state: StreamState) -> int | None:
        """How many target units may be written in total now (None = no limit)."""
        if state.source_finished:
            return None
        return max(0, len(source_words(state)) - self.k + 1)

    def act(self, states: Sequence[StreamState]) -> list[str]:
        pieces = [""] * len(states)
        todo = [i for i, s in enumerate(states) if _room(self.allowed(s), len(s.target))]
        if not todo:
            return pieces
        conts = self.translator.continue_batch(
            [source_words(states[i]) for i in todo], [states[i].target for i in todo]
        )
        for i, cont in zip(todo, conts):
            limit = self.allowed(states[i])
            take = cont if limit is None else cont[: limit - len(states[i].target)]
            pieces[i] = _piece(self.translator, take)
        return pieces


def _room(allowed: int | None, written: int) -> bool:
    return allowed is None or allowed > written


@dataclass
class Offline(WaitK):
    """Reads the whole source, then writes: wait-k with k = infinity."""

    k: int = 1

    def _default_name(self) -> str:
        return "offline"

    def allowed(self, state: StreamState) -> int | None:
        return None if state.source_finished else 0


@dataclass
class FixedChunk(WaitK):
    """Writes everything the translator adds each time ``size`` more source words have
    been read (and at the end). Read in chunks of ``size`` words (``--chunk-words``), it
    writes after every chunk; its name, ``fixed-SIZE``, says which chunk it is."""

    k: int = 1
    size: int = 1

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"fixed-chunk needs a chunk of at least 1 word, got {self.size}")

    def _default_name(self) -> str:
        return f"fixed-{self.size}"

    def allowed(self, state: StreamState) -> int | None:
        chunks = len(source_words(state)) // self.size
        due = state.source_finished or chunks > state.memory.get("chunks", 0)
        return None if due else len(state.target)

    def act(self, states: Sequence[StreamState]) -> list[str]:
        pieces = super().act(states)
        for state in states:
            state.memory["chunks"] = len(source_words(state)) // self.size
        return pieces


@dataclass
class LocalAgreement:
    translator: Translator
    n: int = 2
    label: str | None = None

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ConfigError(f"local agreement compares at least 2 translations, got n={self.n}")

    @property
    def name(self) -> str:
        return self.label or f"la-{self.n}"

    def act(self, states: Sequence[StreamState]) -> list[str]:
        hyps = self.translator.translate_batch([source_words(s) for s in states])
        pieces = []
        for state, hyp in zip(states, hyps):
            history = state.memory.setdefault("history", [])
            history.append(hyp)
            del history[: -self.n]
            written = len(state.target)
            if state.source_finished:
                new = hyp[written:]
            elif len(history) < self.n:
                new = []
            else:
                new = common_prefix(history)[written:]
            pieces.append(_piece(self.translator, new))
        return pieces


def common_prefix(seqs: Sequence[Sequence[str]]) -> list[str]:
    """Longest common prefix of several unit sequences."""
    out: list[str] = []
    for column in zip(*seqs):
        if any(x != column[0] for x in column[1:]):
            break
        out.append(column[0])
    return out


def schedule(name: str, translator: Translator, k: int = 3, n: int = 2, size: int = 1):
    """A schedule by name: ``wait-k`` (with ``k``), ``wait-N``, ``offline``, ``fixed-chunk``
    (with ``size``), ``local-agreement`` or ``la`` (with ``n``). Each is named by its
    parameter (``wait-3``, ``fixed-2``, ``la-2``) unless given a ``label``;
    :func:`simulpo.policies.build.build_policy` builds any policy from a spec through it."""
    if name in ("wait-k", "waitk"):
        return WaitK(translator, k)
    if name.startswith("wait-") and name[5:].isdigit():
        return WaitK(translator, int(name[5:]))
    if name == "offline":
        return Offline(translator)
    if name == "fixed-chunk":
        return FixedChunk(translator, size=size)
    if name in ("la", "local-agreement"):
        return LocalAgreement(translator, n)
    raise ConfigError(
        f"unknown policy {name!r}; choose wait-k, wait-N, offline, fixed-chunk or local-agreement"
    )

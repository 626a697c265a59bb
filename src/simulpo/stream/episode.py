"""An episode: one source translated turn by turn, with the delay of every target unit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulpo.stream.segmenter import Chunk
from simulpo.stream.units import join_units, split_units


@dataclass
class Episode:
    """One source read chunk by chunk and the pieces of translation written after each chunk.

    ``delays[i]`` is the number of source units (words, or ms) read when target unit ``i``
    was written; ``elapsed[i]`` adds the wall-clock computation time (ms) for speech
    sources and is 0 for text sources, as in SimulEval.
    """

    index: int
    source: Any
    chunks: list[Chunk]
    source_length: float
    reference: str | None = None
    unit: str = "word"
    pieces: list[str] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    elapsed: list[float] = field(default_factory=list)
    #: the policy's own record of this episode, kept between turns and after the last one
    #: (an LLM's dialogue tokens, mask and log-probs, which RL trains on); not logged.
    memory: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def write(self, piece: str, delay: float, elapsed: float = 0.0) -> int:
        """Record one turn's piece (possibly empty = wait); returns its number of target units."""
        self.pieces.append(piece)
        n = len(split_units(piece, self.unit))
        self.delays += [delay] * n
        self.elapsed += [elapsed] * n
        return n

    @property
    def units(self) -> list[str]:
        """The translation so far, in target units."""
        return [u for piece in self.pieces for u in split_units(piece, self.unit)]

    @property
    def prediction(self) -> str:
        return join_units(self.units, self.unit)

    def source_text(self) -> str:
        if isinstance(self.source, str):
            return self.source
        if isinstance(self.source, (list, tuple)):
            return " ".join(self.source)
        return f"<{type(self.source).__name__} of {self.source_length:g} units>"

    def to_instance(self) -> dict[str, Any]:
        """The episode as one SimulEval ``instances.log`` record."""
        return {
            "index": self.index,
            "prediction": self.prediction,
            "delays": [_number(d) for d in self.delays],
            "elapsed": [_number(e) for e in self.elapsed],
            "prediction_length": len(self.delays),
            "reference": self.reference,
            "source": self.source_text(),
            "source_length": _number(self.source_length),
        }


def _number(x: float) -> int | float:
    """Whole numbers as ints (``3`` not ``3.0``), as SimulEval writes word delays."""
    return int(x) if float(x).is_integer() else float(x)

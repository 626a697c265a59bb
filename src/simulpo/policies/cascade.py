"""The cascaded speech policy: streaming ASR, then a text policy over the committed words.

What speech users run today: Whisper transcribes the audio as it arrives
(:class:`~simulpo.policies.asr.StreamingASR`, local agreement over re-transcriptions) and
a text policy (local agreement over Apertium, wait-k over the synthetic pair's grammar,
an LLM, ...) translates the words the recognizer commits. It runs inside the one speech
loop (:func:`~simulpo.stream.loop.run_stream` with millisecond chunks): each turn, every
episode's recognizer reads the new chunk, and the text policy writes the piece of that
turn, so delays and elapsed times are those of the whole cascade.

**How the text policy sees a growing source.** The committed words are cut into
sentences at Whisper's sentence-final punctuation (``. ? !``), or after
``max_sentence_words`` words when none comes. Each sentence is a text episode of its
own, read through a :class:`SentenceState`: a text :class:`~simulpo.stream.loop.StreamState`
whose chunks are appended as the recognizer commits words (one inner turn per batch of
new words) and whose ``source_finished`` becomes true when the sentence ends — or when
the speech ends. The text policy therefore works exactly as in text streaming, on
sentences whose length it learns only at their end, and an unbounded stream costs
bounded memory: a finished sentence's state is dropped. The inner policy is called only
when its sentence has new words (a schedule such as local agreement must never see the
same prefix twice as two turns), in one batch across episodes per round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from simulpo.errors import ConfigError
from simulpo.policies.asr import StreamingASR, Transcriber, normalize_word
from simulpo.stream.episode import Episode
from simulpo.stream.loop import Policy, StreamState, step
from simulpo.stream.segmenter import Chunk

SENTENCE_END = (".", "?", "!")
_CLOSING = "\"')]}”’»"


def ends_sentence(word: str) -> bool:
    """True for a word that closes a sentence (``Jerusalem.``, ``sun?"``, ``Amen!)``)."""
    return word.rstrip(_CLOSING).endswith(SENTENCE_END)


def plain_words(words: Sequence[str]) -> list[str]:
    """Lower-cased words without punctuation (for back-ends that never saw either)."""
    return [w for w in map(normalize_word, words) if w]


@dataclass
class SentenceState(StreamState):
    """A text episode whose source grows until the recognizer (or the stream) ends it."""

    finished: bool = False

    @property
    def source_finished(self) -> bool:
        return self.finished

    def read(self, words: list[str], finished: bool) -> None:
        """Queue one inner turn: the newly committed words of this sentence (the loop's
        :func:`~simulpo.stream.loop.step` then reads them as the turn's chunk)."""
        read = sum(len(c.content) for c in self.episode.chunks) + len(words)
        self.episode.chunks.append(Chunk(words, float(read)))
        self.finished = finished


class Cascade:
    """Streaming ASR → committed source words → ``text_policy``, as one speech policy.

    ``transcriber`` is shared by all episodes (each keeps its own :class:`StreamingASR`
    in its memory, with ``asr_n`` transcriptions to agree and ``asr_options`` such as
    ``trim_ms``). ``normalize`` maps committed words to what ``text_policy`` reads
    (e.g. :func:`plain_words` for the synthetic pair); sentence ends are found before it.
    ``state.memory["transcript"]`` keeps the committed words of each episode.
    """

    #: a turn reads its new chunk alone (the recognizer keeps its own bounded buffer)
    lookback = 0

    def __init__(
        self,
        transcriber: Transcriber,
        text_policy: Policy,
        asr_n: int = 2,
        normalize: Callable[[Sequence[str]], list[str]] | None = None,
        max_sentence_words: int = 80,
        sample_rate: int = 16000,
        name: str = "cascade",
        **asr_options: Any,
    ) -> None:
        if max_sentence_words < 1:
            raise ConfigError(f"max_sentence_words must be at least 1, got {max_sentence_words}")
        self.transcriber = transcriber
        self.text_policy = text_policy
        self.asr_n = asr_n
        self.normalize = normalize
        self.max_sentence_words = max_sentence_words
        self.sample_rate = sample_rate
        self.name = name
        self.asr_options = asr_options
        StreamingASR(transcriber, asr_n, sample_rate, **asr_options)  # bad options fail here

    def act(self, states: Sequence[StreamState]) -> list[str]:
        queues = [self._sentence_turns(s) for s in states]
        pieces: list[list[str]] = [[] for _ in states]
        # One round = at most one inner turn per episode, all episodes in one batch, stepped
        # as any text episode is (stream.loop.step); a chunk that ends a sentence and starts
        # the next takes two rounds. The outer loop times the whole act: ASR and all rounds.
        while any(queues):
            todo = [i for i, q in enumerate(queues) if q]
            inner = []
            for i in todo:
                words, finished = queues[i].pop(0)
                sentence = self._sentence(states[i])
                sentence.read(words, finished)
                inner.append(sentence)
            step(inner, self.text_policy)
            for i, sentence in zip(todo, inner):
                piece = sentence.episode.pieces[-1].strip()
                if piece:
                    pieces[i].append(piece)
                if sentence.finished:
                    states[i].memory["sentence"] = None
        return [" ".join(p) for p in pieces]

    def _sentence_turns(self, state: StreamState) -> list[tuple[list[str], bool]]:
        """This turn's inner turns for one episode: ``(words, ends the sentence)`` pairs."""
        asr = state.memory.get("asr")
        if asr is None:
            asr = state.memory["asr"] = StreamingASR(
                self.transcriber, self.asr_n, self.sample_rate, **self.asr_options
            )
        committed = asr.feed(state.new_chunk, final=state.source_finished)
        state.memory.setdefault("transcript", []).extend(committed)
        open_sentence = state.memory.get("sentence")
        open_words = sum(len(c) for c in open_sentence.source_read) if open_sentence else 0
        turns: list[tuple[list[str], bool]] = []
        current: list[str] = []
        length = open_words
        for word in committed:
            current.append(word)
            length += 1
            if ends_sentence(word) or length >= self.max_sentence_words:
                turns.append((current, True))
                current, length = [], 0
        if current or state.source_finished:
            turns.append((current, state.source_finished))
        # Keep turns that read words, and those that end a sentence that has words.
        kept, has_words = [], open_words > 0
        for words, end in turns:
            words = self.normalize(words) if self.normalize is not None else words
            if words or (end and has_words):
                kept.append((words, end))
            has_words = (has_words or bool(words)) and not end
        return kept

    def _sentence(self, state: StreamState) -> SentenceState:
        """The episode's open sentence, or a new one."""
        sentence = state.memory.get("sentence")
        if sentence is None:
            count = state.memory.get("sentences", 0)
            state.memory["sentences"] = count + 1
            episode = Episode(count, [], [], 0.0, unit=state.episode.unit)
            sentence = state.memory["sentence"] = SentenceState(episode)
        return sentence

"""Scripted speech for the cascade and speech-eval tests: audio that spells its own words.

A sample's value is ``id / 100`` for the word with vocabulary index ``id`` (1-based) and 0
for silence, so the audio survives a 16-bit WAV round trip. :class:`RunTranscriber`
"recognizes" each run of one non-zero value as that word, with the run's times; a run
that touches the end of the audio is still being spoken and comes out garbled (``~``), as
a real recognizer's last word is unreliable. The truth of every test is thus known by hand.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulpo.policies.asr import Word

SR = 16000


def speech(vocab: Sequence[str], words: Sequence[tuple[str, float, float]], total_ms: float):
    """Audio of ``total_ms`` ms holding ``(word, start_ms, end_ms)`` spans."""
    audio = np.zeros(round(total_ms * SR / 1000), dtype=np.float32)
    for word, start, end in words:
        audio[round(start * SR / 1000) : round(end * SR / 1000)] = (vocab.index(word) + 1) / 100
    return audio


class RunTranscriber:
    """Words from runs of equal non-zero samples; records every call's audio and prompt.

    ``unstable`` garbles every word with the call number, so no two calls ever agree.
    """

    def __init__(self, vocab: Sequence[str], unstable: bool = False) -> None:
        self.vocab = list(vocab)
        self.unstable = unstable
        self.calls: list[tuple[np.ndarray, str]] = []

    def __call__(self, audio: np.ndarray, prompt: str = "") -> list[Word]:
        self.calls.append((audio.copy(), prompt))
        ids = np.rint(np.asarray(audio) * 100).astype(int)
        edges = np.flatnonzero(np.diff(ids)) + 1
        starts = np.concatenate([[0], edges])
        ends = np.concatenate([edges, [len(ids)]])
        words = []
        for s, e in zip(starts, ends):
            if ids[s] == 0:
                continue
            text = self.vocab[ids[s] - 1]
            if e == len(ids):
                text += "~"
            if self.unstable:
                text += str(len(self.calls))
            words.append(Word(text, s * 1000 / SR, e * 1000 / SR))
        return words

"""The translator interface that simultaneous schedules (wait-k, offline, local agreement) wrap.

A translator maps source word sequences to target word sequences, always in batches, so
that a slow backend (an Apertium process, an LLM) is called once per streaming turn for
all live episodes. A source may be a *prefix* of a sentence: the translator translates it
as if it were complete. Translators that can genuinely continue a committed target prefix
(an LLM with forced decoding) override :meth:`Translator.continue_batch`; the default
re-translates the source prefix and commits only the words past the committed ones.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence


class Translator(ABC):
    """Translates batches of source word lists into target unit lists."""

    #: how target units are joined into text: " " for words, "" for characters (zh/ja).
    joiner: str = " "

    @abstractmethod
    def translate_batch(self, sources: Sequence[Sequence[str]]) -> list[list[str]]:
        """Translate each source (a list of words, maybe a sentence prefix) into target units."""

    def continue_batch(
        self, sources: Sequence[Sequence[str]], prefixes: Sequence[Sequence[str]]
    ) -> list[list[str]]:
        """Units that continue each committed target prefix, given the source read so far.

        Default: re-translate and keep what lies past the committed prefix, even when the
        new translation disagrees with it (committed words can never be taken back).
        """
        return [full[len(prefix):] for full, prefix in zip(self.translate_batch(sources), prefixes)]

    def translate(self, source: Sequence[str]) -> list[str]:
        """Translate one source; a convenience over :meth:`translate_batch`."""
        return self.translate_batch([source])[0]

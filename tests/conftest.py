"""Small deterministic translators shared by the policy and loop tests."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from simulpo.translators.base import Translator


class UpperTranslator(Translator):
    """Monotone word-for-word 'translation': each word upper-cased."""

    def __init__(self) -> None:
        self.calls = 0

    def translate_batch(self, sources: Sequence[Sequence[str]]) -> list[list[str]]:
        self.calls += 1
        return [[w.upper() for w in src] for src in sources]


class ReverseTranslator(Translator):
    """Fully reordering 'translation': the upper-cased words in reverse order."""

    def translate_batch(self, sources: Sequence[Sequence[str]]) -> list[list[str]]:
        return [[w.upper() for w in reversed(src)] for src in sources]


@pytest.fixture
def upper() -> UpperTranslator:
    return UpperTranslator()


@pytest.fixture
def reverse() -> ReverseTranslator:
    return ReverseTranslator()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one torch thread, and are then immune to a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

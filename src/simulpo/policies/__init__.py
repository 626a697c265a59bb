"""Policies decide, turn by turn, what to write after reading each source chunk.

Schedules over any :class:`~simulpo.translators.Translator`: wait-k, offline,
fixed-chunk and local agreement. LLM policies (later) implement the same protocol.
"""

from simulpo.policies.schedules import FixedChunk, LocalAgreement, Offline, WaitK, build_policy

__all__ = ["FixedChunk", "LocalAgreement", "Offline", "WaitK", "build_policy"]

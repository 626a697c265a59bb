"""Policies decide, turn by turn, what to write after reading each source chunk.

Schedules over any :class:`~simulpo.translators.Translator`: wait-k, offline,
fixed-chunk and local agreement; LLM policies (:mod:`simulpo.policies.llm`) and the
speech cascade implement the same protocol. :func:`build_policy` builds any of them
from a :class:`PolicySpec`.
"""

from simulpo.policies.build import PolicySpec, build_policy
from simulpo.policies.schedules import FixedChunk, LocalAgreement, Offline, WaitK, schedule

__all__ = [
    "FixedChunk", "LocalAgreement", "Offline", "PolicySpec", "WaitK", "build_policy", "schedule",
]  # fmt: skip

"""The streaming loop shared by evaluation, data synthesis and RL: segmenters, episodes, logs."""

from simulpo.stream.episode import Episode
from simulpo.stream.loop import Policy, StreamState, run_stream, source_words
from simulpo.stream.segmenter import Chunk, FixedMilliseconds, FixedWords, RandomMerge, Segmenter

__all__ = [
    "Chunk",
    "Episode",
    "FixedMilliseconds",
    "FixedWords",
    "Policy",
    "RandomMerge",
    "Segmenter",
    "StreamState",
    "run_stream",
    "source_words",
]

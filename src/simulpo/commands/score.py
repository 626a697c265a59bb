"""``simulpo score``: score a SimulEval instances.log, or long-form streams."""

from __future__ import annotations

import argparse
from pathlib import Path

from simulpo.commands import add_unit_args
from simulpo.errors import SimulpoError

NAME = "score"
HELP = "score a SimulEval instances.log, or long-form streams (--segments, --references)"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help=HELP)
    p.add_argument(
        "path",
        help="an instances.log file, or a directory holding one; with --segments, the long-form "
        "hypothesis JSONL (one {source, prediction, delays[, elapsed]} line per recording, ms)",
    )
    p.add_argument(
        "--output",
        help="where to write scores.json (file or dir; default: beside the log; long-form: a dir)",
    )
    p.add_argument(
        "--segments",
        help="long-form: the recordings' segment file (YAML/JSON list of {wav, offset, duration} "
        "in seconds, one per reference sentence): score PATH's streams with BLEU, chrF, "
        "StreamLAAL and LongYAAL (ms), and write the re-segmentation",
    )
    p.add_argument("--references", help="long-form: the reference sentences, one per segment")
    p.add_argument(
        "--char-level",
        action="store_true",
        help="long-form: characters as target units (spaces included), for zh/ja targets",
    )
    p.add_argument(
        "--source-type",
        choices=["auto", "text", "speech"],
        default="auto",
        help="text: delays in source words; speech: in ms. Decides ATD's conventions "
        "(SimulEval's --score-only applies its speech ones even to text logs)",
    )
    p.add_argument(
        "--computation-aware",
        choices=["auto", "on", "off"],
        default="auto",
        help="add the *_CA metrics from elapsed times (auto: when some elapsed time is non-zero)",
    )
    add_unit_args(p)
    return p


def run(args: argparse.Namespace) -> None:
    from simulpo.metrics.scores import format_scores_table, score_path

    if args.segments or args.references:
        _longform(args)
        return
    if args.char_level:
        raise SimulpoError("--char-level is for long-form scoring (--segments, --references)")
    scores = score_path(
        args.path,
        output=args.output,
        latency_unit=args.latency_unit,
        target_lang=args.target_lang,
        source_type=args.source_type,
        computation_aware={"auto": "auto", "on": True, "off": False}[args.computation_aware],
    )
    print(format_scores_table(scores))


def _longform(args: argparse.Namespace) -> None:
    from simulpo.metrics.longform import RESEGMENTED_NAME, SCORES_NAME, score_longform_files
    from simulpo.metrics.scores import format_scores_table
    from simulpo.serve.metrics_log import as_hypotheses
    from simulpo.stream.units import default_unit

    if not (args.segments and args.references):
        raise SimulpoError("long-form scoring needs --segments FILE and --references FILE")
    unit = "char" if args.char_level else args.latency_unit or default_unit(args.target_lang)
    out = Path(args.output) if args.output else Path(args.path).parent
    scores = score_longform_files(
        as_hypotheses(args.path, out),
        args.segments,
        args.references,
        out,
        unit=unit,
        target_lang=args.target_lang,
    )
    print(format_scores_table(scores))
    print(f"latencies in ms; wrote {out / SCORES_NAME} and {out / RESEGMENTED_NAME}")

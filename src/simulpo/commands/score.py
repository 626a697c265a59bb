"""``simulpo score``: score a SimulEval instances.log, or long-form streams.

The options follow SimulEval's (``--quality-metrics``, ``--latency-metrics``,
``--computation-aware``, ``--no-use-ref-len``, ``--eval-latency-unit``,
``--sacrebleu-tokenizer``) and, for long form, OmniSTEval's (``--lang``, ``--char-level``).
Only the scoring modules are imported: no torch, no transformers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from simulpo.commands import add_unit_args
from simulpo.errors import SimulpoError

NAME = "score"
HELP = "score a SimulEval instances.log, or long-form streams (--segments, --references)"
_CA = {"auto": "auto", "on": True, "off": False}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help=HELP)
    p.add_argument(
        "path",
        help="an instances.log file, or a directory holding one; with --segments, the long-form "
        "hypothesis JSONL (one {source, prediction, delays[, elapsed, source_length]} line per "
        "recording, ms)",
    )
    p.add_argument(
        "--output",
        help="where to write scores.json (file or dir; default: beside the log; long-form: a dir)",
    )
    p.add_argument(
        "--quality-metrics",
        nargs="+",
        metavar="NAME",
        help="SimulEval's names: BLEU, chrF (default: BLEU, as SimulEval)",
    )
    p.add_argument(
        "--latency-metrics",
        nargs="+",
        metavar="NAME",
        help="SimulEval's names: AL LAAL DAL AP ATD StartOffset EndOffset NumChunks RTF "
        "(default: SimulEval's LAAL AL AP DAL ATD, plus StartOffset EndOffset); long form: "
        "LongYAAL StreamLAAL LongAL LongLAAL LongAP LongDAL (default: all)",
    )
    p.add_argument(
        "--computation-aware",
        nargs="?",
        const="on",
        choices=["auto", "on", "off"],
        default="auto",
        help="add the *_CA metrics from elapsed times; bare flag (SimulEval's) = on "
        "(default auto: when some elapsed time is non-zero; long form: when given)",
    )
    p.add_argument(
        "--no-use-ref-len",
        action="store_true",
        help="AL, LAAL, AP over prediction lengths instead of reference lengths (SimulEval's)",
    )
    p.add_argument(
        "--sacrebleu-tokenizer",
        metavar="NAME",
        help="BLEU's sacrebleu tokenizer (default: zh/ja-mecab from --target-lang, else 13a)",
    )
    p.add_argument(
        "--source-type",
        choices=["auto", "text", "speech"],
        default="auto",
        help="text: delays in source words; speech: in ms. Decides ATD's conventions "
        "(SimulEval's --score-only applies its speech ones even to text logs)",
    )
    long = p.add_argument_group("long form (IWSLT 2026: LongYAAL ranks, OmniSTEval's numbers)")
    long.add_argument(
        "--segments",
        help="the recordings' segment file (YAML/JSON list of {wav, offset, duration} in "
        "seconds, one per reference sentence): score PATH's streams and write the "
        "re-segmentation",
    )
    long.add_argument("--references", help="the reference sentences, one per segment")
    long.add_argument(
        "--lang",
        metavar="XX",
        help="OmniSTEval's --lang: re-segment on Moses subtokens of this language "
        "(zh, ja: none), with OmniSTEval's result",
    )
    long.add_argument(
        "--char-level",
        action="store_true",
        help="characters as target units (spaces included), for zh/ja targets",
    )
    neural = p.add_argument_group(
        "neural quality (COMET / XCOMET from a local checkpoint, run in COMET's own "
        "environment: bash scripts/setup.sh --comet)"
    )
    neural.add_argument(
        "--comet-model",
        metavar="PATH",
        help="a COMET model folder (checkpoints/model.ckpt, hparams.yaml) or its model.ckpt: "
        "adds COMET (XCOMET for an XCOMET model) beside BLEU; segment scores in comet.json",
    )
    neural.add_argument(
        "--comet-python",
        metavar="PATH",
        help="the Python of COMET's environment (default: $SIMULPO_COMET_PYTHON, else "
        ".venv-comet/bin/python here or in simulpo's checkout)",
    )
    neural.add_argument(
        "--comet-sources",
        metavar="FILE",
        help="source sentences, one a line (per instance, or per segment in long form); "
        "default: a text log's own sources, none for speech",
    )
    neural.add_argument(
        "--comet-batch-size", type=int, default=16, metavar="N", help="COMET's batch size"
    )
    add_unit_args(p)
    p.add_argument(
        "--eval-latency-unit",
        dest="latency_unit",
        choices=["word", "char"],
        help="SimulEval's name for --latency-unit",
    )
    return p


def run(args: argparse.Namespace) -> None:
    comet = _comet_model(args)
    if args.segments or args.references:
        _longform(args, comet)
        return
    for flag, value in (("--char-level", args.char_level), ("--lang", args.lang)):
        if value:
            raise SimulpoError(f"{flag} is for long-form scoring (--segments, --references)")
    from simulpo.metrics.scores import format_scores_table, score_path

    scores = score_path(
        args.path,
        output=args.output,
        latency_unit=args.latency_unit,
        target_lang=args.target_lang,
        source_type=args.source_type,
        computation_aware=_CA[args.computation_aware],
        use_ref_len=not args.no_use_ref_len,
        quality_metrics=args.quality_metrics,
        latency_metrics=args.latency_metrics,
        bleu_tokenize=args.sacrebleu_tokenizer,
        comet=comet,
        comet_sources=args.comet_sources,
    )
    print(format_scores_table(scores))
    _print_comet(comet)


def _comet_model(args: argparse.Namespace):
    """The ``--comet-model`` checkpoint and its Python, checked before anything is scored."""
    if args.comet_model is None:
        for flag, value in (("--comet-python", args.comet_python),
                            ("--comet-sources", args.comet_sources)):
            if value:
                raise SimulpoError(f"{flag} goes with --comet-model PATH")
        return None
    from simulpo.metrics.comet import CometModel

    return CometModel.find(args.comet_model, args.comet_python, args.comet_batch_size)


def _print_comet(comet) -> None:
    if comet is not None:
        print(f"COMET model: {comet.checkpoint} (segment scores in comet.json beside scores.json)")


def _longform(args: argparse.Namespace, comet) -> None:
    from simulpo.metrics.comet import RESULT_NAME
    from simulpo.metrics.longform import (
        RESEGMENTED_NAME,
        SCORES_NAME,
        latency_regime,
        score_longform_files,
    )
    from simulpo.metrics.scores import format_scores_table
    from simulpo.serve.metrics_log import as_hypotheses
    from simulpo.stream.units import default_unit

    if not (args.segments and args.references):
        raise SimulpoError("long-form scoring needs --segments FILE and --references FILE")
    if args.no_use_ref_len or args.source_type != "auto":
        raise SimulpoError("--no-use-ref-len and --source-type are for instances.log scoring")
    unit = "char" if args.char_level else args.latency_unit or default_unit(args.target_lang)
    out = Path(args.output) if args.output else Path(args.path).parent
    scores = score_longform_files(
        as_hypotheses(args.path, out, args.target_lang),
        args.segments,
        args.references,
        out,
        unit=unit,
        target_lang=args.target_lang,
        lang=args.lang,
        quality_metrics=args.quality_metrics,
        latency_metrics=args.latency_metrics,
        bleu_tokenize=args.sacrebleu_tokenizer,
        computation_aware=_CA[args.computation_aware],
        comet=comet,
        comet_sources=args.comet_sources,
    )
    print(format_scores_table(scores))
    if "LongYAAL" in scores:
        yaal = scores["LongYAAL"]
        regime = latency_regime(yaal)
        bounds = {"low": "0-2 s", "high": "2-4 s", "outside": "outside both 0-2 s and 2-4 s"}
        print(
            f"IWSLT 2026 regime: {regime} latency (LongYAAL {yaal / 1000:.3f} s, "
            f"computation unaware: {bounds[regime]})"
        )
    neural = next((k for k in ("XCOMET", "COMET") if k in scores), None)
    if neural is not None:
        print(f"IWSLT 2026 quality: {neural} {scores[neural]:.4f} on the re-segmented sentences "
              f"(model {comet.checkpoint})")
    wrote = f"{out / SCORES_NAME}, {out / RESULT_NAME}" if comet else f"{out / SCORES_NAME}"
    print(f"latencies in ms; wrote {wrote} and {out / RESEGMENTED_NAME}")

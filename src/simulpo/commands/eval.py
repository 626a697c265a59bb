"""``simulpo eval``: evaluate a simultaneous policy on a text test set, or on speech.

The options describe a :class:`~simulpo.policies.build.PolicySpec`; the policy is built
by :func:`~simulpo.policies.build.build_policy`, then run by :func:`simulpo.eval.runner.evaluate`
(text) or :func:`simulpo.eval.speech.evaluate_speech_curve` (speech).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from simulpo.commands import (
    CACHE_WINDOW,
    add_policy_arguments,
    add_unit_args,
    policy_spec_fields,
    print_rows,
)
from simulpo.errors import SimulpoError

NAME = "eval"
HELP = "evaluate a simultaneous policy on a text test set, or on speech (--speech DATA_DIR)"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help=HELP)
    p.add_argument("--source", help="source file, one segment a line")
    p.add_argument("--reference", help="reference file, one segment a line")
    p.add_argument("--data", help="JSONL test set with source and reference fields")
    p.add_argument("--dataset", help="dataset name in the report (default: file stem)")
    p.add_argument(
        "--name",
        help="system name in the report (default: the policy's, with its parameter: wait-3, "
        "fixed-2, la-2; llm and cascade)",
    )
    p.add_argument(
        "--output", default="runs/eval", help="output directory (report.json accumulates rows)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_unit_args(p)
    add_policy_arguments(p)
    g = p.add_argument_group("speech (--speech DATA_DIR)")
    g.add_argument(
        "--speech",
        metavar="DATA_DIR",
        help="evaluate on speech built by `simulpo data speech --output DATA_DIR`",
    )
    g.add_argument(
        "--corpus", choices=["synthetic", "bible"], default="synthetic", help="which corpus"
    )
    g.add_argument("--split", default="test", help="which split (train, dev, test)")
    g.add_argument(
        "--long-form",
        action="store_true",
        help="translate each whole recording as one stream; score StreamLAAL, LongYAAL, BLEU, chrF",
    )
    g.add_argument("--recordings", type=int, help="long-form: only the first N recordings")
    g.add_argument("--limit", type=int, help="sentence level: only the first N utterances")
    g.add_argument(
        "--chunks-per-turn",
        default="1",
        help="chunks read per turn, comma-separated: one report row (curve point) each, "
        "named SYSTEM-M",
    )
    return p


def policy_spec(args: argparse.Namespace):
    """The :class:`PolicySpec` the options describe (with eval's defaults filled in)."""
    from simulpo.policies.build import PolicySpec, check_kind

    speech = bool(args.speech)
    kind = args.policy or ("cascade" if speech else "wait-k")
    check_kind(kind, speech)
    # The synthetic pair's grammar knows lower-case words only; Apertium reads cased text.
    default_translator = "grammar" if speech and args.corpus == "synthetic" else "apertium"
    window = args.cache_window
    if window is None and args.long_form and kind == "llm":
        window = CACHE_WINDOW
    if speech:  # the speech LLM reads the chunks its encoder was trained on
        from simulpo.stream.settings import agree

        trained = args.model if kind == "llm" else None
        args.chunk_ms = agree("chunk_ms", args.chunk_ms, trained, "--chunk-ms")
    return PolicySpec(
        **policy_spec_fields(args),
        kind=kind,
        translator=args.translator or default_translator,
        name=args.name,
        speech=speech,
        chunk_ms=PolicySpec.chunk_ms if args.chunk_ms is None else args.chunk_ms,
        cache_window=window if speech else args.cache_window,
    )


def run(args: argparse.Namespace) -> None:
    if args.speech:
        _speech(args)
        return
    from simulpo.eval.report import update_report
    from simulpo.eval.runner import evaluate
    from simulpo.eval.testset import load_test_set, require_references
    from simulpo.policies.build import build_policy
    from simulpo.stream.units import default_unit

    source = args.data or args.source
    if source is None:
        raise SimulpoError(
            "give a test set: --source FILE [--reference FILE], or --data FILE.jsonl, "
            "or speech with --speech DATA_DIR"
        )
    if args.data and args.source:
        raise SimulpoError("give either --source (with --reference) or --data, not both")
    if args.data and Path(args.data).suffix not in (".jsonl", ".tsv"):
        raise SimulpoError(
            f"--data takes a .jsonl or .tsv file holding sources and references, got "
            f"{args.data}; give plain text as --source FILE --reference FILE"
        )
    if args.source and Path(args.source).suffix in (".jsonl", ".tsv"):
        raise SimulpoError(
            f"{args.source} is a {Path(args.source).suffix} test set: give it as --data"
        )
    segments = load_test_set(source, args.reference)
    require_references(segments, source)
    policy = build_policy(policy_spec(args))
    dataset = args.dataset or Path(source).stem
    out = Path(args.output)
    row = evaluate(
        policy,
        segments,
        out / dataset / policy.name,
        dataset=dataset,
        chunk_words=args.chunk_words,
        unit=args.latency_unit or default_unit(args.target_lang),
        target_lang=args.target_lang,
        progress=not args.no_progress,
    )
    update_report(out / "report.json", [row])
    print_rows([row])
    print(f"wrote {out / dataset / policy.name}/instances.log, scores.json and {out}/report.json")


def _speech(args: argparse.Namespace) -> None:
    """``--speech DATA_DIR``: one row per chunks-per-turn value, then the plot."""
    from simulpo.eval.plot import plot_report
    from simulpo.eval.speech import TARGET_LANG, evaluate_speech_curve, speech_folder
    from simulpo.policies.build import build_policy
    from simulpo.stream.units import default_unit

    if args.source or args.data or args.reference:
        raise SimulpoError(
            "--speech reads its test set from DATA_DIR; drop --source/--data/--reference"
        )
    folder = speech_folder(args.speech, args.corpus)
    target_lang = args.target_lang or TARGET_LANG.get(args.corpus)
    spec = policy_spec(args)
    chunks = _positive_ints(args.chunks_per_turn, "--chunks-per-turn")
    policy = build_policy(spec)
    dataset = f"{args.corpus}-{args.split}" + ("-longform" if args.long_form else "")
    out = Path(args.output)
    rows = evaluate_speech_curve(
        policy,
        folder,
        args.split,
        out,
        dataset,
        args.chunk_ms,
        chunks,
        long_form=args.long_form,
        recordings=args.recordings,
        limit=args.limit,
        unit=args.latency_unit or default_unit(target_lang),
        target_lang=target_lang,
        name=args.name,
        progress=not args.no_progress,
    )
    print_rows(rows)
    x = "StreamLAAL" if args.long_form else "LAAL"
    png = out / ("quality_latency_longform.png" if args.long_form else "quality_latency.png")
    plot = plot_report(out / "report.json", png, x=x, y="chrF")
    print(f"wrote {out / dataset}/<system>/, {out}/report.json" + (f" and {plot}" if plot else ""))


def _positive_ints(text: str, option: str) -> list[int]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items or not all(s.isdigit() and int(s) > 0 for s in items):
        raise SimulpoError(f"{option} takes positive whole numbers, e.g. 1,2,4; got {text!r}")
    return [int(s) for s in items]

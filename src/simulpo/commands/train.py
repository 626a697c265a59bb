"""``simulpo train sft|rl``: supervised fine-tuning and GRPO post-training.

Every field of the stage's config is an option (``--lr``, ``--reward.lam``, ...), shown
by ``simulpo train sft --help`` / ``train rl --help`` with its help and default.
"""

from __future__ import annotations

import argparse

from simulpo.commands import add_run_args
from simulpo.errors import SimulpoError

NAME = "train"
HELP = "training"


def add_parser(subparsers) -> argparse.ArgumentParser:
    from simulpo.config import add_config_arguments
    from simulpo.train.rl import RLConfig
    from simulpo.train.sft import SFTConfig

    p = subparsers.add_parser(NAME, help=HELP)
    sub = p.add_subparsers(dest="train_command", required=True, metavar="STAGE")
    t = sub.add_parser(
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
        "--output", default="runs/sft", help="run dir: checkpoints/, final/, train_log.jsonl"
    )
    t.add_argument(
        "--restart", action="store_true", help="ignore existing checkpoints and start over"
    )
    add_run_args(t, "override a config field, e.g. --set epochs=2")
    add_config_arguments(t, SFTConfig, title="SFT config (YAML keys of --config)")
    t.set_defaults(action=_sft)

    t = sub.add_parser(
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
        help="YAML: RLConfig fields, or a text recipe whose 'rl' section is used "
        "(configs/demo-text.yaml)",
    )
    t.add_argument(
        "--output", default="runs/rl", help="run dir: checkpoints/, final/, train_log.jsonl, dev/"
    )
    t.add_argument(
        "--restart",
        action="store_true",
        help="ignore existing checkpoints and start over (default: resume)",
    )
    add_run_args(t, "override a config field, e.g. --set reward.lam=1")
    add_config_arguments(t, RLConfig, title="RL config (YAML keys of --config)")
    t.set_defaults(action=_rl)
    return p


def run(args: argparse.Namespace) -> None:
    args.action(args)


def _sft(args: argparse.Namespace) -> None:
    from simulpo.config import config_overrides, load_config
    from simulpo.models.lm import build_tiny_lm, load_model
    from simulpo.train.sft import SFTConfig, load_dialogues, train_sft

    config = load_config(SFTConfig, args.config, config_overrides(args))
    if args.model:
        model, tokenizer = load_model(args.model, lora=args.lora)
    elif args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
        model = build_tiny_lm(tokenizer)
    else:
        raise SimulpoError(
            "give --model PATH (a local HF causal LM) or --tokenizer DIR (train the tiny LM "
            "from scratch)"
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
        f"train loss {result['train_loss']:.4f}, dev loss {result['dev_loss']}; "
        f"model in {result['final_dir']}"
    )


def _rl(args: argparse.Namespace) -> None:
    from simulpo.config import config_overrides
    from simulpo.eval.testset import load_test_set
    from simulpo.models.lm import load_model
    from simulpo.recipes import load_rl_section
    from simulpo.train.rl import train_rl

    config = load_rl_section(args.config, config_overrides(args))
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

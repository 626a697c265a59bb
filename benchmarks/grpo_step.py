"""Our GRPO update step against TRL's, on the same tiny model, episodes and loss type.

Samples streaming episodes once (the embedded tiny LM, a byte-level BPE tokenizer of 2,000
tokens, synthetic sources cut into 2-word chunks, groups of 4), then times one optimizer
step on the whole batch for each loss type:

- simulpo: ``grpo_update`` (forward, log-probs of the policy tokens, loss, backward,
  clipping, AdamW step);
- TRL: ``GRPOTrainer.compute_loss`` on the same episodes converted to its format
  (``trl_loss_inputs``), backward, clipping, the same AdamW step. The tensors TRL builds
  at generation time are built before the clock starts.

Both start from the same weights and take the sampler's log-probs as pi_old; the loss
difference is the largest of the first two steps (the first at ratio 1, the second off
policy, after one identical AdamW step). Each time is the best of several further steps,
split into the update without its optimizer step (forward, loss, backward, clipping) and
the AdamW step itself (timed by the optimizer's step hooks); the sampling of the episodes
(the rollout) is timed once. Rewards are random: no reward is computed.

``--model NAME`` (an installed model such as ``qwen2.5-1.5b-instruct``, or a folder; loaded
by ``load_model`` as ``benchmarks/rollout.py`` does) times a real model instead, with LoRA
adapters of rank 8 in bfloat16 as ``configs/real-text.yaml`` trains it; ``--no-trl`` skips
TRL's side, ``--loss-types dapo`` keeps one loss type (the real recipe's). The peak RSS
(``ru_maxrss``) after sampling and at the end is reported.

    .venv/bin/python benchmarks/grpo_step.py [--sources N] [--group G] [--repeats R] [--json]
    .venv/bin/python benchmarks/grpo_step.py --model qwen2.5-1.5b-instruct --no-trl --loss-types dapo
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import sys
import time
import warnings

import numpy as np
import torch

from simulpo.data.synthetic import generate_corpus
from simulpo.models.lm import build_tiny_lm, count_parameters, load_model
from simulpo.models.tokenizer import train_tokenizer
from simulpo.policies.build import PolicySpec, build_policy
from simulpo.stream.segmenter import FixedWords
from simulpo.train.grpo import LOSS_TYPES, GRPOConfig, group_advantages, grpo_update
from simulpo.train.rollout import collate, sample_groups
from simulpo.train.trl_adapter import to_trl, trl_config, trl_dataset, trl_loss_inputs


def build(hidden: int, layers: int, model_path: str, pairs, seed: int = 0):
    """The tiny LM (all weights train), or a real model with the real recipe's LoRA."""
    if model_path:
        return load_model(model_path, lora=True, lora_r=8, dtype="bfloat16")
    texts = [" ".join(p.src) for p in pairs] + [" ".join(p.tgt) for p in pairs]
    tok = train_tokenizer(texts, vocab_size=2000)
    heads = max(1, hidden // 32)
    model = build_tiny_lm(tok, hidden_size=hidden, num_layers=layers, num_heads=heads, seed=seed)
    return model, tok


def episodes(model, tok, pairs, sources: int, group: int, words: int, device: str, seed: int = 0):
    """Sampled episodes, random advantages, and the seconds the sampling took."""
    model = model.to(device).eval()
    spec = PolicySpec(kind="llm", do_sample=True, max_piece_tokens=8, max_new_tokens=24, seed=seed)
    policy = build_policy(spec, model=model, tokenizer=tok)
    picked = [p for p in pairs if len(p.src) >= 8][:sources]
    start = time.perf_counter()
    rollouts = sample_groups(
        policy, [list(p.src)[: words or None] for p in picked], [" ".join(p.tgt) for p in picked],
        FixedWords(2), group,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    rewards = np.random.default_rng(seed).normal(size=len(rollouts))
    advantages = group_advantages(rewards, [r.group for r in rollouts])
    return rollouts, advantages, seconds


class StepClock:
    """Seconds spent in an optimizer's ``step`` (its pre/post hooks), to split an update."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.seconds, self._start = 0.0, 0.0
        optimizer.register_step_pre_hook(self._pre)
        optimizer.register_step_post_hook(self._post)

    def _pre(self, *_) -> None:
        self._start = time.perf_counter()

    def _post(self, *_) -> None:
        self.seconds += time.perf_counter() - self._start


def best_of(repeats: int, step, device: str, clock: StepClock | None = None):
    """The best time of ``repeats`` steps after a warm-up, and that step's optimizer seconds."""
    step()  # warm-up
    best, best_opt = float("inf"), 0.0
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        opt_before = clock.seconds if clock else 0.0
        start = time.perf_counter()
        step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        took = time.perf_counter() - start
        if took < best:
            best, best_opt = took, (clock.seconds - opt_before if clock else 0.0)
    return best, best_opt


def compare(model, tok, rollouts, advantages, loss_type, repeats, tmp, device, with_trl) -> dict:
    n = len(rollouts)
    cfg = GRPOConfig(loss_type=loss_type, micro_batch_size=n, lr=1e-4, max_grad_norm=1.0)
    # Our steps train ``model`` itself (no second copy of a large model's frozen weights:
    # the peak RSS stays what training needs); its trained weights are put back after.
    start = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    optimizer = torch.optim.AdamW([v for v in model.parameters() if v.requires_grad], lr=cfg.lr)
    clock = StepClock(optimizer)
    tensors = collate(rollouts, tok.pad_token_id).to(device)

    def our_step():
        return grpo_update(model, optimizer, tensors, advantages, cfg)["loss"]

    try:
        # Two steps from the model's weights: the first at ratio 1, the second off-policy.
        losses = [our_step(), our_step()]
        t_ours, t_opt = best_of(repeats, our_step, device, clock)
        row = {
            "loss_type": loss_type,
            "simulpo_ms": 1000 * t_ours,
            "simulpo_optimizer_ms": 1000 * t_opt,
            "simulpo_losses": losses,
        }
        if device.startswith("cuda"):
            row["simulpo_peak_mib"] = step_memory(our_step)
    finally:
        with torch.no_grad():
            for k, v in model.named_parameters():
                if k in start:
                    v.copy_(start[k])
        model.eval()
    if with_trl:
        row.update(against_trl(model, tok, rollouts, advantages, cfg, repeats, tmp, device))
        row["time_ratio"] = row["simulpo_ms"] / row["trl_ms"]
        row["loss_abs_diff"] = max(abs(a - b) for a, b in zip(losses, row["trl_losses"]))
    return row


def step_memory(step) -> float:
    """MiB of GPU memory one more step takes above what is held before it."""
    torch.cuda.reset_peak_memory_stats()
    held = torch.cuda.memory_allocated()
    step()
    return (torch.cuda.max_memory_allocated() - held) / 2**20


def against_trl(model, tok, rollouts, advantages, cfg, repeats, tmp, device) -> dict:
    """TRL's step on the same episodes from the same weights: its time, two losses, memory."""
    import trl

    n = len(rollouts)
    max_tokens = max(r.num_policy_tokens for r in rollouts)

    theirs = copy.deepcopy(model).train()
    args = trl_config(
        cfg, group_size=n, max_tokens=max_tokens, output_dir=tmp, use_cpu=device == "cpu",
        bf16=False, report_to="none", per_device_train_batch_size=n,
       
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = trl.GRPOTrainer(
            model=theirs, processing_class=tok, reward_funcs=lambda **kw: [0.0] * n,
            args=args, train_dataset=trl_dataset(["x"], ["y"]),
        )  # fmt: skip
    trainer.current_gradient_accumulation_steps = 1
    their_opt = torch.optim.AdamW([p for p in theirs.parameters() if p.requires_grad], lr=cfg.lr)
    batch = to_trl(rollouts)
    # pi_old = the sampler's log-probs on both sides (TRL's old_per_token_logps).
    inputs = trl_loss_inputs(
        batch, advantages, tok.pad_token_id, device=device, old_logprobs=batch["logprobs"]
    )

    def trl_step():
        loss = trainer.compute_loss(theirs, inputs)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), cfg.max_grad_norm)
        their_opt.step()
        their_opt.zero_grad(set_to_none=True)
        return loss.item()

    losses = [trl_step(), trl_step()]
    row = {"trl_ms": 1000 * best_of(repeats, trl_step, device)[0], "trl_losses": losses}
    if device.startswith("cuda"):
        row["trl_peak_mib"] = step_memory(trl_step)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=4, help="sources per rollout batch")
    parser.add_argument("--group", type=int, default=4, help="episodes per source")
    parser.add_argument("--repeats", type=int, default=3, help="steps timed; the best is kept")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--hidden", type=int, default=128, help="hidden size of the tiny LM")
    parser.add_argument("--layers", type=int, default=4, help="layers of the tiny LM")
    parser.add_argument(
        "--vocab", type=int, default=0, help="grow the LM's vocabulary to this size after sampling "
        "(e.g. 151936, Qwen's) to weigh the output layer as in real models; 0 = keep 2,000",
    )  # fmt: skip
    parser.add_argument(
        "--model", default="", help="a real model (installed name or folder), with LoRA r=8 in "
        "bfloat16 like configs/real-text.yaml, not the tiny LM",
    )  # fmt: skip
    parser.add_argument(
        "--words", type=int, default=0, help="cut sources to this many words; 0 = whole"
    )
    parser.add_argument(
        "--loss-types",
        default=",".join(LOSS_TYPES),
        help=f"comma-separated, of {', '.join(LOSS_TYPES)}",
    )
    parser.add_argument("--no-trl", action="store_true", help="time our step only, not TRL's")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        import trl
    except ImportError:
        if not args.no_trl:
            print("TRL is not installed: pip install 'simulpo[trl]' (or --no-trl)", file=sys.stderr)
            return 1
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    import tempfile

    loss_types = [lt for lt in args.loss_types.split(",") if lt]
    if unknown := set(loss_types) - set(LOSS_TYPES):
        parser.error(f"unknown loss type(s) {', '.join(sorted(unknown))}; known: {LOSS_TYPES}")
    pairs = generate_corpus(2000, seed=0)
    model, tok = build(args.hidden, args.layers, args.model, pairs)
    rollouts, advantages, rollout_s = episodes(
        model, tok, pairs, args.sources, args.group, args.words, args.device
    )
    rss_rollout = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.vocab:
        model.resize_token_embeddings(args.vocab)
    tokens = sum(len(r.token_ids) for r in rollouts)
    policy_tokens = sum(r.num_policy_tokens for r in rollouts)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            compare(
                model,
                tok,
                rollouts,
                advantages,
                lt,
                args.repeats,
                tmp,
                args.device,
                not args.no_trl,
            )
            for lt in loss_types
        ]
    for r in rows:
        r["tokens_per_s"] = 1000 * tokens / r["simulpo_ms"]
    result = {
        "model": args.model or "tiny",
        "episodes": len(rollouts),
        "tokens": tokens,
        "policy_tokens": policy_tokens,
        "rollout_s": rollout_s,
        "rollout_policy_tokens_per_s": policy_tokens / rollout_s,
        "parameters": count_parameters(model),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "peak_rss_after_rollout_mib": rss_rollout,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": args.threads,
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "vocab": model.config.vocab_size,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "trl": None if args.no_trl else trl.__version__,
        "python": platform.python_version(),
        "results": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{result['model']}: {len(rollouts)} episodes ({args.sources} sources x {args.group}), "
        f"{tokens} tokens, {policy_tokens} written by the policy (sampled in {rollout_s:.1f} s, "
        f"{result['rollout_policy_tokens_per_s']:.1f} tokens/s); LM of "
        f"{result['parameters'] / 1e6:.1f} M parameters ({result['trainable_parameters'] / 1e6:.2f} M "
        f"trained), vocabulary {result['vocab']}; one optimizer step on the whole batch, "
        f"best of {args.repeats}; {result['device']}, {args.threads} CPU thread(s); "
        f"peak RSS {rss_rollout:.0f} MiB after sampling, {result['peak_rss_mib']:.0f} MiB in all"
    )
    for r in rows:
        print(
            f"  {r['loss_type']:8s} simulpo {r['simulpo_ms']:7.1f} ms "
            f"(AdamW step {r['simulpo_optimizer_ms']:.1f}, {r['tokens_per_s']:.0f} tokens/s)"
            + (
                f"   TRL {trl.__version__} {r['trl_ms']:7.1f} ms   ratio {r['time_ratio']:.2f}   "
                f"loss at step 2 {r['simulpo_losses'][1]:+.6e} vs {r['trl_losses'][1]:+.6e}, "
                f"max |diff| over 2 steps {r['loss_abs_diff']:.1e}"
                if "trl_ms" in r
                else ""
            )
            + (
                f"   step memory {r['simulpo_peak_mib']:.0f} vs {r['trl_peak_mib']:.0f} MiB"
                if "trl_peak_mib" in r
                else ""
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

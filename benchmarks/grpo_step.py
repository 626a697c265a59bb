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
policy, after one identical AdamW step). Each time is the best of several further steps.

    .venv/bin/python benchmarks/grpo_step.py [--sources N] [--group G] [--repeats R] [--json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
import warnings

import numpy as np
import torch

from simulpo.data.synthetic import generate_corpus
from simulpo.models.lm import build_tiny_lm, count_parameters
from simulpo.models.tokenizer import train_tokenizer
from simulpo.policies.build import PolicySpec, build_policy
from simulpo.stream.segmenter import FixedWords
from simulpo.train.grpo import LOSS_TYPES, GRPOConfig, group_advantages, grpo_update
from simulpo.train.rollout import collate, sample_groups
from simulpo.train.trl_adapter import to_trl, trl_config, trl_dataset, trl_loss_inputs


def episodes(sources: int, group: int, hidden: int, layers: int, device: str, seed: int = 0):
    pairs = generate_corpus(2000, seed=seed)
    texts = [" ".join(p.src) for p in pairs] + [" ".join(p.tgt) for p in pairs]
    tok = train_tokenizer(texts, vocab_size=2000)
    heads = max(1, hidden // 32)
    model = build_tiny_lm(tok, hidden_size=hidden, num_layers=layers, num_heads=heads, seed=seed)
    model = model.to(device).eval()
    spec = PolicySpec(kind="llm", do_sample=True, max_piece_tokens=8, max_new_tokens=24, seed=seed)
    policy = build_policy(spec, model=model, tokenizer=tok)
    picked = [p for p in pairs if len(p.src) >= 8][:sources]
    rollouts = sample_groups(
        policy, [list(p.src) for p in picked], [" ".join(p.tgt) for p in picked],
        FixedWords(2), group,
    )  # fmt: skip
    rewards = np.random.default_rng(seed).normal(size=len(rollouts))
    advantages = group_advantages(rewards, [r.group for r in rollouts])
    return model, tok, rollouts, advantages


def best_of(repeats: int, step, device: str) -> float:
    step()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def compare(model, tok, rollouts, advantages, loss_type, repeats, tmp, device) -> dict:
    import trl

    n = len(rollouts)
    max_tokens = max(r.num_policy_tokens for r in rollouts)
    cfg = GRPOConfig(loss_type=loss_type, micro_batch_size=n, lr=1e-4, max_grad_norm=1.0)

    ours = copy.deepcopy(model)
    ours_opt = torch.optim.AdamW(ours.parameters(), lr=cfg.lr)
    tensors = collate(rollouts, tok.pad_token_id).to(device)

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
    their_opt = torch.optim.AdamW(theirs.parameters(), lr=cfg.lr)
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

    # Two steps each from the same weights: the first at ratio 1, the second off-policy.
    losses = [(grpo_update(ours, ours_opt, tensors, advantages, cfg)["loss"], trl_step())]
    losses.append((grpo_update(ours, ours_opt, tensors, advantages, cfg)["loss"], trl_step()))
    t_ours = best_of(repeats, lambda: grpo_update(ours, ours_opt, tensors, advantages, cfg), device)
    t_trl = best_of(repeats, trl_step, device)
    peak = {}
    if device.startswith("cuda"):  # memory one more step takes above what is held before it
        for name, step in (
            ("simulpo", lambda: grpo_update(ours, ours_opt, tensors, advantages, cfg)),
            ("trl", trl_step),
        ):
            torch.cuda.reset_peak_memory_stats()
            held = torch.cuda.memory_allocated()
            step()
            peak[name] = (torch.cuda.max_memory_allocated() - held) / 2**20
    return {
        "loss_type": loss_type,
        "simulpo_ms": 1000 * t_ours,
        "trl_ms": 1000 * t_trl,
        "time_ratio": t_ours / t_trl,
        "simulpo_losses": [a for a, _ in losses],
        "trl_losses": [b for _, b in losses],
        "loss_abs_diff": max(abs(a - b) for a, b in losses),
        **{f"{k}_peak_mib": v for k, v in peak.items()},
    }


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
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        import trl
    except ImportError:
        print("TRL is not installed: pip install 'simulpo[trl]'", file=sys.stderr)
        return 1
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    import tempfile

    model, tok, rollouts, advantages = episodes(
        args.sources, args.group, args.hidden, args.layers, args.device
    )
    if args.vocab:
        model.resize_token_embeddings(args.vocab)
    tokens = sum(len(r.token_ids) for r in rollouts)
    policy_tokens = sum(r.num_policy_tokens for r in rollouts)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            compare(model, tok, rollouts, advantages, lt, args.repeats, tmp, args.device)
            for lt in LOSS_TYPES
        ]
    result = {
        "episodes": len(rollouts),
        "tokens": tokens,
        "policy_tokens": policy_tokens,
        "parameters": count_parameters(model),
        "threads": args.threads,
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "vocab": model.config.vocab_size,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "trl": trl.__version__,
        "python": platform.python_version(),
        "results": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{len(rollouts)} episodes ({args.sources} sources x {args.group}), {tokens} tokens, "
        f"{policy_tokens} written by the policy; LM of {result['parameters'] / 1e6:.1f} M "
        f"parameters, vocabulary {result['vocab']}; one optimizer step on the whole batch, "
        f"best of {args.repeats}; {result['device']}, {args.threads} CPU thread(s)"
    )
    for r in rows:
        print(
            f"  {r['loss_type']:8s} simulpo {r['simulpo_ms']:7.1f} ms   TRL {trl.__version__} "
            f"{r['trl_ms']:7.1f} ms   ratio {r['time_ratio']:.2f}   "
            f"loss at step 2 {r['simulpo_losses'][1]:+.6e} vs {r['trl_losses'][1]:+.6e}, "
            f"max |diff| over 2 steps {r['loss_abs_diff']:.1e}"
            + (
                f"   step memory {r['simulpo_peak_mib']:.0f} vs {r['trl_peak_mib']:.0f} MiB"
                if "trl_peak_mib" in r
                else ""
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How fast are streaming rollouts, against their floor and against recomputing every turn?

Side by side in one run, with one model and the same tokens:

1. **streaming ÷ offline**: a streaming rollout (``LLMPolicy`` through ``run_stream``, one
   chunk of ``--chunk-words`` words per turn, ``--piece-tokens`` tokens per piece) against
   offline decoding of the identical output tokens — one prompt holding the whole source,
   then the tokens the stream wrote, forced one by one through the same decoding loop (the
   floor: no turn structure at all). ``model.generate`` writing as many tokens from that
   prompt is timed too, for reference.
2. **recompute ÷ streaming**: the naive policy that recomputes the whole dialogue at every
   turn (no cache kept between turns) against the streaming one, at 8 … 64 turns; both
   must write the same tokens (greedy), which is checked.
3. **batch size**: policy tokens per second and peak memory at 1, 8, 32, 64 episodes.
4. **stream length**: one long stream of 64 … 512 turns, with and without a bounded cache
   (``--window`` tokens): time per written token should stay flat with the window.

The models are randomly initialized (speed does not need trained weights), so greedy
pieces mostly run to their token budget: every turn writes the same number of tokens.
``--model NAME`` (an installed model such as ``qwen2.5-1.5b-instruct``, or a folder)
measures a real model instead: its pieces end where it chooses, so tokens per turn vary.
Each time is the best of ``--repeats`` runs after one warm-up.

    .venv/bin/python benchmarks/rollout.py [--config tiny|100m | --model NAME] [--device cpu|cuda] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from functools import partial

import torch

from simulpo.data.synthetic import generate_corpus
from simulpo.decoding import Generated, Sampler, generate
from simulpo.models.chat import ChatFormat
from simulpo.models.lm import build_tiny_lm, count_parameters
from simulpo.models.tokenizer import train_tokenizer
from simulpo.policies.llm import LLMPolicy
from simulpo.stream.dialogue import offline_messages
from simulpo.stream.loop import run_stream
from simulpo.stream.segmenter import FixedWords

#: model shapes: the embedded default, and a ~100M-parameter Qwen2 (GQA like real Qwen)
CONFIGS = {
    "tiny": {},
    "100m": {
        "hidden_size": 768,
        "num_layers": 12,
        "num_heads": 12,
        "intermediate_size": 2560,
        "max_positions": 32768,
    },
}


def build(config: str, device: str, dtype: torch.dtype, model_path: str = ""):
    if model_path:
        from simulpo.models.lm import load_model

        model, tokenizer = load_model(model_path, dtype=str(dtype).removeprefix("torch."))
        return model.to(device).eval(), tokenizer
    pairs = generate_corpus(2000, seed=0)
    tokenizer = train_tokenizer([p.source for p in pairs] + [p.target for p in pairs])
    model = build_tiny_lm(tokenizer, **CONFIGS[config]).to(device=device, dtype=dtype).eval()
    return model, tokenizer


class Probe:
    """Wraps a policy to note the largest KV cache it held (bytes)."""

    def __init__(self, policy: LLMPolicy) -> None:
        self.policy, self.name, self.peak = policy, policy.name, 0

    def act(self, states):
        pieces = self.policy.act(states)
        blocks = {id(k[0]): k[0] for s in states if (k := s.memory["dialogue"].kv) is not None}
        self.peak = max(self.peak, sum(b.nbytes for b in blocks.values()))
        return pieces


class RecomputePolicy(LLMPolicy):
    """The naive baseline: the same policy, but every turn starts from an empty cache and
    recomputes the whole dialogue so far (as a stateless ``generate`` call per turn would)."""

    def act(self, states):
        for s in states:
            rec = s.memory.get("dialogue")
            if rec is not None:
                rec.kv, rec.pending = None, len(rec.token_ids)
        return super().act(states)


def timed(fn, repeats: int, device: str):
    """Best wall time of ``repeats`` runs after a warm-up, and the last result."""
    result = fn()
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best, result


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def stream(policy, sources, chunk_words: int, batch_size: int = 256):
    episodes = run_stream(
        sources, policy, FixedWords(chunk_words), batch_size=batch_size, progress=False
    )
    return [e.memory["dialogue"] for e in episodes]


def policy_tokens(rec) -> list[int]:
    return [t for t, m in zip(rec.token_ids, rec.policy_mask) if m]


def sources_of(n: int, words: int, seed: int = 1) -> list[list[str]]:
    """``n`` sources of exactly ``words`` words (synthetic sentences, joined as a stream)."""
    pool = [w for p in generate_corpus(max(64, n * words // 8), seed=seed) for w in p.src]
    while len(pool) < n * words:
        pool += pool
    return [pool[i * words : (i + 1) * words] for i in range(n)]


def offline(model, chat: ChatFormat, prompts, written) -> Generated:
    """The floor: each whole-source prompt, then the stream's tokens forced one by one."""
    return generate(
        model, None, prompts, [0] * len(prompts), set(), Sampler(), chat.pad_id(), forced=written
    )


def hf_generate(model, chat: ChatFormat, prompts, written) -> torch.Tensor:
    """``model.generate`` from the same prompts (left-padded), as many tokens as the stream wrote."""
    n = max(len(w) for w in written)
    width = max(len(p) for p in prompts)
    ids = torch.tensor(
        [[chat.pad_id()] * (width - len(p)) + p for p in prompts], device=model.device
    )
    mask = torch.tensor(
        [[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=model.device
    )
    return model.generate(
        ids,
        attention_mask=mask,
        max_new_tokens=n,
        min_new_tokens=n,
        do_sample=False,
        pad_token_id=chat.pad_id(),
    )


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=CONFIGS, default="tiny", help="model shape")
    ap.add_argument("--model", default="", help="a real model (installed name or folder), not --config")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--dtype", default="float32", help="float32 or bfloat16 (greedy ties may then differ)"
    )
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--chunk-words", type=int, default=2, help="source words per turn")
    ap.add_argument("--piece-tokens", type=int, default=4, help="token budget of a piece")
    ap.add_argument("--turns", default="8,16,32,64", help="turn counts for (1) and (2)")
    ap.add_argument("--episodes", type=int, default=8, help="episodes decoded together in (1), (2)")
    ap.add_argument("--batches", default="1,8,32,64", help="batch sizes for (3)")
    ap.add_argument("--batch-turns", type=int, default=16, help="turns per episode in (3)")
    ap.add_argument("--lengths", default="64,128,256,512", help="stream lengths (turns) for (4)")
    ap.add_argument("--window", type=int, default=1024, help="cache window (tokens) in (4)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (best kept)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = args.device
    dtype = getattr(torch, args.dtype)
    model, tokenizer = build(args.config, device, dtype, args.model)
    chat = ChatFormat(tokenizer)

    def ints(text: str) -> list[int]:
        return [int(x) for x in text.split(",") if x]

    def policy(cls=LLMPolicy, **kw):
        return cls(
            model,
            tokenizer,
            max_piece_tokens=args.piece_tokens,
            max_final_tokens=2 * args.piece_tokens,
            **kw,
        )

    def run(make_policy, sources, batch_size=256):
        return lambda: stream(make_policy(), sources, args.chunk_words, batch_size)

    # (1) and (2): E episodes of T turns, three ways.
    by_turns = {}
    for turns in ints(args.turns):
        sources = sources_of(args.episodes, turns * args.chunk_words, seed=turns)
        t_stream, recs = timed(run(policy, sources), args.repeats, device)
        t_naive, naive = timed(run(lambda: policy(RecomputePolicy), sources), args.repeats, device)
        written = [policy_tokens(r) for r in recs]
        prompts = [
            chat.encode(chat.render(offline_messages(" ".join(s)), generation_prompt=True))
            for s in sources
        ]
        t_off, off = timed(partial(offline, model, chat, prompts, written), args.repeats, device)
        t_hf, _ = timed(partial(hf_generate, model, chat, prompts, written), args.repeats, device)
        by_turns[turns] = {
            "tokens_written": sum(len(w) for w in written),
            "dialogue_tokens": sum(len(r.token_ids) for r in recs),
            "streaming_s": t_stream,
            "offline_forced_s": t_off,
            "hf_generate_s": t_hf,
            "recompute_s": t_naive,
            "same_tokens": [r.token_ids for r in naive] == [r.token_ids for r in recs]
            and off.tokens == written,
        }

    # (3) batch size: B episodes of --batch-turns turns, in lockstep.
    by_batch = {}
    for b in ints(args.batches):
        sources = sources_of(b, args.batch_turns * args.chunk_words, seed=100 + b)
        probe = Probe(policy())
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        t, recs = timed(run(lambda p=probe: p, sources, b), args.repeats, device)
        n = sum(len(policy_tokens(r)) for r in recs)
        row = {
            "tokens_written": n,
            "seconds": t,
            "tokens_per_s": n / t,
            "kv_peak_mb": probe.peak / 2**20,
        }
        if device == "cuda":
            row["gpu_peak_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
        by_batch[b] = row

    # (4) one long stream, with and without a bounded cache.
    by_length = {}
    for turns in ints(args.lengths):
        sources = sources_of(1, turns * args.chunk_words, seed=7)
        row = {}
        for label, window in (("full", None), ("window", args.window)):
            probe = Probe(policy(cache_window=window))
            t, (rec,) = timed(run(lambda p=probe: p, sources), 1, device)
            n = len(policy_tokens(rec))
            row[label] = {
                "seconds": t,
                "tokens_written": n,
                "dialogue_tokens": len(rec.token_ids),
                "ms_per_token": 1000 * t / n,
                "kv_peak_mb": probe.peak / 2**20,
            }
        by_length[turns] = row

    total_stream = sum(r["streaming_s"] for r in by_turns.values())
    total_off = sum(r["offline_forced_s"] for r in by_turns.values())
    result = {
        "config": args.model or args.config,
        "parameters": count_parameters(model),
        "device": torch.cuda.get_device_name()
        if device == "cuda"
        else platform.processor() or platform.machine(),
        "dtype": str(dtype).removeprefix("torch."),
        "threads": args.threads,
        "episodes": args.episodes,
        "chunk_words": args.chunk_words,
        "piece_tokens": args.piece_tokens,
        "streaming_over_offline": total_stream / total_off,
        "streaming_over_offline_by_turns": {
            t: r["streaming_s"] / r["offline_forced_s"] for t, r in by_turns.items()
        },
        "streaming_over_hf_generate_by_turns": {
            t: r["streaming_s"] / r["hf_generate_s"] for t, r in by_turns.items()
        },
        "recompute_over_streaming": {
            t: r["recompute_s"] / r["streaming_s"] for t, r in by_turns.items()
        },
        "turns": by_turns,
        "batch": by_batch,
        "length": by_length,
        "window": args.window,
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_tables(result)
    return result


def print_tables(r: dict) -> None:
    print(
        f"{r['config']}: {r['parameters'] / 1e6:.1f}M parameters, {r['dtype']} on {r['device']}, "
        f"{r['threads']} thread(s); {r['chunk_words']} words a turn, {r['piece_tokens']} tokens a piece"
    )
    print(
        f"\n(1, 2) {r['episodes']} episode(s): streaming vs its offline floor and vs recomputing every turn"
    )
    print(
        f"{'turns':>6} {'written':>8} {'stream s':>9} {'offline s':>10} {'stream/off':>11} "
        f"{'hf.gen s':>9} {'recompute s':>12} {'recomp/stream':>14} {'same':>5}"
    )
    for t, x in r["turns"].items():
        print(
            f"{t:>6} {x['tokens_written']:>8} {x['streaming_s']:>9.3f} {x['offline_forced_s']:>10.3f} "
            f"{x['streaming_s'] / x['offline_forced_s']:>11.2f} {x['hf_generate_s']:>9.3f} "
            f"{x['recompute_s']:>12.3f} {x['recompute_s'] / x['streaming_s']:>14.2f} {x['same_tokens']!s:>5}"
        )
    print(f"streaming / offline over all: {r['streaming_over_offline']:.2f}")
    print("\n(3) batch size")
    print(
        f"{'batch':>6} {'written':>8} {'seconds':>8} {'tokens/s':>9} {'kv peak MB':>11} {'gpu peak MB':>12}"
    )
    for b, x in r["batch"].items():
        gpu = f"{x['gpu_peak_mb']:>12.1f}" if "gpu_peak_mb" in x else f"{'-':>12}"
        print(
            f"{b:>6} {x['tokens_written']:>8} {x['seconds']:>8.3f} {x['tokens_per_s']:>9.0f} "
            f"{x['kv_peak_mb']:>11.2f} {gpu}"
        )
    print(f"\n(4) stream length (one episode; window = {r['window']} tokens)")
    print(
        f"{'turns':>6} {'dialogue':>9} {'full s':>8} {'ms/tok':>7} {'kv MB':>7} "
        f"{'window s':>9} {'ms/tok':>7} {'kv MB':>7}"
    )
    for t, x in r["length"].items():
        f, w = x["full"], x["window"]
        print(
            f"{t:>6} {f['dialogue_tokens']:>9} {f['seconds']:>8.2f} {f['ms_per_token']:>7.2f} "
            f"{f['kv_peak_mb']:>7.2f} {w['seconds']:>9.2f} {w['ms_per_token']:>7.2f} {w['kv_peak_mb']:>7.2f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])

"""Real-time factor of the speech LLM policy over a long stream: bounded cache vs growing cache.

One recording (default: 5 minutes of noise and tones, or ``--audio WAV`` tiled to
``--minutes``) is translated as ONE episode, as ``simulpo eval --speech --long-form`` does
(``FixedMilliseconds(chunk_ms × chunks-per-turn)`` turns, online encoding, the queue
clock), twice in one run with the same model:

- **bounded**: ``cache_window=--window`` tokens (InfiniSST-style eviction, positions stay
  below the window);
- **unbounded**: no window, the KV cache holds the whole dialogue and grows with the stream.

Per minute of audio it prints the real-time factor (compute seconds ÷ audio seconds; < 1
keeps up with live speech), the encoder's share of it, the largest number of tokens in
the cache, and unbounded ÷ bounded: the bounded RTF should stay flat while the unbounded
one grows with the cache. The model is ``--model DIR`` (a speech model directory, as the
speech recipe saves it) or else a randomly initialized speech LM built in-process
(``--config``; random weights write every piece to its token budget, so every turn writes
the same number of tokens). The per-minute rows leave out the last turn, which writes the
rest of the translation (up to ``--final-tokens``); the totals count it. The encoder is
the packaged Whisper tiny.en unless ``--encoder`` says otherwise (``random``: a 1-layer
random Whisper, to time the LM alone). "max lag" is the largest delay of a turn's output
behind the end of its audio on the real-time (queue) clock: it stays near one turn's
compute while RTF < 1. "held KB/s" is what the episode's state gains per second of audio
after minute 1 (:func:`~simulpo.stream.footprint.held_bytes`: the record, the cache, the
source read), "RSS +MB" the process's resident memory gained over the stream;
``--record-speech`` keeps every turn's encoder frames in the record, as RL rollouts do.

    .venv/bin/python benchmarks/speech_rtf.py [--minutes 5] [--model DIR] [--device cuda] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from simulpo.models.speech_encoder import SAMPLE_RATE, SpeechEncoder
from simulpo.policies.build import PolicySpec, build_policy
from simulpo.stream.footprint import held_bytes
from simulpo.stream.loop import run_stream
from simulpo.stream.segmenter import FixedMilliseconds

#: shapes of the in-process random LM (as benchmarks/rollout.py's)
CONFIGS = {
    "tiny": {"hidden_size": 128, "num_layers": 4, "num_heads": 4},
    "100m": {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "intermediate_size": 2560},
}


def random_encoder() -> SpeechEncoder:
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    config = WhisperConfig(
        d_model=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32,
        num_mel_bins=80, max_source_positions=1500,
    )  # fmt: skip
    torch.manual_seed(0)
    return SpeechEncoder(WhisperEncoder(config), name="random")


def load_encoder(spec: str) -> SpeechEncoder:
    if spec == "random":
        return random_encoder()
    return SpeechEncoder.load(spec or None)


def build_random_model(directory: Path, config: str, encoder_dim: int) -> Path:
    """A random speech model directory: BPE tokenizer + ``<|speech|>``, Qwen2 LM, projector."""
    from simulpo.data.synthetic import generate_corpus
    from simulpo.models.lm import build_tiny_lm
    from simulpo.models.projector import (
        ProjectorConfig,
        SpeechLM,
        SpeechProjector,
        add_speech_token,
    )
    from simulpo.models.tokenizer import train_tokenizer

    pairs = generate_corpus(2000, seed=0)
    tokenizer = train_tokenizer([p.source for p in pairs] + [p.target for p in pairs])
    speech_id = add_speech_token(tokenizer)
    lm = build_tiny_lm(tokenizer, max_positions=65536, **CONFIGS[config])
    hidden = lm.config.hidden_size
    projector = SpeechProjector(ProjectorConfig(encoder_dim, hidden, stack=4, input_norm=True))
    SpeechLM(lm, projector, speech_id).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def recording(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise with a tone of a new pitch every 2 s."""
    rng = np.random.default_rng(seed)
    n = round(seconds * SAMPLE_RATE)
    block = 2 * SAMPLE_RATE
    pitch = np.repeat(200 + 600 * rng.random(n // block + 1), block)[:n]
    t = np.arange(n) / SAMPLE_RATE
    audio = 0.2 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(n)
    return audio.astype(np.float32)


def load_audio(path: str | None, seconds: float) -> np.ndarray:
    if not path:
        return recording(seconds)
    from simulpo.data.audio import read_audio

    audio = read_audio(path)
    n = round(seconds * SAMPLE_RATE)
    return np.tile(audio, math.ceil(n / len(audio)))[:n]


class Probe:
    """Times every turn (and the encoder within it) and notes the episode's cache."""

    def __init__(self, policy, device: str) -> None:
        self.policy, self.name, self.device = policy, policy.name, device
        self.turns: list[dict] = []
        self._encoder_s = 0.0
        front = policy.speech
        inner = front.chunk_frames

        def timed_frames(states):
            tic = time.perf_counter()
            frames = inner(states)
            self._encoder_s += time.perf_counter() - tic
            return frames

        front.chunk_frames = timed_frames

    def act(self, states):
        self._encoder_s = 0.0
        sync(self.device)
        tic = time.perf_counter()
        pieces = self.policy.act(states)
        sync(self.device)
        seconds = time.perf_counter() - tic
        state = states[0]
        rec = state.memory["dialogue"]
        tokens = kv_bytes = 0
        if rec.kv is not None:
            block, row = rec.kv
            tokens, kv_bytes = block.lengths[row], block.nbytes
        else:  # the last turn drops the cache; it held at most its dialogue's tail
            tokens = len(rec.token_ids) - rec.evicted[-1]
        self.turns.append(
            {
                "end_ms": state.delay,
                "seconds": seconds,
                "encoder_s": self._encoder_s,
                "cache_tokens": tokens,
                "kv_bytes": kv_bytes,
                # what the episode keeps (record, cache, source read), weighed outside the timing
                "held_bytes": held_bytes(state),
            }
        )
        return pieces


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def stream(policy, audio: np.ndarray, turn_ms: float, device: str) -> tuple[Probe, dict]:
    probe = Probe(policy, device)
    rss = resident_bytes()
    start = time.perf_counter()
    (episode,) = run_stream(
        [audio], probe, FixedMilliseconds(turn_ms), progress=False, clock="queue"
    )
    wall = time.perf_counter() - start
    rss = resident_bytes() - rss
    rec = episode.memory["dialogue"]
    # The queue clock per turn (what evaluate_longform's elapsed times follow): a turn
    # starts when its audio is in and the previous turn is done; lag = output time - audio end.
    ready, lag = 0.0, []
    for t in probe.turns:
        ready = max(t["end_ms"], ready) + 1000 * t["seconds"]
        lag.append(ready - t["end_ms"])
    return probe, {
        "wall_s": wall,
        "turns": len(episode.chunks),
        "dialogue_tokens": len(rec.token_ids),
        "written_tokens": sum(rec.policy_mask),
        "max_lag_ms": max(lag, default=0.0),
        "held_kb_per_s": held_growth(probe.turns),
        "rss_growth_mb": rss / 2**20,
    }


def held_growth(turns: list[dict]) -> float:
    """KB the episode gains per second of audio, from minute 1 to the turn before the last
    (which drops the cache and writes the rest)."""
    first = next((t for t in turns if t["end_ms"] >= 60000), turns[0])
    last = turns[-2] if len(turns) > 1 else turns[-1]
    span = (last["end_ms"] - first["end_ms"]) / 1000
    return (last["held_bytes"] - first["held_bytes"]) / 1000 / span if span > 0 else 0.0


def resident_bytes() -> int:
    """The process's resident memory (Linux; 0 elsewhere)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def per_minute(turns: list[dict], audio_s: float) -> list[dict]:
    rows = []
    for m in range(math.ceil(audio_s / 60)):
        inside = [t for t in turns if m * 60000 < t["end_ms"] <= (m + 1) * 60000]
        span = min(60.0, audio_s - 60 * m)
        compute = sum(t["seconds"] for t in inside)
        rows.append(
            {
                "minute": m + 1,
                "audio_s": span,
                "rtf": compute / span,
                "encoder_rtf": sum(t["encoder_s"] for t in inside) / span,
                "ms_per_turn": 1000 * compute / max(len(inside), 1),
                "peak_cache_tokens": max((t["cache_tokens"] for t in inside), default=0),
                "peak_kv_mb": max((t["kv_bytes"] for t in inside), default=0) / 2**20,
            }
        )
    return rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="speech model dir (default: a random one built in-process)")
    ap.add_argument("--config", choices=CONFIGS, default="tiny", help="shape of the random LM")
    ap.add_argument(
        "--encoder",
        default="",
        help='"" = packaged Whisper tiny.en, "random" = a 1-layer random Whisper, or a path',
    )
    ap.add_argument("--minutes", type=float, default=5.0, help="length of the stream")
    ap.add_argument("--audio", help="a WAV file, tiled to --minutes (default: noise and tones)")
    ap.add_argument("--chunk-ms", type=int, default=1120, help="encoder chunk (ms)")
    ap.add_argument("--context-ms", type=int, default=2000, help="encoder left context (ms)")
    ap.add_argument("--chunks-per-turn", type=int, default=1, help="encoder chunks read a turn")
    ap.add_argument("--window", type=int, default=1024, help="cache window (tokens), bounded run")
    ap.add_argument("--piece-tokens", type=int, default=32, help="token budget of a piece")
    ap.add_argument("--final-tokens", type=int, default=160, help="token budget of the last piece")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", help="LM dtype (float32, bfloat16; default the checkpoint's)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    ap.add_argument(
        "--record-speech", action="store_true", help="keep each turn's frames (as RL does)"
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    encoder = load_encoder(args.encoder)
    audio_s = 60 * args.minutes
    audio = load_audio(args.audio, audio_s)
    turn_ms = args.chunk_ms * args.chunks_per_turn
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or build_random_model(Path(tmp) / "model", args.config, encoder.dim)

        def policy(window):
            return build_policy(PolicySpec(
                kind="llm", speech=True, model=model_dir, chunk_ms=args.chunk_ms,
                context_ms=args.context_ms, max_piece_tokens=args.piece_tokens,
                max_new_tokens=args.final_tokens, cache_window=window, precomputed=False,
                record_speech=args.record_speech, dtype=args.dtype, device=args.device,
            ), encoder=encoder)  # fmt: skip

        runs = {"bounded": policy(args.window), "unbounded": policy(None)}
        parameters = sum(p.numel() for p in runs["bounded"].model.parameters())
    result = {
        "model": args.model or f"random {args.config}",
        "parameters": parameters,
        "encoder": encoder.name,
        "device": torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else platform.processor() or platform.machine(),
        "threads": args.threads,
        "minutes": args.minutes,
        "turn_ms": turn_ms,
        "window": args.window,
        "piece_tokens": args.piece_tokens,
        "record_speech": args.record_speech,
    }
    for label, pol in runs.items():
        stream(pol, recording(20, seed=1), turn_ms, args.device)  # warm-up
        probe, totals = stream(pol, audio, turn_ms, args.device)
        compute = sum(t["seconds"] for t in probe.turns)
        result[label] = {
            **totals,
            "rtf": compute / audio_s,
            "peak_cache_tokens": max(t["cache_tokens"] for t in probe.turns),
            "peak_kv_mb": max(t["kv_bytes"] for t in probe.turns) / 2**20,
            # the last turn writes the rest (up to --final-tokens): not a minute's steady cost
            "minutes": per_minute(probe.turns[:-1], audio_s),
        }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_tables(result)
    return result


def print_tables(r: dict) -> None:
    print(
        f"{r['model']}: {r['parameters'] / 1e6:.1f}M parameters on {r['device']}, "
        f"{r['threads']} thread(s); encoder {r['encoder']}; {r['minutes']:g} min of audio in "
        f"{r['turn_ms']:g} ms turns, {r['piece_tokens']} tokens a piece; window {r['window']}"
        + ("; frames recorded" if r["record_speech"] else "")
    )
    b, u = r["bounded"], r["unbounded"]
    print(
        f"\n{'minute':>6} | {'bounded RTF':>11} {'(encoder)':>9} {'ms/turn':>8} {'cache tok':>9} "
        f"| {'unbounded RTF':>13} {'(encoder)':>9} {'ms/turn':>8} {'cache tok':>9} | {'unb/bnd':>7}"
    )
    for x, y in zip(b["minutes"], u["minutes"]):
        print(
            f"{x['minute']:>6} | {x['rtf']:>11.4f} {x['encoder_rtf']:>9.4f} {x['ms_per_turn']:>8.1f} "
            f"{x['peak_cache_tokens']:>9} | {y['rtf']:>13.4f} {y['encoder_rtf']:>9.4f} "
            f"{y['ms_per_turn']:>8.1f} {y['peak_cache_tokens']:>9} | {y['rtf'] / x['rtf']:>7.2f}"
        )
    print(
        f"\n{'':>9} {'RTF':>7} {'peak cache tok':>15} {'peak KV MB':>11} {'dialogue tok':>13} "
        f"{'turns':>6} {'max lag ms':>11} {'held KB/s':>10} {'RSS +MB':>8}"
    )
    for label, x in (("bounded", b), ("unbounded", u)):
        print(
            f"{label:>9} {x['rtf']:>7.4f} {x['peak_cache_tokens']:>15} {x['peak_kv_mb']:>11.2f} "
            f"{x['dialogue_tokens']:>13} {x['turns']:>6} {x['max_lag_ms']:>11.0f} "
            f"{x['held_kb_per_s']:>10.1f} {x['rss_growth_mb']:>8.1f}"
        )
    first, last = b["minutes"][0]["rtf"], b["minutes"][-1]["rtf"]
    ufirst, ulast = u["minutes"][0]["rtf"], u["minutes"][-1]["rtf"]
    print(
        f"last ÷ first minute: bounded {last / first:.2f}, unbounded {ulast / ufirst:.2f}; "
        f"unbounded ÷ bounded over the stream: {u['rtf'] / b['rtf']:.2f}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])

"""How much faster is simulpo's long-form scoring than the reference tools, on identical numbers?

Generates synthetic talks (default: five of ~2,400 words, 150 sentences each, a 3,000-word
Zipfian vocabulary; the hypothesis a noisy copy of the references, 10% substituted, 5%
dropped, 5% inserted words, with delays near each sentence), writes them as OmniSTEval's
long-form inputs, and times side by side:

- LongYAAL, BLEU, chrF: OmniSTEval 0.1.10's long-form pipeline (load, SoftSegmenter
  re-segmentation — pure Python, one process per recording through its Pool — and
  evaluation) against ``simulpo.metrics.longform.score_longform_files`` (which also
  computes StreamLAAL and writes its outputs);
- StreamLAAL: simulstream 1.0.0's ``stream_laal`` scorer (mweralign's C++ alignment) on
  samples built before the clock starts, against ``resegment_mwer`` + ``stream_laal``.

Each time is the best of several runs (one for OmniSTEval: it is slow), and the scores
are checked to be identical (StreamLAAL: simulstream fed times in ms).

    .venv/bin/python benchmarks/longform.py [--talks N] [--sentences S] [--repeats R] [--json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from simulpo.metrics.longform import (
    match_inputs,
    read_hypotheses,
    read_references,
    read_segments,
    resegment_mwer,
    score_longform_files,
    stream_laal,
)


def synthetic_talks(n_talks: int, n_sentences: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyzäöü"
    vocab = ["".join(rng.choices(letters, k=rng.randint(1, 10))) for _ in range(3000)]
    vocab += [".", ",", "?"]
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    segments, references, hyps = [], [], []
    for t in range(n_talks):
        clock, stream, delays = 2.0, [], []
        for _ in range(n_sentences):
            n = max(1, int(rng.gauss(16, 6)))
            ref = rng.choices(vocab, weights, k=n)
            duration = round(n * rng.uniform(0.3, 0.45), 3)
            segments.append(
                {"wav": f"talk{t}.wav", "offset": round(clock, 3), "duration": duration}
            )
            references.append(" ".join(ref))
            out = []
            for w in ref:
                x = rng.random()
                if x < 0.05:
                    continue
                out.append(rng.choices(vocab, weights)[0] if x < 0.15 else w)
                if rng.random() < 0.05:
                    out.append(rng.choices(vocab, weights)[0])
            lag = rng.uniform(500, 3000)
            for k in range(len(out)):
                d = 1000 * (clock + duration * (k + 1) / len(out)) + lag
                delays.append(max(float(round(d)), delays[-1] if delays else 0.0))
            stream += out
            clock += duration + rng.uniform(0.2, 1.5)
        spent, elapsed = 0.0, []
        for d in delays:
            spent += rng.uniform(0, 60)
            elapsed.append(d + spent)
        hyps.append(
            {
                "source": f"talk{t}.wav",
                "prediction": " ".join(stream),
                "delays": delays,
                "elapsed": elapsed,
            }
        )
    return {"segments": segments, "references": references, "hypotheses": hyps}


def write(folder: Path, corpus: dict) -> tuple[Path, Path, Path]:
    hyp, seg, ref = folder / "hyp.jsonl", folder / "segments.yaml", folder / "ref.txt"
    hyp.write_text("".join(json.dumps(h) + "\n" for h in corpus["hypotheses"]))
    seg.write_text(
        "".join(
            f"- {{wav: {s['wav']}, offset: {s['offset']}, duration: {s['duration']}}}\n"
            for s in corpus["segments"]
        )
    )
    ref.write_text("".join(r + "\n" for r in corpus["references"]))
    return hyp, seg, ref


def best_of(repeats: int, fn):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def omnisteval_longform(paths):
    io, reseg, scoring = (
        importlib.import_module(f"omnisteval.{m}") for m in ("io", "resegment", "scoring")
    )
    hyp, seg, ref = paths
    inputs = io.load_resegmentation_inputs(str(seg), None, str(ref), str(hyp), "jsonl")
    instances, _ = reseg.resegment(*inputs)
    scores, _, _ = scoring.evaluate_instances(instances, is_longform=True)
    return scores


def simulstream_samples(corpus: dict):
    latency = importlib.import_module("simulstream.metrics.scorers.latency")
    readers = importlib.import_module("simulstream.metrics.readers")
    by_wav: dict[str, list] = {}
    for s, r in zip(corpus["segments"], corpus["references"]):
        by_wav.setdefault(Path(s["wav"]).stem, []).append(
            readers.ReferenceSentenceDefinition(r, s["offset"] * 1000, s["duration"] * 1000)
        )
    return [
        latency.LatencyScoringSample(
            Path(h["source"]).stem,
            readers.OutputWithDelays(h["prediction"], list(h["delays"]), list(h["elapsed"])),
            by_wav[Path(h["source"]).stem],
        )
        for h in corpus["hypotheses"]
    ]


def silenced(fn):
    """Run ``fn`` with file descriptor 2 closed to the C++ aligner's chatter."""
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            return fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--talks", type=int, default=5, help="number of recordings")
    parser.add_argument("--sentences", type=int, default=150, help="sentences per recording")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of simulpo; best counts")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic talks")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)

    corpus = synthetic_talks(args.talks, args.sentences, args.seed)
    words = sum(len(h["prediction"].split()) for h in corpus["hypotheses"])
    tmp = Path(tempfile.mkdtemp(prefix="simulpo-longform-"))
    paths = write(tmp, corpus)
    recordings, segments = match_inputs(
        read_hypotheses(paths[0]), read_segments(paths[1]), read_references(paths[2])
    )

    t_ours, ours = best_of(args.repeats, lambda: score_longform_files(*paths, tmp / "out"))

    def ours_stream_laal():
        pieces = resegment_mwer(recordings, segments)
        return stream_laal(pieces, segments), stream_laal(pieces, segments, computation_aware=True)

    t_ours_sl, ours_sl = best_of(args.repeats, ours_stream_laal)
    result: dict = {
        "talks": args.talks,
        "sentences": len(segments),
        "hypothesis_words": words,
        "simulpo_longform_s": t_ours,
        "simulpo_stream_laal_s": t_ours_sl,
        "scores": ours,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    rows = []
    try:
        t_omni, omni = best_of(1, lambda: omnisteval_longform(paths))
    except ImportError:
        result["omnisteval"] = "not installed (scripts/setup.sh --test installs it)"
    else:
        same = all(
            ours[k] == omni[t]
            for k, t in [
                ("LongYAAL", "long_yaal"),
                ("LongYAAL_CA", "ca_long_yaal"),
                ("BLEU", "bleu"),
                ("chrF", "chrf"),
            ]
        )
        result.update(omnisteval_s=t_omni, omnisteval_identical=same)
        rows.append(("LongYAAL+BLEU+chrF", "OmniSTEval 0.1.10", t_omni, t_ours, same))
    try:
        stream_laal_mod = importlib.import_module("simulstream.metrics.scorers.latency.stream_laal")
        samples = simulstream_samples(corpus)
    except ImportError:
        result["simulstream"] = "not installed (scripts/setup.sh --test installs it)"
    else:
        scorer = stream_laal_mod.StreamLaal(argparse.Namespace(latency_unit="word"))
        t_ss, theirs = best_of(args.repeats, lambda: silenced(lambda: scorer.score(samples)))
        same = ours_sl == (theirs.ideal_latency, theirs.computational_aware_latency)
        result.update(simulstream_s=t_ss, simulstream_identical=same)
        rows.append(("StreamLAAL(+CA)", "simulstream 1.0.0", t_ss, t_ours_sl, same))

    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{args.talks} talks, {len(segments)} sentences, {words} hypothesis words "
        f"(simulpo: best of {args.repeats})"
    )
    header = ("metrics", "reference tool", "tool s", "simulpo s", "speed-up", "identical")
    print("  {:20s} {:18s} {:>8s} {:>10s} {:>8s}  {}".format(*header))
    for name, tool, t_ref, t_sim, same in rows:
        ratio = f"{t_ref / t_sim:.1f}x"
        verdict = "yes" if same else "NO"
        print(f"  {name:20s} {tool:18s} {t_ref:8.3f} {t_sim:10.3f} {ratio:>8s}  {verdict}")
    print("  (simulpo's long-form time is all of `simulpo score`: both re-segmentations,")
    print("   all metrics, BLEU and chrF through sacrebleu, files written)")
    for key in ("omnisteval", "simulstream"):
        if isinstance(result.get(key), str):
            print(f"  {key}: {result[key]}")
    for k, v in ours.items():
        print(f"    {k:14s} {v!r}")
    return 0 if all(r[4] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

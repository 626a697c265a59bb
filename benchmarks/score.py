"""How much faster is simulpo's vectorized scoring than SimulEval's, on identical numbers?

Generates a synthetic text log (10,000 instances, ~30 target words each, fixed seed),
then times AL, LAAL, DAL and AP — SimulEval 1.1.4's scorers on its ``LogInstance``
objects (built before the clock starts, as its ``--score-only`` path builds them) against
simulpo's, in the same process — and checks that the corpus scores are identical.

simulpo is timed twice: from padded arrays built before the clock starts (the counterpart
of SimulEval's instance objects), and end to end from the parsed records, padding
included. Each time is the best of several runs.

    .venv/bin/python benchmarks/score.py [--instances N] [--repeats R] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time

import numpy as np

from simulpo.metrics.latency import (
    average_lagging,
    average_proportion,
    corpus_mean,
    differentiable_average_lagging,
    length_adaptive_average_lagging,
    pad,
)
from simulpo.metrics.scores import reference_length
from simulpo.metrics.simuleval_ref import load_simuleval

METRICS = ("AL", "LAAL", "DAL", "AP")


def synthetic_records(n: int, seed: int = 0) -> list[dict]:
    """Text instances from mixed wait-k-like policies: ~30 target words, 15–45 source words."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        src = rng.randint(15, 45)
        m = max(1, int(rng.gauss(30, 6)))
        k = rng.randint(1, 8)
        rate = src / m
        delays, last = [], 0
        for t in range(m):  # wait k, then read about |X|/|Y| words per written word, noisily
            d = min(src, max(last, k + int(t * rate + rng.gauss(0, 1.5))))
            delays.append(d)
            last = d
        ref_len = max(1, int(m * rng.uniform(0.8, 1.2)))
        records.append({
            "index": i,
            "prediction": " ".join(f"w{rng.randint(0, 999)}" for _ in range(m)),
            "delays": delays,
            "elapsed": [0] * m,
            "prediction_length": m,
            "reference": " ".join(f"w{rng.randint(0, 999)}" for _ in range(ref_len)),
            "source": " ".join(f"s{j}" for j in range(src)),
            "source_length": src,
        })
    return records


def best_of(repeats: int, fn):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def ours_from_arrays(delays, src, ref) -> dict[str, float]:
    return {
        "AL": corpus_mean(average_lagging(delays, src, ref)),
        "LAAL": corpus_mean(length_adaptive_average_lagging(delays, src, ref)),
        "DAL": corpus_mean(differentiable_average_lagging(delays, src)),
        "AP": corpus_mean(average_proportion(delays, src, ref)),
    }


def ours_from_records(records) -> dict[str, float]:
    delays = pad([r["delays"] for r in records])
    src = np.fromiter((r["source_length"] for r in records), np.float64, count=len(records))
    ref = np.fromiter(
        (reference_length(r["reference"], "word") for r in records), np.float64, count=len(records)
    )
    return ours_from_arrays(delays, src, ref)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=10_000, help="number of instances")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the best counts")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic log")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    records = synthetic_records(args.instances, args.seed)
    delays = pad([r["delays"] for r in records])
    src = np.array([r["source_length"] for r in records], dtype=np.float64)
    ref = np.array([len(r["reference"].split(" ")) for r in records], dtype=np.float64)
    ours_from_arrays(delays, src, ref)  # warm-up

    t_arrays, ours = best_of(args.repeats, lambda: ours_from_arrays(delays, src, ref))
    t_records, ours_records = best_of(args.repeats, lambda: ours_from_records(records))
    result = {
        "instances": args.instances,
        "target_words": int(delays.lengths.sum()),
        "metrics": list(METRICS),
        "simulpo_s": t_arrays,
        "simulpo_from_records_s": t_records,
        "scores": ours,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }

    ref_mod = load_simuleval()
    if ref_mod is None:
        result["simuleval_s"] = None
        result["note"] = "SimulEval is not installed (scripts/setup.sh --test installs it)"
    else:
        instances = {
            i: ref_mod.instance.LogInstance(json.dumps(r), "word") for i, r in enumerate(records)
        }
        scorers = {m: ref_mod.latency.LATENCY_SCORERS_DICT[m]() for m in METRICS}
        t_ref, theirs = best_of(
            max(1, args.repeats // 2),
            lambda: {m: scorer(instances) for m, scorer in scorers.items()},
        )
        result.update(
            simuleval_s=t_ref,
            speedup=t_ref / t_arrays,
            speedup_from_records=t_ref / t_records,
            identical=ours == theirs and ours_records == theirs,
            simuleval_scores=theirs,
        )

    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['instances']} instances, {result['target_words']} target words; "
          f"{', '.join(METRICS)} (best of {args.repeats} runs)")
    print(f"  simulpo, from padded arrays : {t_arrays * 1e3:8.2f} ms")
    print(f"  simulpo, from records       : {t_records * 1e3:8.2f} ms (padding included)")
    if result["simuleval_s"] is None:
        print(f"  {result['note']}")
        return 0
    print(f"  SimulEval 1.1.4             : {result['simuleval_s'] * 1e3:8.2f} ms")
    print(f"  speed-up: {result['speedup']:.1f}x from arrays, "
          f"{result['speedup_from_records']:.1f}x from records")
    print(f"  identical numbers: {'yes' if result['identical'] else 'NO'}")
    for m in METRICS:
        print(f"    {m:5s} simulpo {ours[m]!r:<22} SimulEval {result['simuleval_scores'][m]!r}")
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())

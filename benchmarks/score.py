"""`simulpo score` against the reference tools as whole commands, side by side, same numbers.

1. Sentence level: a synthetic text log (10,000 instances, ~30 target words each, fixed
   seed) scored by ``simuleval --score-only`` and by ``simulpo score`` with the same
   metrics (SimulEval's default report: BLEU, LAAL, AL, AP, DAL, ATD; ``--source-type
   speech`` because SimulEval's score-only path re-reads a text log with its speech
   conventions, which gives ATD 0 here). Each command runs ``--repeats`` times,
   alternating; the best and the median wall-clock times count. Every printed number is
   compared, and simulpo's full-precision scores.json against SimulEval's scorers run
   in-process on the same log.
2. Long form: synthetic talks (benchmarks/longform.py's) scored by ``omnisteval longform``
   and by ``simulpo score --segments ... --references ...`` (both compute BLEU, chrF and
   every long-form latency, re-segment and write their files), and by simulstream's
   ``stream_laal`` scorer (StreamLAAL and its CA only) as a command of its own: its
   ``simulstream_score_latency`` reads simulstream's server logs, so a process that
   imports the scorer, reads the same three files and scores stands in for it (timed
   whole, like the others; its scorer call alone is reported too).

    .venv/bin/python benchmarks/score.py [--instances N] [--talks T] [--repeats R] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from longform import silenced, simulstream_samples, synthetic_talks, write

BIN = Path(sys.executable).parent
SIMULEVAL_REPORT = ("BLEU", "LAAL", "AL", "AP", "DAL", "ATD")
#: OmniSTEval's scores.tsv names of simulpo's long-form keys
OMNI_NAMES = {"BLEU": "BLEU", "chrF": "chrF"}
for _m in ("YAAL", "AL", "LAAL", "AP", "DAL"):
    OMNI_NAMES[f"Long{_m}"] = f"Long{_m} (CU)"
    OMNI_NAMES[f"Long{_m}_CA"] = f"Long{_m} (CA)"


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


def timed(cmd: list[str]) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:2])} failed:\n{done.stderr[-2000:]}")
    return took, done.stdout


def side_by_side(commands: dict[str, list[str]], repeats: int) -> dict[str, dict]:
    """Run the commands alternately ``repeats`` times; best and median seconds, last output."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    outputs: dict[str, str] = {}
    for _ in range(repeats):
        for name, cmd in commands.items():
            took, outputs[name] = timed(cmd)
            times[name].append(took)
    return {
        name: {"best_s": min(t), "median_s": statistics.median(t), "out": outputs[name]}
        for name, t in times.items()
    }


def simuleval_printed(out: str) -> dict[str, float]:
    header, values = out.strip().splitlines()[-2:]
    names = header.split()
    return dict(zip(names, map(float, values.split()[-len(names):])))  # pandas may add an index


def simuleval_in_process(log: Path) -> dict[str, float]:
    from simulpo.metrics.simuleval_ref import load_simuleval

    ref = load_simuleval()
    instances = {
        i: ref.instance.LogInstance(line, "word")
        for i, line in enumerate(log.read_text().splitlines())
    }
    out = {"BLEU": ref.quality.SacreBLEUScorer()(instances)}
    for name in SIMULEVAL_REPORT[1:]:
        out[name] = ref.latency.LATENCY_SCORERS_DICT[name]()(instances)
    return out


def sentence_level(n: int, repeats: int, tmp: Path) -> dict:
    run = tmp / "run"
    run.mkdir()
    log = run / "instances.log"
    log.write_text("".join(json.dumps(r) + "\n" for r in synthetic_records(n)))
    (run / "config.yaml").write_text("source_type: text\ntarget_type: text\n")
    ours_json = tmp / "simulpo-scores.json"
    res = side_by_side({
        "simuleval": [str(BIN / "simuleval"), "--score-only", "--output", str(run)],
        "simulpo": [str(BIN / "simulpo"), "score", str(run), "--output", str(ours_json),
                    "--latency-metrics", *SIMULEVAL_REPORT[1:], "--source-type", "speech",
                    "--computation-aware", "off"],
    }, repeats)
    printed = simuleval_printed(res["simuleval"]["out"])
    ours = json.loads(ours_json.read_text())
    full = simuleval_in_process(log)
    return {
        "instances": n,
        "simuleval_best_s": res["simuleval"]["best_s"],
        "simuleval_median_s": res["simuleval"]["median_s"],
        "simulpo_best_s": res["simulpo"]["best_s"],
        "simulpo_median_s": res["simulpo"]["median_s"],
        "ratio_best": res["simuleval"]["best_s"] / res["simulpo"]["best_s"],
        "ratio_median": res["simuleval"]["median_s"] / res["simulpo"]["median_s"],
        "printed_identical": all(round(ours[k], 3) == printed[k] for k in SIMULEVAL_REPORT),
        "full_precision_identical": all(ours[k] == full[k] for k in SIMULEVAL_REPORT),
        "scores": ours,
    }


def omnisteval_tsv(path: Path) -> dict[str, float]:
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:]]
    return {name: float(value) for name, value in rows if value not in ("YES", "NO", "N/A")}


def long_form(talks: int, sentences: int, repeats: int, tmp: Path) -> dict:
    import importlib

    corpus = synthetic_talks(talks, sentences, 0)
    folder = tmp / "talks"
    folder.mkdir()
    hyp, seg, ref = write(folder, corpus)
    ours_cmd = [str(BIN / "simulpo"), "score", str(hyp), "--segments", str(seg),
                "--references", str(ref), "--quality-metrics", "BLEU", "chrF",
                "--output", str(folder / "simulpo")]
    omni_cmd = [str(BIN / "omnisteval"), "longform", "--speech_segmentation", str(seg),
                "--ref_sentences_file", str(ref), "--hypothesis_file", str(hyp),
                "--hypothesis_format", "jsonl", "--word_level", "--output_folder", str(folder / "omni")]
    # OmniSTEval is slow: once, then simulpo alone for the rest of the repeats
    res = side_by_side({"omnisteval": omni_cmd, "simulpo": ours_cmd}, 1)
    more = side_by_side({"simulpo": ours_cmd}, max(repeats - 1, 1))["simulpo"]
    t_ours = [res["simulpo"]["best_s"], more["best_s"]]
    ours = json.loads((folder / "simulpo" / "scores.json").read_text())
    omni = omnisteval_tsv(folder / "omni" / "scores.tsv")
    out = {
        "talks": talks,
        "sentences": len(corpus["segments"]),
        "hypothesis_words": sum(len(h["prediction"].split()) for h in corpus["hypotheses"]),
        "omnisteval_s": res["omnisteval"]["best_s"],
        "simulpo_best_s": min(t_ours),
        "ratio_omnisteval": res["omnisteval"]["best_s"] / min(t_ours),
        # OmniSTEval's file has 4 decimals; tests/metrics compare float for float
        "omnisteval_identical": all(
            round(ours[k], 4) == omni[v] for k, v in OMNI_NAMES.items()
        ),
        "scores": ours,
    }
    try:
        stream_laal = importlib.import_module("simulstream.metrics.scorers.latency.stream_laal")
        samples = simulstream_samples(corpus)
    except ImportError:
        out["simulstream"] = "not installed (scripts/setup.sh --test installs it)"
        return out
    scorer = stream_laal.StreamLaal(argparse.Namespace(latency_unit="word"))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        silenced(lambda: scorer.score(samples))
        best = min(best, time.perf_counter() - start)
    command = [sys.executable, __file__, "--simulstream-command", str(hyp), str(seg), str(ref)]
    res = side_by_side({"simulstream": command}, repeats)["simulstream"]
    theirs = json.loads(res["out"])
    out.update(
        simulstream_s=res["best_s"],
        simulstream_scorer_only_s=best,
        ratio_simulstream=res["best_s"] / min(t_ours),
        simulstream_identical=[ours["StreamLAAL"], ours["StreamLAAL_CA"]] == theirs,
    )
    return out


def simulstream_command(hyp: str, seg: str, ref: str) -> None:
    """simulstream's stream_laal scorer as a command on OmniSTEval's three files (ms)."""
    import yaml

    stream_laal = __import__(
        "simulstream.metrics.scorers.latency.stream_laal", fromlist=["StreamLaal"]
    )
    corpus = {
        "hypotheses": [json.loads(line) for line in Path(hyp).read_text().splitlines()],
        "segments": yaml.safe_load(Path(seg).read_text()),
        "references": Path(ref).read_text().splitlines(),
    }
    scorer = stream_laal.StreamLaal(argparse.Namespace(latency_unit="word"))
    score = silenced(lambda: scorer.score(simulstream_samples(corpus)))
    print(json.dumps([score.ideal_latency, score.computational_aware_latency]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=10_000, help="instances in the log")
    parser.add_argument("--talks", type=int, default=5, help="long-form recordings")
    parser.add_argument("--sentences", type=int, default=150, help="sentences per recording")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--simulstream-command", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    if args.simulstream_command:
        simulstream_command(*args.simulstream_command)
        return 0
    with tempfile.TemporaryDirectory(prefix="simulpo-score-bench-") as tmp:
        text = sentence_level(args.instances, args.repeats, Path(tmp))
        lf = long_form(args.talks, args.sentences, args.repeats, Path(tmp))
    result = {"sentence_level": text, "long_form": lf, "cores": os.cpu_count(),
              "load_average": os.getloadavg()}
    if args.json:
        print(json.dumps(result))
    else:
        yes = {True: "yes", False: "NO"}
        print(f"sentence level: {text['instances']} instances, {', '.join(SIMULEVAL_REPORT)} "
              f"(best / median of {args.repeats} runs each, alternating)")
        print(f"  simuleval --score-only : {text['simuleval_best_s']:6.2f} s / "
              f"{text['simuleval_median_s']:6.2f} s")
        print(f"  simulpo score          : {text['simulpo_best_s']:6.2f} s / "
              f"{text['simulpo_median_s']:6.2f} s")
        print(f"  ratio                  : {text['ratio_best']:6.2f}x / {text['ratio_median']:6.2f}x"
              f"   identical: printed {yes[text['printed_identical']]}, full precision "
              f"{yes[text['full_precision_identical']]}")
        print(f"long form: {lf['talks']} talks, {lf['sentences']} sentences, "
              f"{lf['hypothesis_words']} hypothesis words; simulpo score (whole command, "
              f"best of {args.repeats}): {lf['simulpo_best_s']:.2f} s")
        print(f"  omnisteval longform    : {lf['omnisteval_s']:6.2f} s  ratio "
              f"{lf['ratio_omnisteval']:6.1f}x   identical: {yes[lf['omnisteval_identical']]}")
        if "simulstream_s" in lf:
            print(f"  simulstream stream_laal: {lf['simulstream_s']:6.2f} s  ratio "
                  f"{lf['ratio_simulstream']:6.2f}x   identical: "
                  f"{yes[lf['simulstream_identical']]}  (its scorer call alone: "
                  f"{lf['simulstream_scorer_only_s']:.2f} s)")
        else:
            print(f"  simulstream: {lf['simulstream']}")
        print(f"  ({result['cores']} cores, load average {result['load_average'][0]:.2f})")
    same = [text["printed_identical"], text["full_precision_identical"],
            lf["omnisteval_identical"], lf.get("simulstream_identical", True)]
    return 0 if all(same) else 1


if __name__ == "__main__":
    sys.exit(main())

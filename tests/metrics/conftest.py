"""Shared fixtures: SimulEval's own scorers (the reference) and random instance logs."""

from __future__ import annotations

import json
import random
import types

import pytest

from simulpo.metrics.simuleval_ref import load_simuleval


@pytest.fixture(scope="session")
def simuleval_ref() -> types.SimpleNamespace:
    ref = load_simuleval()
    if ref is None:
        pytest.skip("SimulEval is not installed (scripts/setup.sh --test installs it)")
    return ref


WORDS = ["the", "a", "of", "house", "green", "river", "sings", "under", "never", "quickly", "7", ","]


def _monotone(rng: random.Random, n: int, low: float, high: float, integer: bool) -> list:
    draw = (lambda: rng.randint(int(low), int(high))) if integer else (
        lambda: round(rng.uniform(low, high), rng.choice([0, 2, 6])))
    values = sorted(draw() for _ in range(n))
    if n and rng.random() < 0.15:  # everything written at once (offline-like)
        values = [values[-1]] * n
    return values


def random_text_records(seed: int, n: int = 200, unit: str = "word") -> list[dict]:
    """Text logs as SimulEval writes them (delays in source words, elapsed all 0), plus
    edge cases: empty predictions, delays past the source end, first delay 0, one word."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        src_len = rng.randint(1, 45)
        m = rng.choice([0, 1, 2, 3, rng.randint(4, 60)])
        high = src_len + (3 if rng.random() < 0.2 else 0)  # sometimes past the end
        delays = _monotone(rng, m, 0 if rng.random() < 0.1 else 1, high, integer=True)
        if unit == "word":
            prediction = " ".join(rng.choice(WORDS) for _ in range(m))
            reference = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 50)))
            if rng.random() < 0.1:
                reference = " " + reference.replace(" ", "  ", 1) + " "  # split(" ") quirks
        else:
            prediction = "".join(rng.choice("我们的家在河边唱歌。") for _ in range(m))
            reference = "我" + "".join(rng.choice("我们的家 在河边唱歌") for _ in range(rng.randint(0, 50)))
            reference = " " + reference + " "
        source = " ".join(rng.choice(WORDS) for _ in range(src_len))
        records.append({
            "index": i, "prediction": prediction, "delays": delays, "elapsed": [0] * m,
            "prediction_length": m, "reference": reference, "source": source,
            "source_length": src_len,
        })
    return records


def random_speech_records(seed: int, n: int = 200) -> list[dict]:
    """Speech-to-text logs: delays and source_length in ms, elapsed = delay + compute time."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        src_len = rng.choice([rng.uniform(200, 30000), float(rng.randint(1, 100) * 320)])
        m = rng.choice([0, 1, 2, rng.randint(3, 50)])
        high = src_len * (1.3 if rng.random() < 0.2 else 1.0)
        delays = _monotone(rng, m, 0, high, integer=rng.random() < 0.3)
        if rng.random() < 0.1 and m:
            delays[0] = src_len + 10.0  # first delay past the source end
            delays = [max(delays[0], d) for d in delays]
        spent, elapsed = 0.0, []
        for d in delays:
            spent += rng.uniform(0, 800)
            elapsed.append(d + spent)
        if rng.random() < 0.1:
            elapsed = [0] * m
        prediction = " ".join(rng.choice(WORDS) for _ in range(m))
        reference = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 50)))
        records.append({
            "index": i, "prediction": prediction, "delays": delays, "elapsed": elapsed,
            "prediction_length": m, "reference": reference, "source": [f"audio_{i}.wav"],
            "source_length": src_len,
        })
    return records


def log_instances(ref: types.SimpleNamespace, records: list[dict], unit: str = "word") -> dict:
    """SimulEval's instances for a log, built as its --score-only path builds them."""
    return {
        i: ref.instance.LogInstance(json.dumps(r), unit) for i, r in enumerate(records)
    }


def text_instances(ref: types.SimpleNamespace, records: list[dict], unit: str = "word") -> dict:
    """SimulEval's live text-to-text instances (what it scores when run without --output)."""
    out = {}
    for i, r in enumerate(records):
        ins = ref.instance.TextToTextInstance(i, None, None)
        ins.latency_unit = unit
        ins.source = r["source"].split()
        ins.reference = r["reference"]
        ins.delays = list(r["delays"])
        ins.elapsed = list(r["elapsed"])
        out[i] = ins
    return out


@pytest.fixture(scope="session")
def logs() -> types.SimpleNamespace:
    return types.SimpleNamespace(
        text=random_text_records, speech=random_speech_records,
        log_instances=log_instances, text_instances=text_instances,
    )

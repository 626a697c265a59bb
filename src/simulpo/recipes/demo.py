"""``simulpo demo``: the main job on the embedded default, end to end on 2 CPU cores.

1. The text recipe (:mod:`simulpo.recipes.text`, ``configs/demo-text.yaml``): bundled data, a BPE
   tokenizer, a tiny LM trained from scratch as the offline translator, SFT dialogues
   synthesized by align → monotonize → group by chunk, the SFT simultaneous policy, and
   SeqPO RL from it (GRPO with the fused quality/latency reward); evaluated on the
   synthetic test set as rows ``sft``, ``seqpo``, ``wait-k`` (k = 1, 3, 5, 7, over the
   offline LM) and ``offline``.
2. Classic baselines on the Bible test set over Apertium: ``wait-k``, ``la-2``, ``offline``.

Writes each system's instance log and scores, ``report.json`` and ``quality_latency.png``.

``simulpo demo --speech`` runs the speech recipe (:mod:`simulpo.recipes.speech`,
``configs/demo-speech.yaml``) instead: espeak-ng speech of the synthetic pair, frozen
Whisper features, the two speech SFT stages from the text demo's SFT policy, HPO RL from
the speech SFT policy, and rows ``cascade``, ``sft`` and ``hpo`` on the synthetic test
utterances (latency in ms; the LLM policies also at 2 and 4 chunks a turn) and over a
long-form test recording (StreamLAAL, LongYAAL; ``quality_latency_longform.png``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from simulpo.eval.plot import plot_quality_latency
from simulpo.eval.report import Row, update_report
from simulpo.eval.runner import evaluate
from simulpo.eval.testset import load_test_set
from simulpo.policies.build import PolicySpec, build_policy, policy_name
from simulpo.recipes import load_recipe
from simulpo.recipes.text import (
    TextRecipe,
    TextRun,
    build_data,
    eval_segments,
    run_text_recipe,
)
from simulpo.translators import build_translator

log = logging.getLogger(__name__)

WAIT_KS = (1, 3, 5, 7)
#: ``--quick``: a smoke run of every step in about a minute (numbers mean nothing).
QUICK_OVERRIDES = [
    "data.train=300",
    "model.hidden_size=32",
    "model.num_layers=1",
    "model.num_heads=2",
    "model.vocab_size=400",
    "eval.test_segments=8",
    "eval.wait_ks=[3]",
    "eval.max_new_tokens=24",
    "eval.max_piece_tokens=6",
    "rl.steps=2",
    "rl.sources_per_step=4",
    "rl.group_size=2",
    "rl.eval_segments=8",
    "rl.max_piece_tokens=6",
    "rl.max_final_tokens=24",
]
QUICK_SEGMENTS = 40


def apertium_rows(recipe: TextRecipe, run: TextRun, quick: bool, progress: bool) -> list[Row]:
    """Wait-k, local agreement and offline over Apertium on the Bible test set; on the
    recipe's test set when the LLMs are evaluated on the Bible too, named ``apertium-*``
    there to tell them from the LLM's own ``offline`` and ``wait-k`` rows."""
    from functools import cache

    beside_llm = recipe.data.corpus == "bible"
    if beside_llm:
        segments = eval_segments(recipe, run)
    else:
        segments = load_test_set(run.data / "bible" / "test.jsonl")
        if quick:
            segments = segments[:QUICK_SEGMENTS]
    translator = cache(lambda: build_translator("apertium"))
    kinds = [*(f"wait-{k}" for k in WAIT_KS), "local-agreement", "offline"]
    words = recipe.stream.segmenter(False).m
    rows = []
    for kind in kinds:
        spec = PolicySpec(kind=kind, translator="apertium")
        name = policy_name(spec)
        if beside_llm:
            spec.name = name = f"apertium-{name}"

        def make(out: Path, spec=spec) -> Row:
            policy = build_policy(spec, translator=translator())
            return evaluate(
                policy, segments, out, "bible", words, target_lang="es", progress=progress
            )

        rows.append(
            run.step(f"bible/{name}", make, key={"segments": len(segments), "words": words})
        )
    return rows


def run_demo(
    out: str | Path = "runs/demo",
    quick: bool = False,
    progress: bool = True,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
) -> list[Row]:
    """Run the demo into ``out``; returns the report rows."""
    recipe = load_recipe(
        TextRecipe, config, (QUICK_OVERRIDES if quick else []) + list(overrides or [])
    )
    run = TextRun(Path(out))
    baselines = []
    if recipe.data.corpus == "bible":  # first: they need no training
        build_data(recipe, run)
        baselines = apertium_rows(recipe, run, quick, progress)
    rows = run_text_recipe(recipe, run.root, progress)
    if recipe.data.bible and not baselines:
        baselines = apertium_rows(recipe, run, quick, progress)
    rows += baselines
    update_report(run.root / "report.json", rows)
    plot = plot_quality_latency(rows, run.root / "quality_latency.png", title="simulpo demo")
    log.info("Wrote %s and %s.", run.root / "report.json", plot)
    return rows


#: ``--speech --quick``: every speech step on a few utterances and a tiny LM from scratch.
QUICK_SPEECH_OVERRIDES = [
    "data.train=8", "data.dev=2", "data.test=3", "data.workers=1", "model.lm=''",
    "model.vocab_size=300", "model.hidden_size=16", "model.num_layers=1", "model.num_heads=2",
    "stage1.epochs=1", "stage2.epochs=1", "eval.max_piece_tokens=4", "eval.max_new_tokens=8",
    "rl.steps=1", "rl.sources_per_step=2", "rl.group_size=2", "rl.eval_segments=1",
    "rl.max_piece_tokens=4", "rl.max_final_tokens=8",
]  # fmt: skip


def run_speech_demo(
    out: str | Path = "runs/demo-speech",
    quick: bool = False,
    progress: bool = True,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
) -> list[Row]:
    """Run the speech demo into ``out``; returns the report rows."""
    from simulpo.errors import SimulpoError
    from simulpo.recipes.speech import SpeechRecipe, run_speech_recipe

    extra = (QUICK_SPEECH_OVERRIDES if quick else []) + list(overrides or [])
    recipe = load_recipe(SpeechRecipe, config, extra)
    if recipe.model.lm and not (Path(recipe.model.lm) / "config.json").exists():
        raise SimulpoError(
            f"the speech demo starts from the text demo's SFT policy, and {recipe.model.lm} has "
            "none: run `simulpo demo` first (or pass --set model.lm=PATH, or model.lm='' for a "
            "tiny LM from scratch)"
        )
    rows = run_speech_recipe(recipe, out, progress)
    root = Path(out)
    update_report(root / "report.json", rows)
    plots = [
        plot_quality_latency(rows, root / "quality_latency.png", title="simulpo demo --speech")
    ]
    if any(math.isfinite(r.get("StreamLAAL", math.nan)) for r in rows):  # long form, own scale
        plots.append(plot_quality_latency(
            rows, root / "quality_latency_longform.png", x="StreamLAAL",
            title="simulpo demo --speech, long form",
        ))  # fmt: skip
    log.info("Wrote %s and %s.", root / "report.json", " and ".join(map(str, plots)))
    return rows

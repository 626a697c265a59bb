"""``simulpo experiment NAME``: the papers' RL experiments as recipes over a demo run.

Each experiment starts every variant from the same SFT policy of a finished text run
(``simulpo demo --output RUN``), trains it with the RL recipe of that run plus the
variant's overrides, evaluates it on the synthetic test set, and writes
``RUN/experiments/NAME/report.json`` (the variants beside the run's ``sft``, ``seqpo``,
``wait-k`` and ``offline`` rows) with two plots, ``chrF_AL.png`` and ``BLEU_LAAL.png``:

- ``truncation``: SeqPO with and without the latency floor (the "negative AL" hack);
- ``lambda``: a quality–latency front from several λ, against the wait-k curve;
- ``reward``: the fused SeqPO reward against HPO's hierarchical reward;
- ``metric``: which sentence quality and latency metrics the fused reward can use
  without being gamed (chrF1 or BLEU, AL or LAAL).

Policies live in ``RUN/experiments/policies/KEY``, KEY a digest of the variant's RL
recipe: a variant trained before (by any experiment) is reused, not trained again, so
experiments share their common variant and an interrupted one resumes; the variant whose
recipe trained the run's own ``seqpo`` policy (recorded in its ``result.json``) is that
policy.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from simulpo.errors import SimulpoError

if TYPE_CHECKING:  # the pipeline is imported when an experiment runs: the CLI starts fast
    from simulpo.eval.report import Row
    from simulpo.recipes.text import TextRecipe

log = logging.getLogger(__name__)

#: experiment → variant name → recipe overrides (on top of the run's recipe)
EXPERIMENTS: dict[str, dict[str, list[str]]] = {
    "truncation": {
        "seqpo-trunc": ["rl.reward.truncate=true"],
        "seqpo-no-trunc": ["rl.reward.truncate=false"],
    },
    # named seqpo-lam-<lam>: the plots draw the sweep as one curve labelled with lambda
    "lambda": {f"seqpo-lam-{lam:g}": [f"rl.reward.lam={lam}"] for lam in (0.5, 1.0, 2.0, 4.0)},
    "reward": {
        "seqpo-fused": ["rl.reward.kind=seqpo"],
        "hpo-hierarchical": ["rl.reward.kind=hpo"],
    },
    "metric": {
        f"{quality}-{latency.lower()}": [
            f"rl.reward.quality={quality}",
            f"rl.reward.latency={latency}",
        ]
        for quality, latency in (
            ("bleu", "AL"),
            ("chrf1", "AL"),
            ("chrf1", "LAAL"),
            ("bleu", "LAAL"),
        )
    },
}
#: rows of the run's own report drawn beside the variants
CONTEXT_ROWS = ("sft", "seqpo", "offline")


def run_experiment(
    name: str,
    run_dir: str | Path = "runs/demo",
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    progress: bool = True,
) -> list[Row]:
    """Train and evaluate every variant of experiment ``name``; returns the report rows."""
    if name not in EXPERIMENTS:
        raise SimulpoError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    from simulpo.eval.plot import plot_quality_latency
    from simulpo.eval.report import update_report
    from simulpo.recipes import load_recipe
    from simulpo.recipes.text import TextRecipe, TextRun, evaluate_llm_rows, train_rl_step

    run = TextRun(Path(run_dir))
    sft_dir = run.sft / "final"
    if not (sft_dir / "config.json").exists():
        raise SimulpoError(
            f"{run.root} has no SFT policy ({sft_dir}); run `simulpo demo --output {run.root}` first"
        )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(run.tokenizer))
    out = Path("experiments") / name  # in the run
    own_key = _trained_key(run.seqpo)
    rows: list[Row] = []
    for variant, changes in EXPERIMENTS[name].items():
        recipe = load_recipe(TextRecipe, config, [*(overrides or []), *changes])
        log.info("%s: %s (%s)", name, variant, ", ".join(changes))
        key = recipe_key(recipe)
        # The variant whose recipe trained the run's own SeqPO policy is that policy.
        step = "seqpo" if key == own_key else f"experiments/policies/{key}"
        policy = train_rl_step(recipe, run, sft_dir, tokenizer, progress, step)
        rows += evaluate_llm_rows(
            recipe, run, {variant: policy}, None, tokenizer, str(out), progress
        )
    out = run.root / out
    context = _context_rows(run.root / "report.json")
    report = update_report(out / "report.json", context + rows)
    # chrF over AL (what the reward sees) and BLEU over LAAL (what over-generation cannot game)
    plots = [
        plot_quality_latency(report, out / f"{y}_{x}.png", x=x, y=y, title=f"experiment: {name}")
        for y, x in (("chrF", "AL"), ("BLEU", "LAAL"))
    ]
    log.info("Wrote %s, %s.", out / "report.json", ", ".join(map(str, plots)))
    return rows


def recipe_key(recipe: TextRecipe) -> str:
    """A short digest of the RL recipe: equal recipes train the same policy (how often
    it evaluates or checkpoints on the way does not count)."""
    return _key(asdict(recipe.rl))


def _key(rl_config: dict) -> str:
    from simulpo.train.rl import BOOKKEEPING

    fields = {k: v for k, v in rl_config.items() if k not in BOOKKEEPING}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def _trained_key(rl_dir: Path) -> str | None:
    """The recipe key of a finished RL run, from the config its ``result.json`` records."""
    from simulpo.io import read_result

    try:
        config = read_result(rl_dir)["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return _key(config)


def _context_rows(path: Path) -> list[Row]:
    from simulpo.eval.report import read_report

    """The run's synthetic-test rows that frame the variants (wait-k curve, sft, offline)."""
    if not path.exists():
        return []
    return [
        r
        for r in read_report(path)
        if r.get("dataset") == "synthetic"
        and (r["name"] in CONTEXT_ROWS or r["name"].startswith("wait-"))
    ]


__all__ = ["EXPERIMENTS", "recipe_key", "run_experiment"]

"""The text recipe of the embedded default: data → tokenizer → offline LM → SFT data → SFT policy
→ SeqPO RL → eval.

Every step writes its result under one run directory and is skipped when that result is
already there, so a killed run started again goes on where it stopped (training steps
also resume from their own checkpoints). ``configs/demo-text.yaml`` is the demo's recipe,
``configs/full-text.yaml`` a longer one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from simulpo.config import option
from simulpo.data.build import build_all
from simulpo.data.sft_synthesis import (
    offline_dialogues,
    read_jsonl,
    synthesize_from_corpus,
    write_jsonl,
)
from simulpo.eval.report import Row
from simulpo.eval.runner import evaluate
from simulpo.eval.testset import Segment, load_test_set
from simulpo.train.rl import RLConfig
from simulpo.train.sft import SFTConfig

log = logging.getLogger(__name__)


@dataclass
class DataConfig:
    seed: int = option(0, "seed of the synthetic pair")
    reorder: float = option(1.0, "word-order divergence of the synthetic pair, 0..1")
    train: int = option(14000, "synthetic training sentences")
    bible: bool = option(True, "also build the Bible corpus (for the Apertium baseline rows)")


@dataclass
class ModelConfig:
    arch: str = option("qwen2", "qwen2 or llama (a standard transformers architecture)")
    vocab_size: int = option(2000, "BPE vocabulary trained on the synthetic training data")
    hidden_size: int = option(128, "hidden size of the tiny LM")
    num_layers: int = option(4, "layers of the tiny LM")
    num_heads: int = option(4, "attention heads of the tiny LM")
    seed: int = option(0, "seed of the tiny LM's initial weights")


@dataclass
class SynthesisConfig:
    # A chunk merges c consecutive source words, c uniform in [c_min, c_max]. Small chunks
    # match the policy's test-time turns of one word: c in [1, 12] (HPO's speech range)
    # trained a policy with 3 turns a sentence that then faced 17 (docs/experiments.md).
    aligner: str = option(
        "eflomal", "eflomal (statistical, as the papers) or gold (the grammar's links)"
    )
    c_min: int = option(1, "fewest source words merged into one SFT chunk")
    c_max: int = option(4, "most source words merged into one SFT chunk")
    copies: int = option(1, "segmentations per training sentence")
    seed: int = option(0, "seed of the segmentations")


@dataclass
class EvalConfig:
    chunk_words: int = option(1, "source words read per turn at test time")
    wait_ks: list[int] = option([1, 3, 5, 7], "k of the wait-k rows over the offline LM")
    test_segments: int = option(0, "evaluate the first N test segments (0 = all)")
    max_piece_tokens: int = option(32, "token budget of one assistant piece before the source ends")
    max_new_tokens: int = option(
        160, "token budget of a whole translation (last piece, offline output)"
    )


def _demo_sft() -> SFTConfig:
    # Small token batches: one epoch of a from-scratch model needs many optimizer steps
    # (8192-token batches gave ~200 steps an epoch and a dev loss near 3.8 per token).
    return SFTConfig(lr=2e-3, epochs=2, batch_tokens=2048, max_length=512)


def _demo_rl() -> RLConfig:
    # Sized to keep the whole demo within 10 minutes on 2 cores (~5 s a step). The
    # quality reward is sentence BLEU: chrF's recall-heavy beta=2 let the policy gain by
    # writing extra words early (which also lowers AL); BLEU's precision charges for them.
    # lam = 0.5, not the paper's 2: with AL as the latency term, lam = 2 buys latency with
    # extra words and can cost BLEU (docs/experiments.md, the lambda sweep).
    config = RLConfig(steps=12, sources_per_step=12, group_size=8)
    config.reward.quality = "bleu"
    config.reward.lam = 0.5
    config.grpo.lr = 2e-5
    return config


@dataclass
class TextRecipe:
    """The demo's recipe by default; ``configs/demo-text.yaml`` spells the same values out."""

    data: DataConfig = option(DataConfig, "the bundled corpora")
    model: ModelConfig = option(ModelConfig, "the tiny LM trained from scratch")
    synthesis: SynthesisConfig = option(SynthesisConfig, "SFT dialogue synthesis")
    offline: SFTConfig = option(_demo_sft, "training of the offline translator LM")
    sft: SFTConfig = option(_demo_sft, "SFT of the simultaneous policy")
    rl: RLConfig = option(_demo_rl, "SeqPO RL from the SFT policy")
    eval: EvalConfig = option(EvalConfig, "evaluation on the synthetic test set")


@dataclass
class TextRun:
    """Where a text run keeps its artefacts."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def offline(self) -> Path:
        return self.root / "offline"

    @property
    def sft_data(self) -> Path:
        return self.root / "sft_data"

    @property
    def sft(self) -> Path:
        return self.root / "sft"

    @property
    def seqpo(self) -> Path:
        return self.root / "seqpo"

    def synthetic(self, split: str) -> Path:
        return self.data / "synthetic" / f"{split}.jsonl"


def build_data(recipe: TextRecipe, run: TextRun) -> None:
    if (run.data / "manifest.json").exists():
        return
    d = recipe.data
    build_all(
        run.data,
        seed=d.seed,
        reorder=d.reorder,
        bible=d.bible,
        synthetic_sizes={"train": d.train, "dev": 500, "test": 500},
    )


def train_tokenizer_step(recipe: TextRecipe, run: TextRun):
    from transformers import AutoTokenizer

    from simulpo.models.tokenizer import train_tokenizer

    if (run.tokenizer / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(str(run.tokenizer))
    train = load_test_set(run.synthetic("train"))
    texts = [t for s in train for t in (s.source, s.reference)]
    return train_tokenizer(texts, recipe.model.vocab_size, run.tokenizer)


def _fresh_model(recipe: TextRecipe, tokenizer):
    from simulpo.models.lm import build_tiny_lm

    m = recipe.model
    return build_tiny_lm(tokenizer, m.arch, m.hidden_size, m.num_layers, m.num_heads, seed=m.seed)


def _train(recipe: TextRecipe, tokenizer, train, dev, config: SFTConfig, out: Path, progress: bool):
    from simulpo.models.lm import load_model
    from simulpo.train.sft import train_sft

    final = out / "final"
    if not (final / "config.json").exists():
        train_sft(
            _fresh_model(recipe, tokenizer), tokenizer, train, dev, config, out, progress=progress
        )
    return load_model(final)


def train_offline_step(recipe: TextRecipe, run: TextRun, tokenizer, progress: bool = True):
    """The offline translator: the tiny LM fine-tuned on whole sentence pairs."""
    splits = {s: load_test_set(run.synthetic(s)) for s in ("train", "dev")}
    train, dev = (
        [d["messages"] for d in offline_dialogues([x.source for x in v], [x.reference for x in v])]
        for v in splits.values()
    )
    return _train(recipe, tokenizer, train, dev, recipe.offline, run.offline, progress)


def synthesize_step(recipe: TextRecipe, run: TextRun, progress: bool = True) -> dict[str, Path]:
    """Simultaneous SFT dialogues: reference → align → monotonize → group by (merged) chunks."""
    s = recipe.synthesis
    paths = {}
    for split in ("train", "dev"):
        path = paths[split] = run.sft_data / f"{split}.jsonl"
        if path.exists():
            continue
        dialogues = synthesize_from_corpus(
            run.synthetic(split),
            s.aligner,
            c_min=s.c_min,
            c_max=s.c_max,
            seed=s.seed,
            copies=s.copies,
            progress=progress,
        )
        write_jsonl(path, dialogues)
    return paths


def train_policy_step(recipe: TextRecipe, run: TextRun, tokenizer, progress: bool = True):
    paths = synthesize_step(recipe, run, progress)
    train, dev = ([d["messages"] for d in read_jsonl(paths[s])] for s in ("train", "dev"))
    return _train(recipe, tokenizer, train, dev, recipe.sft, run.sft, progress)


def train_rl_step(
    recipe: TextRecipe,
    run: TextRun,
    sft_dir: Path,
    tokenizer,
    progress: bool = True,
    out: Path | None = None,
):
    """SeqPO: GRPO from the SFT policy with the recipe's reward, into ``out`` (default
    the run's ``seqpo`` folder); a finished policy there is loaded, not trained again."""
    from simulpo.models.lm import load_model
    from simulpo.train.rl import train_rl

    out = out or run.seqpo
    final = out / "final"
    if not (final / "config.json").exists():
        model, _ = load_model(sft_dir)
        train = load_test_set(run.synthetic("train"))
        dev = load_test_set(run.synthetic("dev"))
        train_rl(model, tokenizer, train, dev, recipe.rl, out, progress=progress)
    return load_model(final)


def evaluate_llm_rows(
    recipe: TextRecipe,
    run: TextRun,
    policies: dict[str, object],
    offline_model,
    tokenizer,
    out: Path,
    progress: bool,
) -> list[Row]:
    """Rows of the LLM policies (``sft``, ``seqpo``), then (given an ``offline_model``)
    ``wait-k`` over the offline LM and ``offline``, on the synthetic test set."""
    from simulpo.policies import Offline, WaitK
    from simulpo.policies.llm import LLMPolicy
    from simulpo.translators.llm import LLMTranslator

    e = recipe.eval
    segments: list[Segment] = load_test_set(run.synthetic("test"))
    if e.test_segments:
        segments = segments[: e.test_segments]
    systems = [
        LLMPolicy(
            model,
            tokenizer,
            max_piece_tokens=e.max_piece_tokens,
            max_final_tokens=e.max_new_tokens,
            name=name,
        )
        for name, model in policies.items()
    ]
    if offline_model is not None:
        translator = LLMTranslator(offline_model, tokenizer, max_new_tokens=e.max_new_tokens)
        systems += [*(WaitK(translator, k) for k in e.wait_ks), Offline(translator)]
    return [
        evaluate(
            p, segments, out / "synthetic" / p.name, "synthetic", e.chunk_words, progress=progress
        )
        for p in systems
    ]


def run_text_recipe(recipe: TextRecipe, root: str | Path, progress: bool = True) -> list[Row]:
    """All steps of the text recipe under ``root``; returns the LLM report rows."""
    run = TextRun(Path(root))
    log.info("[1/6] data → %s", run.data)
    build_data(recipe, run)
    log.info("[2/6] tokenizer → %s", run.tokenizer)
    tokenizer = train_tokenizer_step(recipe, run)
    log.info("[3/6] offline translator → %s", run.offline)
    offline_model, _ = train_offline_step(recipe, run, tokenizer, progress)
    log.info("[4/6] SFT data and simultaneous policy → %s", run.sft)
    sft_model, _ = train_policy_step(recipe, run, tokenizer, progress)
    log.info("[5/6] SeqPO RL from the SFT policy → %s", run.seqpo)
    seqpo_model, _ = train_rl_step(recipe, run, run.sft / "final", tokenizer, progress)
    log.info("[6/6] evaluation")
    policies = {"sft": sft_model, "seqpo": seqpo_model}
    return evaluate_llm_rows(recipe, run, policies, offline_model, tokenizer, run.root, progress)

"""The text recipe of the embedded default: data → tokenizer → offline LM → SFT data → SFT policy
→ SeqPO RL → eval.

Every step is a folder of the run directory, skipped when done (:mod:`simulpo.recipes.run`),
so a killed run started again goes on where it stopped. ``configs/demo-text.yaml`` is the
demo's recipe, ``configs/full-text.yaml`` a longer one.

With ``model.lm`` (a pretrained chat model, ``configs/real-text.yaml``) there is no
tokenizer or offline training: SFT (LoRA with ``model.lora``) and RL fine-tune that model,
it is the offline translator of the ``offline`` and ``wait-k`` rows, and it is evaluated
as a streaming policy before any training (row ``zero-shot``). ``data.corpus: bible``
trains and evaluates on the Bible verses (short ones with ``data.max_words``) instead of
the synthetic pair. The system prompts come from the ``stream`` section's languages.

Layout: ``data/``, ``tokenizer/``, ``offline/`` (the offline translator LM), ``sft_data/``,
``sft/`` and ``seqpo/`` (``final/`` in each: the policy, with the ``stream.json`` it was
trained with), ``corpus/`` (the Bible subset, with ``data.corpus: bible``), ``CORPUS/NAME/``
(each system's instances.log, scores.json, result.json; CORPUS synthetic or bible).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

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
from simulpo.errors import ConfigError
from simulpo.eval.testset import Sentence, load_test_set
from simulpo.io import atomic_write_text
from simulpo.recipes import Recipe
from simulpo.recipes.run import RunDir, identity
from simulpo.stream.settings import StreamConfig, save_stream
from simulpo.train.rl import RLConfig
from simulpo.train.sft import SFTConfig

log = logging.getLogger(__name__)


@dataclass
class DataConfig:
    seed: int = option(0, "seed of the synthetic pair")
    reorder: float = option(1.0, "word-order divergence of the synthetic pair, 0..1")
    train: int = option(14000, "synthetic training sentences")
    bible: bool = option(True, "also build the Bible corpus (for the Apertium baseline rows)")
    corpus: str = option(
        "synthetic", "what SFT, RL and evaluation use: synthetic, or bible (needs data.bible)"
    )
    max_words: int = option(0, "bible: only verses of at most N words (0 = all)", "[0, )")
    sentences: int = option(0, "bible: the first N such training verses (0 = all)", "[0, )")


@dataclass
class ModelConfig:
    arch: str = option("qwen2", "qwen2 or llama (a standard transformers architecture)")
    vocab_size: int = option(2000, "BPE vocabulary trained on the synthetic training data")
    hidden_size: int = option(128, "hidden size of the tiny LM")
    num_layers: int = option(4, "layers of the tiny LM")
    num_heads: int = option(4, "attention heads of the tiny LM")
    seed: int = option(0, "seed of the tiny LM's initial weights")
    lm: str = option(
        "",
        "a pretrained chat model (folder or installed name) fine-tuned instead of a tiny LM "
        "from scratch; also the offline translator and the zero-shot row",
    )
    lora: bool = option(False, "lm: train LoRA adapters, not all weights")
    lora_r: int = option(8, "lm: LoRA rank", "[1, )")
    dtype: str = option("", "lm: load it in this dtype (bfloat16, float32; '' = its own)")


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
    align_context: int = option(
        0,
        "bible: eflomal also learns from the first N verses of the whole training split "
        "(0 = from the synthesized verses only)",
        "[0, )",
    )


@dataclass
class EvalConfig:
    MOVED: ClassVar[dict[str, str]] = {"chunk_words": "stream.chunk_words"}

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
class TextRecipe(Recipe):
    """The demo's recipe by default; ``configs/demo-text.yaml`` spells the same values out."""

    stream: StreamConfig = option(StreamConfig, "turns of SFT policies' rollouts and evaluation")
    data: DataConfig = option(DataConfig, "the bundled corpora")
    model: ModelConfig = option(ModelConfig, "the tiny LM trained from scratch")
    synthesis: SynthesisConfig = option(SynthesisConfig, "SFT dialogue synthesis")
    offline: SFTConfig = option(_demo_sft, "training of the offline translator LM")
    sft: SFTConfig = option(_demo_sft, "SFT of the simultaneous policy")
    rl: RLConfig = option(_demo_rl, "SeqPO RL from the SFT policy")
    eval: EvalConfig = option(EvalConfig, "evaluation on the synthetic test set")


CORPORA = ("synthetic", "bible")


class TextRun(RunDir):
    """Where a text run keeps its artefacts (one folder per step)."""

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def sft(self) -> Path:
        return self.root / "sft"

    @property
    def seqpo(self) -> Path:
        return self.root / "seqpo"

    def synthetic(self, split: str) -> Path:
        return self.data / "synthetic" / f"{split}.jsonl"

    def corpus(self, recipe: TextRecipe, split: str) -> Path:
        """The split SFT, RL and evaluation use (the synthetic pair, or the Bible subset)."""
        if recipe.data.corpus == "bible":
            return self.root / "corpus" / f"{split}.jsonl"
        return self.synthetic(split)


def build_data(recipe: TextRecipe, run: TextRun) -> None:
    d = recipe.data
    if d.corpus not in CORPORA:
        raise ConfigError(f"data.corpus is {' or '.join(CORPORA)}, got {d.corpus!r}")
    if d.corpus == "bible" and not d.bible:
        raise ConfigError("data.corpus: bible needs data.bible: true")
    sizes = {"train": d.train, "dev": 500, "test": 500}
    run.step("data", lambda out: {"files": [str(p) for p in build_all(
        out, seed=d.seed, reorder=d.reorder, bible=d.bible, synthetic_sizes=sizes
    )]})  # fmt: skip
    if d.corpus == "bible":
        run.step("corpus", lambda out: _bible_subset(d, run.data / "bible", out))


def _bible_subset(d: DataConfig, bible: Path, out: Path) -> dict:
    """The verses of at most ``max_words`` words (the first ``sentences`` of train)."""
    counts = {}
    for split in ("train", "dev", "test"):
        lines = (bible / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        kept = [
            line for line in lines
            if not d.max_words or len(json.loads(line)["source"].split()) <= d.max_words
        ]  # fmt: skip
        if split == "train" and d.sentences:
            kept = kept[: d.sentences]
        atomic_write_text(out / f"{split}.jsonl", "".join(f"{line}\n" for line in kept))
        counts[split] = len(kept)
    return counts


def train_tokenizer_step(recipe: TextRecipe, run: TextRun):
    """The tiny LM's BPE tokenizer, trained on the synthetic pair (or the pretrained lm's)."""
    from transformers import AutoTokenizer

    from simulpo.models.tokenizer import train_tokenizer

    if recipe.model.lm:
        from simulpo.models.lm import load_tokenizer

        return load_tokenizer(recipe.model.lm)

    def make(out: Path) -> dict:
        train = load_test_set(run.synthetic("train"))
        texts = [t for s in train for t in (s.source, s.reference)]
        return {"vocab_size": len(train_tokenizer(texts, recipe.model.vocab_size, out))}

    run.step("tokenizer", make)
    return AutoTokenizer.from_pretrained(str(run.tokenizer))


def _fresh_model(recipe: TextRecipe, tokenizer):
    """The model SFT starts from: the pretrained lm (with LoRA adapters), or a tiny LM."""
    from simulpo.models.lm import build_tiny_lm

    m = recipe.model
    if m.lm:
        return _load(recipe, m.lm, lora=m.lora)
    return build_tiny_lm(tokenizer, m.arch, m.hidden_size, m.num_layers, m.num_heads, seed=m.seed)


def _load(recipe: TextRecipe, model_dir: str | Path, lora: bool = False):
    """A trained or pretrained model of the recipe, in its dtype (LoRA-wrapped if asked)."""
    from simulpo.models.lm import load_model

    m = recipe.model
    return load_model(model_dir, lora=lora, lora_r=m.lora_r, dtype=m.dtype or None)[0]


def _train(
    recipe: TextRecipe, run: TextRun, name: str, tokenizer, data, config: SFTConfig, progress
):
    """SFT of a fresh tiny LM on ``data()`` (train and dev dialogues) in step ``name``;
    returns the trained model's directory (a policy's records the recipe's stream)."""
    from simulpo.train.sft import train_sft

    def make(out: Path) -> dict:
        train, dev = data()
        result = train_sft(
            _fresh_model(recipe, tokenizer), tokenizer, train, dev, config, out, progress=progress
        )
        if name != "offline":  # a policy: it was trained for the recipe's turns
            save_stream(out / "final", recipe.stream)
        return result

    run.step(name, make)
    return run / name / "final"


def train_offline_step(recipe: TextRecipe, run: TextRun, tokenizer, progress: bool = True) -> Path:
    """The offline translator: the tiny LM fine-tuned on whole sentence pairs (the
    pretrained lm as it is)."""
    if recipe.model.lm:
        from simulpo.models.store import resolve

        return resolve(recipe.model.lm)

    def data():
        splits = [load_test_set(run.synthetic(s)) for s in ("train", "dev")]
        return [
            [
                d["messages"]
                for d in offline_dialogues([x.source for x in v], [x.reference for x in v])
            ]
            for v in splits
        ]

    return _train(recipe, run, "offline", tokenizer, data, recipe.offline, progress)


def synthesize_step(recipe: TextRecipe, run: TextRun, progress: bool = True) -> dict[str, Path]:
    """Simultaneous SFT dialogues: reference → align → monotonize → group by (merged) chunks."""
    s = recipe.synthesis
    context = {}
    if recipe.data.corpus == "bible" and s.align_context:
        context = {"context": run.data / "bible" / "train.jsonl", "context_sentences": s.align_context}

    def make(out: Path) -> dict:
        counts = {}
        for split in ("train", "dev"):
            dialogues = synthesize_from_corpus(
                run.corpus(recipe, split),
                s.aligner,
                c_min=s.c_min,
                c_max=s.c_max,
                seed=s.seed,
                copies=s.copies,
                chunk_words=recipe.stream.chunk_words,
                **context,
                system=recipe.stream.prompts()[0],
                progress=progress,
            )
            write_jsonl(out / f"{split}.jsonl", dialogues)
            counts[split] = len(dialogues)
        return counts

    run.step("sft_data", make)
    return {split: run / "sft_data" / f"{split}.jsonl" for split in ("train", "dev")}


def train_policy_step(recipe: TextRecipe, run: TextRun, tokenizer, progress: bool = True) -> Path:
    def data():
        paths = synthesize_step(recipe, run, progress)
        return [[d["messages"] for d in read_jsonl(paths[s])] for s in ("train", "dev")]

    return _train(recipe, run, "sft", tokenizer, data, recipe.sft, progress)


def train_rl_step(
    recipe: TextRecipe,
    run: TextRun,
    sft_dir: Path,
    tokenizer,
    progress: bool = True,
    name: str = "seqpo",
) -> Path:
    """SeqPO: GRPO from the SFT policy with the recipe's reward, in step ``name`` (a folder
    of the run); returns the policy's directory."""
    from simulpo.train.rl import train_rl

    def make(out: Path) -> dict:
        model = _load(recipe, sft_dir, lora=recipe.model.lora)
        train = load_test_set(run.corpus(recipe, "train"))
        dev = load_test_set(run.corpus(recipe, "dev"))
        return train_rl(model, tokenizer, train, dev, recipe.rl, out, progress=progress)

    run.step(name, make)
    return run / name / "final"


def evaluate_llm_rows(
    recipe: TextRecipe,
    run: TextRun,
    policies: dict[str, Path],
    offline_dir: Path | None,
    tokenizer,
    out: str,
    progress: bool,
) -> list[Row]:
    """Rows of the LLM policies (name → model dir: ``zero-shot``, ``sft``, ``seqpo``), then
    (given an ``offline_dir``) ``wait-k`` over the offline LM and ``offline``, on the
    recipe's test set; each row is step ``out/CORPUS/NAME`` of the run."""
    import dataclasses

    from simulpo.policies.build import PolicySpec, build_policy
    from simulpo.translators.llm import LLMTranslator

    e = recipe.eval
    corpus = recipe.data.corpus
    segments = eval_segments(recipe, run)
    settings = {"eval": dataclasses.asdict(e), "stream": dataclasses.asdict(recipe.stream)}
    prompt, offline_prompt = recipe.stream.prompts()
    spec = PolicySpec(
        max_piece_tokens=e.max_piece_tokens, max_new_tokens=e.max_new_tokens, system_prompt=prompt
    )
    systems = []  # (name, what the row depends on, how to build the policy)
    for name, model_dir in policies.items():
        llm = dataclasses.replace(spec, kind="llm", name=name)
        systems.append((name, identity(model_dir), lambda s=llm, d=model_dir: build_policy(
            s, model=_load(recipe, d), tokenizer=tokenizer
        )))  # fmt: skip
    if offline_dir is not None:
        translator = _cached(lambda: LLMTranslator(
            _load(recipe, offline_dir), tokenizer, max_new_tokens=e.max_new_tokens,
            system_prompt=offline_prompt,
        ))  # fmt: skip
        kinds = [*(f"wait-{k}" for k in e.wait_ks), "offline"]
        for kind in kinds:
            scheduled = dataclasses.replace(spec, kind=kind)
            systems.append((kind, identity(offline_dir), lambda s=scheduled: build_policy(
                s, translator=translator()
            )))  # fmt: skip
    words = recipe.stream.segmenter(False).m
    target = recipe.stream.target_lang or None
    rows = []
    for name, trained, policy in systems:
        rows.append(run.step(
            str(Path(out) / corpus / name),
            lambda folder, p=policy: evaluate(
                p(), segments, folder, corpus, words, target_lang=target, progress=progress
            ),
            key={"policy": trained, **settings},
        ))  # fmt: skip
    return rows


def eval_segments(recipe: TextRecipe, run: TextRun) -> list[Sentence]:
    """The test set of the recipe (its first ``eval.test_segments``)."""
    segments = load_test_set(run.corpus(recipe, "test"))
    n = recipe.eval.test_segments
    return segments[:n] if n else segments


def _cached(make):
    from functools import cache

    return cache(make)


def run_text_recipe(recipe: TextRecipe, root: str | Path, progress: bool = True) -> list[Row]:
    """All steps of the text recipe under ``root``; returns the LLM report rows. A
    pretrained lm's own rows (``zero-shot``, ``offline``, ``wait-k``) are made before any
    training, so a run cut short still has them."""
    run = TextRun(Path(root))
    recipe.stream.check()
    log.info("[1/6] data → %s", run.data)
    build_data(recipe, run)
    lm = recipe.model.lm
    log.info("[2/6] tokenizer → %s", f"{lm}'s own" if lm else run.tokenizer)
    tokenizer = train_tokenizer_step(recipe, run)
    log.info("[3/6] offline translator → %s", f"{lm} as it is" if lm else run / "offline")
    offline = train_offline_step(recipe, run, tokenizer, progress)
    before = []
    if lm:  # where SFT and RL start from
        log.info("the pretrained model, before training: zero-shot, offline")
        before = evaluate_llm_rows(
            recipe, run, {"zero-shot": offline}, offline, tokenizer, ".", progress
        )
    log.info("[4/6] SFT data and simultaneous policy → %s", run.sft)
    sft = train_policy_step(recipe, run, tokenizer, progress)
    log.info("[5/6] SeqPO RL from the SFT policy → %s", run.seqpo)
    seqpo = train_rl_step(recipe, run, sft, tokenizer, progress)
    log.info("[6/6] evaluation")
    policies = {"sft": sft, "seqpo": seqpo}
    if before:
        trained = evaluate_llm_rows(recipe, run, policies, None, tokenizer, ".", progress)
        return [before[0], *trained, *before[1:]]
    return evaluate_llm_rows(recipe, run, policies, offline, tokenizer, ".", progress)

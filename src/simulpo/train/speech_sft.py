"""Speech SFT: the projector (and the LM) trained on speech records, through ``train_sft``.

Two stages, as in HPO:

1. :func:`align_projector` — the LM frozen, only the projector trains, to put speech where
   the LM reads text: each speech embedding is scored against the LM's own input
   embedding table and must pick the source word being spoken at its centre (the
   synthesizer's word timings give that word). Why not speech → transcript through the
   frozen LM, as HPO does? A translation LM never learned to
   *write* source words, so its loss stays at log(vocabulary) (measured: 7.3 on the
   synthetic pair); even with the LM unfrozen, whole-utterance or chunked transcripts
   stayed at the unigram plateau (~3.8) for a whole epoch — the model must discover
   which frames make which word by itself. Frame targets hand it that alignment: 68% of
   dev embeddings pick the right word after 10 epochs on 2000 utterances (42 s, one core).
2. :func:`train_speech_sft` — projector and LM train on the
   simultaneous dialogues (:func:`simulpo.data.speech_sft_synthesis.speech_records`) through
   :func:`simulpo.train.sft.train_sft` (its labels, batches, checkpoints and resume).

Features are the frozen encoder's, pre-encoded once per utterance by a
:class:`~simulpo.models.speech_encoder.FeatureCache`; each record's speech turns take the
rows of their ms span (:func:`~simulpo.models.speech_encoder.chunk_rows`) and become as
many placeholder tokens as the projector makes embeddings of them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from simulpo.config import check_ranges, option
from simulpo.errors import SimulpoError
from simulpo.models.projector import (
    ProjectorConfig,
    SpeechLM,
    SpeechProjector,
    add_speech_token,
    speech_content,
)
from simulpo.models.speech_encoder import FeatureCache, chunk_rows
from simulpo.train.sft import SFTConfig, train_sft


def load_features(cache: FeatureCache, utterances, progress: bool = True) -> dict[str, np.ndarray]:
    """Every utterance's encoder features (float16), encoded on first use and cached."""
    cache.fill(utterances, progress=progress)
    return {u.id: cache.get(u.id) for u in utterances}


def new_projector(
    encoder_dim: int,
    lm,
    stack: int = 4,
    hidden_dim: int = 0,
    seed: int = 0,
    input_norm: bool = False,
    conv_layers: int = 0,
    conv_window: int = 0,
) -> SpeechProjector:
    """A fresh projector from ``encoder_dim`` frames into ``lm``'s hidden size (with a
    causal conv front end of ``conv_layers`` layers, its padding restarted every
    ``conv_window`` frames: see :class:`~simulpo.models.projector.ProjectorConfig`)."""
    hidden = lm.get_input_embeddings().embedding_dim
    config = ProjectorConfig(
        encoder_dim, hidden, stack, hidden_dim, input_norm,
        conv_layers=conv_layers, conv_window=conv_window,
    )  # fmt: skip
    return SpeechProjector(config, seed=seed)


@dataclass
class AlignConfig:
    """Hyper-parameters of :func:`align_projector` (stage 1)."""

    epochs: int = option(10, "passes over the training utterances", "[1, )")
    lr: float = option(3e-3, "AdamW learning rate of the projector", "(0, )")
    batch_utterances: int = option(16, "utterances per optimizer step", "[1, )")
    seed: int = option(0, "seed of the utterance order")

    def check(self) -> None:
        check_ranges(self, "stage-1 ")


def word_targets(utterance, tokenizer, projector: SpeechProjector, frames: int) -> np.ndarray:
    """Per speech embedding of the utterance's ``frames`` encoder frames, the id of the first
    token of the source word being spoken at the embedding's centre (a word lasts from
    its start to the next word's start; the first word also covers any lead-in)."""
    stack_ms = 20 * projector.config.stack
    centres = (np.arange(projector.num_embeddings(frames)) + 0.5) * stack_ms
    first = [_first_token(tokenizer, w) for w in utterance.source.split()]
    index = [max(0, bisect_right(utterance.word_starts, c) - 1) for c in centres]
    return np.asarray([first[i] for i in index], dtype=np.int64)


def _first_token(tokenizer, word: str) -> int:
    """The first token of `` word`` as it reads inside a sentence, skipping a bare space
    token (character-level tokenizers)."""
    ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    return next((i for i in ids if tokenizer.decode([i]).strip()), ids[0])


def align_projector(
    projector: SpeechProjector,
    lm,
    tokenizer,
    train: Sequence,
    features: Mapping[str, np.ndarray],
    dev: Sequence = (),
    config: AlignConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Stage 1: train ``projector`` (in place; ``lm`` untouched) so that each speech
    embedding's nearest row of ``lm``'s input embeddings, by dot product, is the word
    spoken at that time (:func:`word_targets`; utterances carry ``source`` and
    ``word_starts``). Returns the last epoch's train loss, the dev loss and the dev
    accuracy (share of dev embeddings that pick their word)."""
    config = config or AlignConfig()
    config.check()
    table = lm.get_input_embeddings().weight.detach()
    projector.to(table.device)

    def prepare(utterances):
        out = []
        for u in utterances:
            if u.id not in features:
                raise SimulpoError(f"no features for utterance {u.id!r}")
            frames = torch.from_numpy(np.asarray(features[u.id]))
            out.append(
                (frames, torch.from_numpy(word_targets(u, tokenizer, projector, len(frames))))
            )
        return out

    def loss_of(batch):
        logits = projector([f for f, _ in batch]) @ table.T
        targets = torch.cat([t for _, t in batch]).to(logits.device)
        return F.cross_entropy(logits, targets), (logits.argmax(-1) == targets).float().mean()

    train_set, dev_set = prepare(train), prepare(dev)
    if not train_set:
        raise SimulpoError("stage 1 needs training utterances")
    projector.requires_grad_(True).train()
    optimizer = torch.optim.AdamW(projector.parameters(), lr=config.lr)
    rng = np.random.default_rng(config.seed)
    b = config.batch_utterances
    result: dict[str, Any] = {}
    for epoch in tqdm(range(config.epochs), desc="stage 1", disable=not progress):
        order, total = rng.permutation(len(train_set)), 0.0
        for start in range(0, len(order), b):
            loss, _ = loss_of([train_set[i] for i in order[start : start + b]])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            total += loss.item()
        result = {"epoch": epoch + 1, "train_loss": total / -(-len(order) // b)}
    if dev_set:
        with torch.no_grad():
            loss, accuracy = loss_of(dev_set)
        result |= {"dev_loss": loss.item(), "dev_accuracy": accuracy.item()}
    projector.eval()
    return result


def fill_speech_turns(
    records: Sequence[Mapping[str, Any]],
    features: Mapping[str, np.ndarray],
    projector: SpeechProjector,
) -> tuple[list[list[dict[str, str]]], list[list[np.ndarray]]]:
    """Each record's messages with its speech turns' placeholders, and those turns' frames."""
    dialogues, speech = [], []
    for n, record in enumerate(records, 1):
        utterance = record.get("utterance")
        if utterance not in features:
            raise SimulpoError(f"record {n}: no features for utterance {utterance!r}")
        frames = features[utterance]
        messages, turns = [], []
        for m in record["messages"]:
            if "speech" not in m:
                messages.append({"role": m["role"], "content": m["content"]})
                continue
            start, end = m["speech"]
            rows = chunk_rows(frames, start, end)
            turns.append(rows)
            messages.append(
                {"role": m["role"], "content": speech_content(projector.num_embeddings(len(rows)))}
            )
        dialogues.append(messages)
        speech.append(turns)
    return dialogues, speech


def train_speech_sft(
    lm,
    tokenizer,
    projector: SpeechProjector,
    train: Sequence[Mapping[str, Any]],
    features: Mapping[str, np.ndarray],
    dev: Sequence[Mapping[str, Any]] | None = None,
    config: SFTConfig | None = None,
    out_dir: str | Path = "runs/speech_sft",
    resume: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Stage 2 of speech SFT on ``train`` records (``dev`` for the dev loss).

    ``lm`` and ``projector`` are trained in place and saved together to ``out_dir/final`` (the LM's model directory plus the projector
    files, loadable with :func:`simulpo.models.projector.load_speech_model`). The
    tokenizer gets the speech placeholder token and ``lm`` the embedding row for it.
    Returns :func:`train_sft`'s result.
    """
    speech_id = add_speech_token(tokenizer, lm)
    lm.requires_grad_(True)
    projector.requires_grad_(True)
    model = SpeechLM(lm, projector, speech_id)
    train_dialogues, train_speech = fill_speech_turns(train, features, projector)
    dev_dialogues, dev_speech = fill_speech_turns(dev, features, projector) if dev else (None, None)
    return train_sft(
        model,
        tokenizer,
        train_dialogues,
        dev_dialogues,
        config,
        out_dir,
        resume,
        progress,
        train_speech=train_speech,
        dev_speech=dev_speech,
    )

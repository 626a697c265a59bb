"""Speech SFT: the projector (and the LM) trained on speech records, through ``train_sft``.

Two stages, as in HPO, both through :func:`simulpo.train.sft.train_sft` (its labels,
batches, checkpoints and resume):

1. ``stage="projector"`` — the LM frozen, only the projector trains, on stage-1 records
   (whole utterance → transcript, :func:`simulpo.data.speech_sft.transcript_records`): it
   learns to put speech where the LM reads text.
2. ``stage="dialogue"`` — projector and LM train on the simultaneous dialogues
   (:func:`simulpo.data.speech_sft.speech_records`).

Features are the frozen encoder's, pre-encoded once per utterance by a
:class:`~simulpo.models.speech_encoder.FeatureCache`; each record's speech turns take the
rows of their ms span (:func:`~simulpo.models.speech_encoder.chunk_rows`) and become as
many placeholder tokens as the projector makes embeddings of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simulpo.errors import ConfigError, SimulpoError
from simulpo.models.projector import (
    ProjectorConfig,
    SpeechLM,
    SpeechProjector,
    add_speech_token,
    speech_content,
)
from simulpo.models.speech_encoder import FeatureCache, chunk_rows
from simulpo.train.sft import SFTConfig, train_sft

STAGES = ("projector", "dialogue")


def load_features(cache: FeatureCache, utterances, progress: bool = True) -> dict[str, np.ndarray]:
    """Every utterance's encoder features (float16), encoded on first use and cached."""
    cache.fill(utterances, progress=progress)
    return {u.id: cache.get(u.id) for u in utterances}


def new_projector(
    encoder_dim: int, lm, stack: int = 4, hidden_dim: int = 0, seed: int = 0
) -> SpeechProjector:
    """A fresh projector from ``encoder_dim`` frames into ``lm``'s hidden size."""
    hidden = lm.get_input_embeddings().embedding_dim
    return SpeechProjector(ProjectorConfig(encoder_dim, hidden, stack, hidden_dim), seed=seed)


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
    stage: str = "dialogue",
    config: SFTConfig | None = None,
    out_dir: str | Path = "runs/speech_sft",
    resume: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """One stage of speech SFT on ``train`` records (``dev`` for the dev loss).

    ``lm`` and ``projector`` are trained in place (the LM frozen for ``stage="projector"``)
    and saved together to ``out_dir/final`` (the LM's model directory plus the projector
    files, loadable with :func:`simulpo.models.projector.load_speech_model`). The
    tokenizer gets the speech placeholder token and ``lm`` the embedding row for it.
    Returns :func:`train_sft`'s result.
    """
    if stage not in STAGES:
        raise ConfigError(f"unknown speech SFT stage {stage!r}; use {' or '.join(STAGES)}")
    speech_id = add_speech_token(tokenizer, lm)
    lm.requires_grad_(stage == "dialogue")
    projector.requires_grad_(True)
    model = SpeechLM(lm, projector, speech_id)
    train_dialogues, train_speech = fill_speech_turns(train, features, projector)
    dev_dialogues, dev_speech = fill_speech_turns(dev, features, projector) if dev else (None, None)
    try:
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
    finally:
        lm.requires_grad_(True)

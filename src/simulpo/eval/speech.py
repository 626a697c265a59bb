"""Evaluate a speech policy on a built speech data folder, sentence by sentence or long-form.

The folder is what ``simulpo data speech`` writes for one corpus (``<data>/speech/<corpus>``):
``<split>.jsonl`` utterances, ``<split>.yaml`` MuST-C-style segments and ``wav/`` streams.
Both modes run the one speech loop (:func:`~simulpo.stream.loop.run_stream` with
:class:`~simulpo.stream.segmenter.FixedMilliseconds` chunks); the policy is a parameter
(the cascade, an LLM policy that reads audio chunks, ...).

- **Sentence level** (:func:`evaluate_utterances`): every utterance is an episode. Writes
  ``instances.log`` (SimulEval fields, delays in ms) and ``scores.json``: BLEU, chrF, AL,
  LAAL, ... and their ``*_CA`` twins.
- **Long form** (:func:`evaluate_longform`): every recording is ONE episode, an unbounded
  stream that the policy never sees the sentence boundaries of. Writes the OmniSTEval-style
  ``hypotheses.jsonl`` (one line per recording, delays in ms on its timeline) with the
  ``segments.yaml`` and ``references.txt`` of the recordings it covers, so
  ``simulpo score hypotheses.jsonl --segments segments.yaml --references references.txt``
  reproduces ``scores.json``: BLEU, chrF, StreamLAAL, LongYAAL (and ``*_CA``).

A policy that keeps ``memory["transcript"]`` (the cascade's committed ASR words) also gets
the recognizer's word error rate (``WER``, %, on lower-cased words without punctuation).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from simulpo.data.audio import audio_info, read_audio
from simulpo.data.speech import SpeechUtterance, load_speech_split
from simulpo.errors import InputError, SimulpoError
from simulpo.eval.report import Row
from simulpo.io import atomic_write_json, atomic_write_text
from simulpo.metrics.longform import read_segments, score_longform_files
from simulpo.metrics.scores import EVAL_QUALITY_METRICS, score_instances
from simulpo.policies.asr import normalize_word
from simulpo.stream.episode import Episode
from simulpo.stream.instance_log import write_instances
from simulpo.stream.loop import Policy, run_stream
from simulpo.stream.segmenter import FixedMilliseconds

CORPORA = ("synthetic", "bible")
#: target language of each bundled corpus (picks BLEU's tokenizer)
TARGET_LANG = {"synthetic": None, "bible": "es"}


def speech_folder(data_dir: str | Path, corpus: str) -> Path:
    """The corpus folder under ``data_dir``: ``DATA/speech/<corpus>``, ``DATA/<corpus>`` or
    ``DATA`` itself (when it holds the splits)."""
    data_dir = Path(data_dir)
    for folder in (data_dir / "speech" / corpus, data_dir / corpus, data_dir):
        if any(folder.glob("*.jsonl")) and (folder / "wav").is_dir():
            return folder
    raise SimulpoError(
        f"{data_dir}: no speech data for corpus {corpus!r} (looked for "
        f"{data_dir / 'speech' / corpus}/<split>.jsonl and wav/); build it with "
        f"`simulpo data speech --output {data_dir}`"
    )


def evaluate_utterances(
    policy: Policy,
    utterances: Sequence[SpeechUtterance],
    out_dir: str | Path,
    dataset: str,
    chunk_ms: float = 1120.0,
    unit: str = "word",
    target_lang: str | None = None,
    name: str | None = None,
    progress: bool = True,
    clock: str = "cumulative",
) -> Row:
    """Stream every utterance through ``policy`` in ``chunk_ms`` chunks; score and log it.
    ``clock``: how elapsed times run (:data:`simulpo.stream.loop.CLOCKS`)."""
    if not utterances:
        raise SimulpoError("there are no utterances to evaluate")
    out_dir = Path(out_dir)
    name = name or policy.name
    episodes = run_stream(
        [u.audio() for u in utterances],
        policy,
        FixedMilliseconds(chunk_ms),
        references=[u.reference for u in utterances],
        unit=unit,
        progress=progress,
        desc=f"{dataset} {name}",
        clock=clock,
    )
    records = []
    for utt, episode in zip(utterances, episodes):
        record = episode.to_instance()
        record["source"] = f"{utt.wav.name}:{utt.offset:.3f}+{utt.duration:.3f}"
        record["id"], record["transcript_reference"] = utt.id, utt.source
        _add_transcript(record, episode)
        records.append(record)
    write_instances(out_dir / "instances.log", records, source_type="speech")
    scores = score_instances(
        records, latency_unit=unit, target_lang=target_lang, source_type="speech",
        quality_metrics=EVAL_QUALITY_METRICS,
    )
    scores.update(_wer(records))
    atomic_write_json(out_dir / "scores.json", scores)
    return {
        "name": name,
        "dataset": dataset,
        "segments": len(records),
        "chunk_ms": chunk_ms,
        **scores,
    }


def evaluate_longform(
    policy: Policy,
    folder: str | Path,
    split: str,
    out_dir: str | Path,
    dataset: str,
    chunk_ms: float = 1120.0,
    recordings: int | None = None,
    unit: str = "word",
    target_lang: str | None = None,
    name: str | None = None,
    progress: bool = True,
    clock: str = "queue",
) -> Row:
    """Translate each recording of ``split`` (the first ``recordings`` ones) as one stream.

    The segment file and the utterances must describe the same segments in the same order
    (a mismatch is an error naming the first differing segment): the segments give the
    scorer its sentence spans, the utterances their references.
    """
    folder, out_dir = Path(folder), Path(out_dir)
    name = name or policy.name
    groups = _recordings(folder, split)
    if recordings is not None:
        if recordings < 1:
            raise SimulpoError(f"recordings must be at least 1, got {recordings}")
        groups = groups[:recordings]
    wavs = [folder / "wav" / wav for wav, _ in groups]
    for wav, (_, segs) in zip(wavs, groups):
        _check_covers(wav, [seg for seg, _ in segs], folder / f"{split}.yaml")
    episodes = run_stream(
        [read_audio(w) for w in wavs],
        policy,
        FixedMilliseconds(chunk_ms),
        unit=unit,
        progress=progress,
        desc=f"{dataset} {name}",
        clock=clock,  # queue: cumulative compute grows without bound over a long stream
    )
    segments = [seg for _, segs in groups for seg in segs]
    lines = [_hypothesis(wav, episode) for wav, episode in zip(wavs, episodes)]
    atomic_write_text(
        out_dir / "hypotheses.jsonl",
        "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines),
    )
    atomic_write_text(
        out_dir / "segments.yaml",
        "".join(
            f"- {{duration: {s['duration']}, offset: {s['offset']}, wav: {s['wav']}}}\n"
            for s, _ in segments
        ),
    )
    atomic_write_text(out_dir / "references.txt", "".join(u.reference + "\n" for _, u in segments))
    scores = score_longform_files(
        out_dir / "hypotheses.jsonl",
        out_dir / "segments.yaml",
        out_dir / "references.txt",
        out_dir,
        unit=unit,
        target_lang=target_lang,
        quality_metrics=EVAL_QUALITY_METRICS,
    )
    for line, (_, segs) in zip(lines, groups):
        line["transcript_reference"] = " ".join(u.source for _, u in segs)
    scores.update(_wer(lines))
    atomic_write_json(out_dir / "scores.json", scores)
    return {
        "name": name,
        "dataset": dataset,
        "recordings": len(groups),
        "segments": len(segments),
        "chunk_ms": chunk_ms,
        **scores,
    }


def _recordings(folder: Path, split: str) -> list[tuple[str, list[tuple[dict, SpeechUtterance]]]]:
    """``(wav name, [(segment, utterance), ...])`` per recording, in file order."""
    yaml_path = folder / f"{split}.yaml"
    if not yaml_path.exists():
        raise SimulpoError(f"{yaml_path}: no such file (build it with `simulpo data speech`)")
    segments = read_segments(yaml_path)
    utterances = load_speech_split(folder, split)
    if len(segments) != len(utterances):
        raise InputError(
            yaml_path,
            f"{len(segments)} segments but {len(utterances)} utterances in {split}.jsonl: "
            "the segment file does not match the utterances",
        )
    groups: dict[str, list[tuple[dict, SpeechUtterance]]] = {}
    for k, (seg, utt) in enumerate(zip(segments, utterances), 1):
        same = seg["wav"] == utt.wav.name and abs(seg["offset"] - utt.offset) < 1e-3
        if not same or abs(seg["duration"] - utt.duration) > 1e-3:
            raise InputError(
                yaml_path,
                f"segment {k} ({seg['wav']} at {seg['offset']} s, {seg['duration']} s) is not "
                f"utterance {utt.id} ({utt.wav.name} at {utt.offset} s, {utt.duration} s) of "
                f"{split}.jsonl: the segment file does not match the utterances",
            )
        groups.setdefault(seg["wav"], []).append((seg, utt))
    return list(groups.items())


#: how far (s) a segment may end past its recording: the rounding of offsets to ms, no more
END_SLACK_S = 0.05


def _check_covers(wav: Path, segments: Sequence[dict], segment_file: Path) -> None:
    """Refuse a recording shorter than its segments (a truncated file, or the segment file
    of other audio): its last sentences would be scored against silence."""
    frames, rate, _ = audio_info(wav)
    seconds = frames / rate
    last = max(segments, key=lambda seg: seg["offset"] + seg["duration"])
    end = last["offset"] + last["duration"]
    if end > seconds + END_SLACK_S:
        raise InputError(
            wav,
            f"the recording lasts {seconds:.2f} s but its segment at {last['offset']} s in "
            f"{segment_file.name} ends at {end:.2f} s: the file is truncated, or the segments "
            "are of other audio",
        )


def _hypothesis(wav: Path, episode: Episode) -> dict:
    """One recording's line of the long-form hypothesis file (OmniSTEval's fields)."""
    record = episode.to_instance()
    line = {
        "source": wav.name,
        "prediction": record["prediction"],
        "delays": record["delays"],
        "elapsed": record["elapsed"],
        "source_length": record["source_length"],
    }
    _add_transcript(line, episode)
    return line


def _add_transcript(record: dict, episode: Episode) -> None:
    if "transcript" in episode.memory:
        record["transcript"] = " ".join(episode.memory["transcript"])


def _wer(records: Sequence[dict]) -> dict[str, float]:
    """Corpus word error rate (%) of the transcripts, if the policy kept any."""
    if not all("transcript" in r for r in records):
        return {}
    errors = words = 0
    for r in records:
        ref = [w for w in map(normalize_word, r["transcript_reference"].split()) if w]
        hyp = [w for w in map(normalize_word, r["transcript"].split()) if w]
        errors += edit_distance(ref, hyp)
        words += len(ref)
    return {"WER": 100.0 * errors / max(words, 1)}


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two word sequences, one numpy row per reference word.

    Within a row, ``d[j] = min(up[j] + 1, diag[j - 1] + cost, d[j - 1] + 1)``; the last
    term chains along the row, and ``d[j] = j + cummin_k(t[k] - k)`` over the first two
    terms ``t`` resolves the chain at once.
    """
    vocab: dict[str, int] = {}
    h = np.array([vocab.setdefault(w, len(vocab)) for w in hyp], dtype=np.int64)
    row = np.arange(len(hyp) + 1, dtype=np.int64)
    offsets = np.arange(len(hyp) + 1, dtype=np.int64)
    for i, word in enumerate(ref, 1):
        t = np.empty_like(row)
        t[0] = i
        t[1:] = np.minimum(row[1:] + 1, row[:-1] + (h != vocab.get(word, -1)))
        row = offsets + np.minimum.accumulate(t - offsets)
    return int(row[-1])


def evaluate_speech_curve(
    policy: Policy,
    folder: str | Path,
    split: str,
    out: str | Path,
    dataset: str,
    chunk_ms: float,
    chunks_per_turn: Sequence[int] = (1,),
    long_form: bool = False,
    recordings: int | None = None,
    limit: int | None = None,
    unit: str = "word",
    target_lang: str | None = None,
    name: str | None = None,
    progress: bool = True,
) -> list[Row]:
    """One row per ``chunks_per_turn`` value ``m`` (a turn reads ``m`` chunks of
    ``chunk_ms``), named ``NAME-m``, into ``out/dataset/NAME-m/``; sentence by sentence
    (the first ``limit`` utterances) or, with ``long_form``, over the first ``recordings``
    recordings. Each row is added to ``out/report.json`` as soon as it is scored."""
    from simulpo.eval.report import update_report

    out = Path(out)
    utterances = None if long_form else load_speech_split(Path(folder), split)[:limit]
    rows = []
    for m in chunks_per_turn:
        label = f"{name or policy.name}-{m}"
        options = {
            "out_dir": out / dataset / label,
            "dataset": dataset,
            "chunk_ms": chunk_ms * m,
            "unit": unit,
            "target_lang": target_lang,
            "name": label,
            "progress": progress,
        }
        if long_form:
            row = evaluate_longform(policy, folder, split, recordings=recordings, **options)
        else:
            row = evaluate_utterances(policy, utterances, **options)
        rows.append(row)
        update_report(out / "report.json", [row])
    return rows

"""Source speech for the bundled corpora: espeak-ng through its C library, with word timings.

**Synthesis.** :class:`Espeak` drives ``libespeak-ng`` through ``ctypes`` in synchronous
mode: one ``espeak_Synth`` call per sentence, whose synth callback collects the samples
(22050 Hz, 16-bit) and the synthesizer's WORD events; the audio is resampled to 16 kHz
with ``soxr``, and the silence after the last sound is cut to :data:`TAIL_MS`. No process
is spawned per sentence; ``build_speech`` runs one engine per worker process (the library
is a process-wide singleton). espeak keeps some state across calls (a pitch-flutter phase
that is a C static, its noise generator), so the same sentence can come out a few samples
different depending on what the process spoke before: builds are reproducible in their
texts, voices, rates, pauses and word timings to a few ms, not byte for byte.

**Word timings** are the synthesizer's own: a WORD event gives the character position of a
word in the text and the time (ms) at which its audio starts. A source word (a
whitespace-separated token, as everywhere in simulpo) starts at its first event.
espeak pronounces a few word pairs as one dictionary entry (``does not``, ``of the``,
``in the``, ...) and reports only the first word: in the synthetic pair about 3% of
words, nearly all ``not`` and ``the``, get no event. Their start is **interpolated by
character length** between the neighbouring timed words: a run of untimed words between
the timed word *i* (start *t_i*) and the next timed word *j* (or the end of the audio)
shares the span ``[t_i, t_j]`` in proportion to the words' lengths, as if each character
took the same time; an untimed first word starts at 0. The indices of interpolated words
are kept (``interpolated``), so they can be told apart or dropped.

**Long-form recordings.** ``build_speech`` gives every sentence of a split a voice and a
rate (drawn per utterance by a seeded RNG), then concatenates the utterances in corpus
order, with a pause drawn from ``pause`` seconds between them, into WAV streams of about
``stream_minutes`` minutes: the inputs long-form evaluators (SimulEval/OmniSTEval-style
MuST-C data) expect. Layout under ``<data>/speech/<corpus>/``::

    wav/<split>_<k>.wav         16 kHz mono 16-bit streams
    <split>.yaml                MuST-C-style segments: one {duration, offset, speaker_id, wav}
                                per utterance (seconds on the stream's timeline), stream order
    <split>.<src> / .<tgt>      the source transcript / reference, one line per segment
    <split>.jsonl               one utterance a line: id, source, reference, wav, offset,
                                duration, voice, rate, word_starts (ms from the utterance's
                                start, one per source word), interpolated (word indices)
    ../manifest.json            settings, sizes, hours, streams, untimed-word rate, speed

A word's start on the stream's timeline is ``1000 * offset + word_starts[i]`` ms.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import ctypes.util
import json
import logging
import multiprocessing
import random
import re
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from simulpo.data.audio import SAMPLE_RATE, read_audio, resample, to_pcm16, write_audio
from simulpo.errors import ConfigError, InputError, SimulpoError
from simulpo.io import atomic_write_json, atomic_write_text, read_text

log = logging.getLogger(__name__)

_INSTALL_HINT = "install Debian packages espeak-ng and libespeak-ng1, or run scripts/setup.sh"

#: English voices of Debian's espeak-ng-data (``en`` is British; ``+f3``, ``+f2``: variants).
DEFAULT_VOICES = ("en-us", "en", "en-gb-scotland", "en-029", "en-us+f3", "en+f2")
#: speaking rates, words per minute (espeak's default is 175).
DEFAULT_RATES = (150, 175, 200, 225)
#: sentences per split: a subset of the text corpora (audio is ~32 kB a second).
DEFAULT_SYNTHETIC_SIZES = {"train": 2000, "dev": 200, "test": 200}
DEFAULT_BIBLE_SIZES = {"train": 500, "dev": 100, "test": 100}

#: silence kept after an utterance's last sound (ms).
TAIL_MS = 50

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE = 1
_EVENT_LIST_TERMINATED, _EVENT_WORD = 0, 1
_ERRORS = {1: "internal error", 2: "not found", 3: "buffer full"}


class _Event(ctypes.Structure):
    """``espeak_EVENT`` of speak_lib.h."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character position in the text
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms on this call's audio
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class SpokenText:
    """One synthesized sentence: mono float32 audio and the start (ms) of each source word."""

    audio: np.ndarray
    sample_rate: int
    word_starts: list[int]
    interpolated: list[int]

    @property
    def duration_ms(self) -> float:
        return len(self.audio) * 1000 / self.sample_rate


class Espeak:
    """``libespeak-ng`` in synchronous mode. The library holds one engine per process, so
    every instance in a process shares it (calls are serialized by a lock)."""

    _lib: ClassVar[ctypes.CDLL | None] = None
    _native_rate: ClassVar[int] = 0
    _lock: ClassVar[threading.Lock] = threading.Lock()
    _state: ClassVar[dict] = {}

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        self.sample_rate = sample_rate
        with Espeak._lock:
            if Espeak._lib is None:
                Espeak._init()

    @staticmethod
    def _init() -> None:
        name = ctypes.util.find_library("espeak-ng")
        try:
            lib = ctypes.CDLL(name or "libespeak-ng.so.1")
        except OSError:
            raise SimulpoError(f"libespeak-ng not found: {_INSTALL_HINT}") from None
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 500, None, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise SimulpoError(
                f"espeak-ng failed to initialize (its voice data missing?): {_INSTALL_HINT}"
            )
        state = Espeak._state
        state.update(samples=[], events=[], voice=None)

        def collect(wav, n, events):  # the synth callback: runs inside espeak_Synth
            if n > 0 and wav:
                state["samples"].append(np.ctypeslib.as_array(wav, (n,)).copy())
            i = 0
            while events[i].type != _EVENT_LIST_TERMINATED:
                ev = events[i]
                if ev.type == _EVENT_WORD and ev.text_position > 0:
                    state["events"].append((ev.text_position - 1, ev.audio_position))
                i += 1
            return 0

        state["callback"] = _Callback(collect)  # kept alive: espeak holds the pointer
        lib.espeak_SetSynthCallback(state["callback"])
        Espeak._lib, Espeak._native_rate = lib, rate

    def synthesize(self, text: str, voice: str = "en-us", rate: int = 175) -> SpokenText:
        """Speak ``text``; word timings for each whitespace-separated word of ``text``."""
        if not text.strip():
            raise ConfigError("nothing to synthesize: the text is empty")
        lib, state = Espeak._lib, Espeak._state
        with Espeak._lock:
            if state["voice"] != voice:
                err = lib.espeak_SetVoiceByName(voice.encode())
                if err:
                    raise ConfigError(
                        f"espeak-ng voice {voice!r}: {_ERRORS.get(err, err)} (see `espeak-ng --voices`)"
                    )
                state["voice"] = voice
            if not 80 <= rate <= 450:
                raise ConfigError(
                    f"speaking rate must be in [80, 450] words per minute, got {rate}"
                )
            lib.espeak_SetParameter(_RATE, int(rate), 0)
            state["samples"], state["events"] = [], []
            data = text.encode("utf-8") + b"\0"
            err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            samples, events = state["samples"], state["events"]
        if err:
            raise SimulpoError(
                f"espeak-ng could not synthesize {text[:40]!r}: {_ERRORS.get(err, err)}"
            )
        native = (
            np.concatenate(samples).astype(np.float32) / 32768.0
            if samples
            else np.zeros(0, np.float32)
        )
        audio = _trim_tail(
            resample(native, Espeak._native_rate, self.sample_rate), self.sample_rate
        )
        starts, interpolated = word_starts(text, events, len(audio) * 1000 / self.sample_rate)
        return SpokenText(audio, self.sample_rate, starts, interpolated)


def _trim_tail(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cut (or pad) the silence after the last sound to exactly :data:`TAIL_MS`.

    espeak's trailing silence varies by tens of ms with state left by earlier calls; a
    fixed tail makes an utterance's duration depend on its text, voice and rate only.
    """
    loud = np.flatnonzero(np.abs(audio) > 1e-3)  # -60 dBFS
    end = (loud[-1] + 1 if len(loud) else 0) + round(TAIL_MS * sample_rate / 1000)
    if end <= len(audio):
        return audio[:end]
    return np.concatenate([audio, np.zeros(end - len(audio), np.float32)])


def word_starts(
    text: str, events: Sequence[tuple[int, int]], end_ms: float
) -> tuple[list[int], list[int]]:
    """The start (ms) of each whitespace-separated word of ``text`` from WORD events, and
    the indices of the words whose start had to be interpolated.

    ``events`` are ``(char_index, ms)`` in emission order (0-based character index). A word
    takes its first event; an event that points back to an earlier word (espeak emits a few
    stray ones around abbreviations) is ignored, so starts never decrease. Words without an
    event share the span between the timed words around them (or ``end_ms``) in proportion
    to their character lengths (see the module doc).
    """
    spans = [m.start() for m in re.finditer(r"\S+", text)]
    lengths = [len(m.group()) for m in re.finditer(r"\S+", text)]
    timed: dict[int, float] = {}
    last_word, last_ms = -1, 0.0
    for char, ms in events:
        k = bisect.bisect_right(spans, char) - 1  # the word holding this character
        if k < 0 or char >= spans[k] + lengths[k]:
            continue  # between words (e.g. an event on a space)
        if k > last_word and ms >= last_ms:
            timed[k] = float(ms)
            last_word, last_ms = k, float(ms)
    starts: list[float] = [0.0] * len(spans)
    interpolated = [k for k in range(len(spans)) if k not in timed]
    anchors = sorted(timed)
    for k in interpolated:
        i = max((a for a in anchors if a < k), default=None)  # timed word before the run
        j = min((a for a in anchors if a > k), default=None)  # timed word after it
        lo_word = 0 if i is None else i
        lo_ms = 0.0 if i is None else timed[i]
        hi_word = len(spans) if j is None else j
        hi_ms = max(lo_ms, end_ms if j is None else timed[j])
        before = sum(lengths[lo_word:k])
        total = sum(lengths[lo_word:hi_word])
        starts[k] = lo_ms + (hi_ms - lo_ms) * before / total
    for k, ms in timed.items():
        starts[k] = ms
    return [round(s) for s in starts], interpolated


# ------------------------------------------------------------------------- long-form build


@dataclass
class SpeechConfig:
    """How the source speech of a corpus is made."""

    voices: tuple[str, ...] = DEFAULT_VOICES  # espeak-ng voice names, one drawn per utterance
    rates: tuple[int, ...] = DEFAULT_RATES  # words per minute, one drawn per utterance
    sample_rate: int = SAMPLE_RATE
    stream_minutes: float = 5.0  # a long-form stream closes once it is at least this long
    pause: tuple[float, float] = (0.4, 1.2)  # seconds of silence between utterances, uniform
    seed: int = 0  # voices, rates and pauses
    workers: int = 2  # synthesis processes (1: in this process)
    chunksize: int = 16  # sentences per task sent to a worker

    def __post_init__(self) -> None:
        self.voices, self.rates = tuple(self.voices), tuple(int(r) for r in self.rates)
        if not self.voices or not self.rates:
            raise ConfigError("give at least one voice and one rate")
        if self.stream_minutes <= 0 or self.workers < 1:
            raise ConfigError("stream_minutes must be positive and workers at least 1")
        if not 0 <= self.pause[0] <= self.pause[1]:
            raise ConfigError(f"pause must be a range 0 <= min <= max seconds, got {self.pause}")


@dataclass
class SpeechUtterance:
    """One line of ``<split>.jsonl``, with its stream resolved to a path."""

    id: str
    source: str
    reference: str
    wav: Path
    offset: float
    duration: float
    voice: str
    rate: int
    word_starts: list[int]
    interpolated: list[int] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def audio(self, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """The utterance's samples, read from its stream."""
        return read_audio(self.wav, sample_rate, self.offset, self.duration)


_worker: Espeak | None = None


def _init_worker(sample_rate: int) -> None:
    global _worker
    _worker = Espeak(sample_rate)


def _synthesize_task(job: tuple[str, str, int]) -> tuple[np.ndarray, list[int], list[int]]:
    text, voice, rate = job
    utt = _worker.synthesize(text, voice, rate)
    return to_pcm16(utt.audio), utt.word_starts, utt.interpolated


def synthesis_pool(config: SpeechConfig) -> ProcessPoolExecutor:
    """Worker processes for :func:`build_speech_split` (reuse one across splits: each
    worker takes about a second to start)."""
    # spawn, not fork: the parent may hold threads (torch) that fork would copy half-way
    ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(config.workers, ctx, _init_worker, (config.sample_rate,))


def _synthesize_all(
    jobs: list[tuple[str, str, int]], config: SpeechConfig, pool: ProcessPoolExecutor | None
) -> Iterator[tuple]:
    if config.workers == 1 or len(jobs) <= config.chunksize:
        _init_worker(config.sample_rate)
        yield from map(_synthesize_task, jobs)
    elif pool is not None:
        yield from pool.map(_synthesize_task, jobs, chunksize=config.chunksize)
    else:
        with synthesis_pool(config) as own:
            yield from own.map(_synthesize_task, jobs, chunksize=config.chunksize)


def _segment_line(duration: float, offset: float, speaker: str, wav: str) -> str:
    return (
        f"- {{duration: {duration:.6f}, offset: {offset:.6f}, speaker_id: {speaker}, wav: {wav}}}\n"
    )


def build_speech_split(
    records: Sequence[dict],
    folder: str | Path,
    split: str,
    langs: tuple[str, str] = ("src", "tgt"),
    config: SpeechConfig | None = None,
    progress: bool = True,
    pool: ProcessPoolExecutor | None = None,
) -> tuple[list[Path], dict]:
    """Synthesize ``records`` (dicts with ``id``, ``source``, ``reference``; other fields are
    kept) into long-form streams under ``folder``; returns the files written and stats."""
    from tqdm.auto import tqdm

    config = config or SpeechConfig()
    folder = Path(folder)
    if not records:
        raise ConfigError(f"no sentences to synthesize for split {split!r}")
    check = Espeak(config.sample_rate)  # bad voices and rates fail here, not in a worker
    for voice in config.voices:
        for rate in config.rates:
            check.synthesize("a", voice, rate)
    rng = random.Random(f"speech:{config.seed}:{split}")  # str seeds hash with sha512: stable
    plan = [
        (rng.choice(config.voices), rng.choice(config.rates), rng.uniform(*config.pause))
        for _ in records
    ]
    jobs = [(r["source"], voice, rate) for r, (voice, rate, _) in zip(records, plan)]
    sr = config.sample_rate
    stream_len = round(config.stream_minutes * 60 * sr)

    paths: list[Path] = []
    lines: list[dict] = []
    segments: list[str] = []
    pieces: list[np.ndarray] = []
    filled = 0  # samples in the open stream
    words = untimed = 0
    t0 = time.perf_counter()

    def close_stream() -> None:
        nonlocal pieces, filled
        paths.append(
            write_audio(
                folder / "wav" / f"{split}_{len(paths):03d}.wav", np.concatenate(pieces), sr
            )
        )
        pieces, filled = [], 0

    bar = tqdm(
        total=len(jobs), desc=f"speech {folder.name}/{split}", unit="sent", disable=not progress
    )
    for record, (voice, rate, pause), (audio, starts, interp) in zip(
        records, plan, _synthesize_all(jobs, config, pool)
    ):
        if filled:
            gap = round(pause * sr)
            pieces.append(np.zeros(gap, np.int16))
            filled += gap
        wav = f"{split}_{len(paths):03d}.wav"
        offset, duration = filled / sr, len(audio) / sr
        pieces.append(audio)
        filled += len(audio)
        segments.append(_segment_line(duration, offset, f"{voice}@{rate}", wav))
        extra = {k: v for k, v in record.items() if k not in ("id", "source", "reference")}
        lines.append({
            "id": record["id"], "source": record["source"], "reference": record["reference"], **extra,
            "wav": wav, "offset": round(offset, 6), "duration": round(duration, 6),
            "voice": voice, "rate": rate, "word_starts": starts, "interpolated": interp,
        })  # fmt: skip
        words += len(starts)
        untimed += len(interp)
        bar.update()
        if filled >= stream_len:
            close_stream()
    if pieces:
        close_stream()
    bar.close()
    elapsed = time.perf_counter() - t0
    src, tgt = langs
    paths += [
        atomic_write_text(folder / f"{split}.yaml", "".join(segments)),
        atomic_write_text(folder / f"{split}.{src}", "".join(r["source"] + "\n" for r in lines)),
        atomic_write_text(folder / f"{split}.{tgt}", "".join(r["reference"] + "\n" for r in lines)),
        atomic_write_text(
            folder / f"{split}.jsonl",
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines),
        ),
    ]
    hours = sum(r["duration"] for r in lines) / 3600
    stats = {
        "utterances": len(lines),
        "streams": sum(1 for p in paths if p.suffix == ".wav"),
        "speech_hours": round(hours, 3),
        "words": words,
        "interpolated_words": untimed,
        "sentences_per_second": round(len(lines) / elapsed, 1),
    }
    return paths, stats


def build_speech(
    out: str | Path,
    seed: int = 0,
    reorder: float | None = None,
    synthetic_sizes: dict[str, int] | None = None,
    bible: bool = True,
    bible_sizes: dict[str, int] | None = None,
    config: SpeechConfig | None = None,
    progress: bool = True,
    lengths: tuple[int, int] = (4, 30),
    words_per_class: int | None = None,
) -> list[Path]:
    """Source speech for the bundled corpora under ``out/speech``: the synthetic pair (the
    first sentences of each split that ``simulpo data build --seed SEED`` writes, source
    lengths in ``lengths`` as there; ``words_per_class``: a smaller vocabulary, see
    :meth:`~simulpo.data.synthetic.SyntheticGrammar.sub_language`) and, with ``bible``,
    the first verses of each Bible split (consecutive verses: a reading)."""
    from simulpo.data.synthetic import DEFAULT_REORDER, DEFAULT_SPLITS, generate_splits

    config = config or SpeechConfig()
    out = Path(out) / "speech"
    reorder = DEFAULT_REORDER if reorder is None else reorder
    sizes = dict(DEFAULT_SYNTHETIC_SIZES if synthetic_sizes is None else synthetic_sizes)
    # test and dev are drawn first at their text-corpus sizes (they decide which sentences
    # train may take), then each split's first sentences: the ids of `simulpo data build`
    full = {k: max(n, sizes.get(k, 0)) for k, n in DEFAULT_SPLITS.items()}
    full["train"] = sizes.get("train", 0)
    text = generate_splits(
        seed, full, reorder, *lengths, words_per_class=words_per_class
    )  # fmt: skip
    corpora: dict[str, tuple[dict[str, list[dict]], tuple[str, str]]] = {
        "synthetic": (
            {k: [p.to_dict() for p in text[k][:n]] for k, n in sizes.items()},
            ("src", "tgt"),
        )
    }
    if bible:
        from simulpo.data.bible import load_verse_pairs, split_by_book

        verses = split_by_book(load_verse_pairs())
        bsizes = dict(DEFAULT_BIBLE_SIZES if bible_sizes is None else bible_sizes)
        corpora["bible"] = (
            {
                k: [
                    {"id": v.id, "source": v.english, "reference": v.spanish} for v in verses[k][:n]
                ]
                for k, n in bsizes.items()
            },
            ("en", "es"),
        )
    paths: list[Path] = []
    text_settings = {"text_seed": seed, "reorder": reorder}
    text_settings.update(lengths=lengths, words_per_class=words_per_class)
    manifest: dict = {"settings": {**asdict(config), **text_settings}}
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(synthesis_pool(config)) if config.workers > 1 else None
        for name, (splits, langs) in corpora.items():
            manifest[name] = {}
            for split, records in splits.items():
                if not records:
                    continue
                files, manifest[name][split] = build_speech_split(
                    records, out / name, split, langs, config, progress, pool
                )
                paths += files
    paths.append(atomic_write_json(out / "manifest.json", manifest))
    log.info("Built source speech for %s under %s.", ", ".join(corpora), out)
    return paths


# ------------------------------------------------------------------------------ reading


def read_segments(path: str | Path) -> list[dict]:
    """A MuST-C-style segment file: a YAML list of ``{wav, offset, duration, ...}``."""
    import yaml

    path = Path(path)
    try:
        segments = yaml.safe_load(read_text(path))
    except FileNotFoundError:
        raise SimulpoError(f"{path}: no such file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise InputError(path, f"not a YAML segment file ({err})") from None
    if not isinstance(segments, list):
        raise InputError(path, "a segment file is a YAML list of {wav, offset, duration} entries")
    for i, seg in enumerate(segments, 1):
        ok = isinstance(seg, dict) and isinstance(seg.get("wav"), str)
        ok = ok and all(isinstance(seg.get(k), (int, float)) for k in ("offset", "duration"))
        if not ok or seg["offset"] < 0 or seg["duration"] <= 0:
            raise InputError(
                path, f"entry {i} needs wav (a name), offset >= 0 and duration > 0 (seconds)"
            )
    return segments


def load_speech_split(folder: str | Path, split: str) -> list[SpeechUtterance]:
    """The utterances of ``<folder>/<split>.jsonl``, their streams resolved under ``<folder>/wav``."""
    folder = Path(folder)
    path = folder / f"{split}.jsonl"
    if not path.exists():
        raise SimulpoError(f"{path}: no such file (build it with `simulpo data speech`)")
    utterances = []
    known = {f.name for f in SpeechUtterance.__dataclass_fields__.values()}
    for i, line in enumerate(read_text(path).splitlines(), 1):
        try:
            rec = json.loads(line)
            fields = {k: rec.pop(k) for k in list(rec) if k in known and k != "extra"}
            fields["wav"] = folder / "wav" / fields["wav"]
            utt = SpeechUtterance(**fields, extra=rec)
        except (json.JSONDecodeError, TypeError, KeyError) as err:
            raise InputError(path, f"not a speech utterance record ({err})", line=i) from None
        if len(utt.word_starts) != len(utt.source.split()):
            raise InputError(path, "word_starts must hold one time per source word", line=i)
        utterances.append(utt)
    return utterances


def parse_sizes(text: str) -> dict[str, int]:
    """``"train=2000,dev=200,test=200"`` → ``{"train": 2000, "dev": 200, "test": 200}``."""
    sizes: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, n = item.partition("=")
        if name not in ("train", "dev", "test") or not n.strip().isdigit():
            raise ConfigError(f"bad split size {item!r}: use e.g. train=2000,dev=200,test=200")
        sizes[name] = int(n)
    return sizes

import json
from itertools import pairwise

import numpy as np
import pytest
import yaml

from simulpo.cli import main
from simulpo.data.audio import audio_info, read_audio
from simulpo.data.build import build_all
from simulpo.data.speech import (
    Espeak,
    SpeechConfig,
    build_speech,
    build_speech_split,
    load_speech_split,
    parse_sizes,
    read_segments,
    word_starts,
)
from simulpo.errors import ConfigError, InputError

# --- word timings from WORD events (pure) ---------------------------------------------


def test_a_merged_word_shares_its_span_by_character_length():
    # espeak reads "does not" as one entry: one event for both words
    starts, interpolated = word_starts("does not see", [(0, 0), (9, 300)], end_ms=500)
    assert interpolated == [1]
    assert starts == [0, round(300 * 4 / 7), 300]  # "does" has 4 of the 7 characters


def test_untimed_words_at_the_edges():
    # an untimed first word starts at 0; an untimed last one shares the span up to the end
    assert word_starts("a cat", [(2, 100)], end_ms=400) == ([0, 100], [0])
    starts, interpolated = word_starts("the cat of the", [(0, 0), (4, 100), (8, 250)], end_ms=400)
    assert (starts, interpolated) == ([0, 100, 250, 250 + round(150 * 2 / 5)], [3])
    assert word_starts("ab cd", [], end_ms=400) == ([0, 200], [0, 1])


def test_stray_and_inner_events_do_not_move_a_word():
    # a second event inside a token ("3:16" is read as two numbers) keeps the first;
    # an event pointing back to an earlier word (after "mr.") is ignored
    assert word_starts("3:16 said", [(0, 0), (2, 230), (5, 700)], 900)[0] == [0, 700]
    assert word_starts("mr. smith said", [(0, 0), (4, 200), (0, 350), (10, 400)], 900)[0] == [
        0,
        200,
        400,
    ]


# --- the synthesizer ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def espeak():
    return Espeak()


def test_synthesis_is_16k_mono_with_one_start_per_word(espeak):
    text = "anna gives the book to a friend of the old king"
    utt = espeak.synthesize(text, "en-us", 175)
    assert utt.sample_rate == 16000 and utt.audio.dtype == np.float32 and utt.audio.ndim == 1
    assert 0.5 < np.abs(utt.audio).max() <= 1.0
    words = text.split()
    assert len(utt.word_starts) == len(words) and utt.word_starts[0] == 0
    assert all(a < b for a, b in pairwise(utt.word_starts))
    assert utt.word_starts[-1] < utt.duration_ms
    # "of the" is one dictionary entry: "the" gets no event and is interpolated
    k = words.index("of") + 1
    assert k in utt.interpolated
    of, old = utt.word_starts[k - 1], utt.word_starts[k + 1]
    assert abs(utt.word_starts[k] - (of + (old - of) * 2 / 5)) <= 1


@pytest.mark.parametrize("voice", ["en-us", "en+f2"])
def test_word_starts_sit_on_the_audio_timeline(espeak, voice):
    # independent truth from the audio itself: the comma makes a pause, and the word after
    # it must start where speech resumes
    utt = espeak.synthesize("the small cat sleeps, but the big dog runs", voice, 175)
    frames = np.abs(utt.audio[: len(utt.audio) // 160 * 160]).reshape(-1, 160).max(axis=1)
    quiet = np.concatenate([[0], frames < 0.01, [0]]).astype(int)  # 10 ms frames
    starts, ends = np.flatnonzero(np.diff(quiet) == 1), np.flatnonzero(np.diff(quiet) == -1)
    inner = [(s, e) for s, e in zip(starts, ends) if s > 0 and e < len(frames)]
    pause_start, pause_end = max(inner, key=lambda run: run[1] - run[0])  # the comma's pause
    assert pause_end - pause_start >= 8, "no pause at the comma"
    assert abs(utt.word_starts[4] - pause_end * 10) <= 40  # "but" starts as speech resumes


def test_a_faster_rate_is_shorter(espeak):
    slow = espeak.synthesize("the big dog sees a small cat", "en", 150)
    fast = espeak.synthesize("the big dog sees a small cat", "en", 225)
    assert fast.duration_ms < 0.8 * slow.duration_ms
    assert fast.word_starts[-1] < 0.8 * slow.word_starts[-1]


def test_bad_synthesis_requests(espeak):
    with pytest.raises(ConfigError, match="voice 'xx-nope'"):
        espeak.synthesize("a dog", "xx-nope")
    with pytest.raises(ConfigError, match="empty"):
        espeak.synthesize("  ")
    with pytest.raises(ConfigError, match="rate"):
        espeak.synthesize("a dog", "en-us", 20)


# --- long-form recordings ---------------------------------------------------------------

RECORDS = [
    {"id": f"s{i}", "source": src, "reference": src.upper(), "alignment": "0-0"}
    for i, src in enumerate(
        [
            "the big dog does not see a small cat",
            "anna sings",
            "a friend of the old king reads the book in the garden",
            "tom runs",
            "the red bird flies over the river",
        ]
    )
]


def test_long_form_split_layout(tmp_path):
    config = SpeechConfig(stream_minutes=0.12, workers=1, seed=3)
    _, stats = build_speech_split(RECORDS, tmp_path, "test", ("src", "tgt"), config, progress=False)
    segments = read_segments(tmp_path / "test.yaml")
    utts = load_speech_split(tmp_path, "test")
    assert len(segments) == len(utts) == len(RECORDS) == stats["utterances"]
    assert (tmp_path / "test.src").read_text().splitlines() == [r["source"] for r in RECORDS]
    assert (tmp_path / "test.tgt").read_text().splitlines() == [r["reference"] for r in RECORDS]
    assert stats["streams"] >= 2 and stats["words"] == sum(
        len(r["source"].split()) for r in RECORDS
    )

    by_wav: dict[str, list[dict]] = {}
    for seg, utt, record in zip(segments, utts, RECORDS):
        assert (seg["wav"], seg["offset"], seg["duration"]) == (
            utt.wav.name,
            utt.offset,
            utt.duration,
        )
        assert utt.id == record["id"] and utt.extra == {"alignment": "0-0"}
        assert f"{utt.voice}@{utt.rate}" == seg["speaker_id"] and utt.voice in config.voices
        assert utt.word_starts[-1] < utt.duration * 1000
        assert len(utt.audio()) == round(utt.duration * 16000)
        by_wav.setdefault(seg["wav"], []).append(seg)
    for wav, segs in by_wav.items():
        frames, rate, channels = audio_info(tmp_path / "wav" / wav)
        assert (rate, channels) == (16000, 1) and segs[0]["offset"] == 0
        assert segs[-1]["offset"] + segs[-1]["duration"] == pytest.approx(frames / rate, abs=1e-5)
        audio = read_audio(tmp_path / "wav" / wav)
        for a, b in pairwise(segs):
            gap = (a["offset"] + a["duration"], b["offset"])
            assert 0.4 - 1e-4 <= gap[1] - gap[0] <= 1.2 + 1e-4  # the configured pause
            assert not audio[round(gap[0] * 16000) : round(gap[1] * 16000)].any()


def test_parallel_workers_give_the_same_recordings(tmp_path):
    one = build_speech_split(
        RECORDS, tmp_path / "a", "dev", config=SpeechConfig(workers=1), progress=False
    )
    two = build_speech_split(
        RECORDS, tmp_path / "b", "dev", config=SpeechConfig(workers=2, chunksize=2), progress=False
    )
    assert one[1]["utterances"] == two[1]["utterances"]
    a, b = load_speech_split(tmp_path / "a", "dev"), load_speech_split(tmp_path / "b", "dev")
    for x, y in zip(a, b):
        # espeak keeps state across calls (pitch-flutter phase, noise generator): an
        # utterance may differ by a few samples, and its end by a few ms
        assert (x.voice, x.rate) == (y.voice, y.rate)
        assert abs(x.duration - y.duration) < 0.02
        assert max(abs(p - q) for p, q in zip(x.word_starts, y.word_starts)) <= 2


def test_speech_corpus_shares_ids_with_the_text_corpus(tmp_path):
    sizes = {"train": 2, "test": 2}
    config = SpeechConfig(workers=1)
    paths = build_speech(
        tmp_path, seed=5, synthetic_sizes=sizes, bible=False, config=config, progress=False
    )
    assert tmp_path / "speech/manifest.json" in paths
    build_all(
        tmp_path / "text",
        seed=5,
        bible=False,
        synthetic_sizes={"train": 2, "dev": 500, "test": 500},
    )
    for split, n in sizes.items():
        text = [json.loads(line) for line in (tmp_path / f"text/synthetic/{split}.jsonl").open()][
            :n
        ]
        speech = load_speech_split(tmp_path / "speech/synthetic", split)
        assert [(u.id, u.source, u.reference) for u in speech] == [
            (r["id"], r["source"], r["reference"]) for r in text
        ]
    manifest = json.loads((tmp_path / "speech/manifest.json").read_text())
    assert manifest["synthetic"]["test"]["utterances"] == 2 and "dev" not in manifest["synthetic"]


def test_cli_data_speech(tmp_path, capsys):
    args = ["data", "speech", "--output", str(tmp_path), "--sizes", "test=2", "--no-bible"]
    assert (
        main([*args, "--workers", "1", "--no-progress", "--voices", "en-029", "--rates", "190"])
        == 0
    )
    assert "wrote 1 recordings" in capsys.readouterr().out
    assert {u.voice for u in load_speech_split(tmp_path / "speech/synthetic", "test")} == {"en-029"}
    assert main([*args, "--voices", "xx-nope"]) == 2
    assert "voice 'xx-nope'" in capsys.readouterr().err
    assert main([*args, "--rates", "fast"]) == 2


def test_bad_segment_files_and_sizes(tmp_path):
    (tmp_path / "a.yaml").write_text("- {wav: a.wav, offset: 1.0}\n")
    with pytest.raises(InputError, match="entry 1"):
        read_segments(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("- {wav: [unclosed\n")
    with pytest.raises(InputError, match="not a YAML segment file"):
        read_segments(tmp_path / "b.yaml")
    assert yaml.safe_load("- {duration: 1.0, offset: 0.0, speaker_id: en-us+f3@175, wav: x.wav}")
    assert parse_sizes("train=3, test=1") == {"train": 3, "test": 1}
    with pytest.raises(ConfigError):
        parse_sizes("train=lots")

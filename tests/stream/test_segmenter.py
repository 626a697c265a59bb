import numpy as np
import pytest

from simulpo.errors import ConfigError
from simulpo.stream.segmenter import FixedMilliseconds, FixedWords, RandomMerge


def test_fixed_words_chunks_and_ends():
    chunks = FixedWords(2).split(["a", "b", "c", "d", "e"])
    assert [c.content for c in chunks] == [["a", "b"], ["c", "d"], ["e"]]
    assert [c.end for c in chunks] == [2, 4, 5]


def test_fixed_words_empty_source_has_no_chunks():
    assert FixedWords(3).split([]) == []


def test_fixed_milliseconds_matches_simuleval_sample_counting():
    # 10 ms at 16 kHz = ceil(160.0) = 160 samples; 400 samples = 25 ms of audio.
    chunks = FixedMilliseconds(10, 16000).split(np.zeros(400))
    assert [len(c.content) for c in chunks] == [160, 160, 80]
    assert [c.end for c in chunks] == [10.0, 20.0, 25.0]
    # 1 ms at 22050 Hz is 22.05 samples: SimulEval rounds up to 23 per chunk.
    chunks = FixedMilliseconds(1, 22050).split(np.zeros(50))
    assert [len(c.content) for c in chunks] == [23, 23, 4]
    assert chunks[0].end == pytest.approx(23 * 1000 / 22050)


@pytest.mark.parametrize("bad", [0, -1])
def test_fixed_words_rejects_bad_sizes(bad):
    with pytest.raises(ConfigError):
        FixedWords(bad)


def test_random_merge_is_a_partition_with_sizes_in_range():
    words = [f"w{i}" for i in range(200)]
    seg = RandomMerge(FixedWords(1), 1, 12, seed=3)
    seen_sizes = set()
    for _ in range(20):
        chunks = seg.split(words)
        assert [w for c in chunks for w in c.content] == words
        ends = [c.end for c in chunks]
        assert ends == sorted(set(ends)) and ends[-1] == 200
        sizes = [len(c.content) for c in chunks]
        assert all(1 <= s <= 12 for s in sizes)
        seen_sizes.update(sizes[:-1])
    assert seen_sizes == set(range(1, 13))


def test_random_merge_is_deterministic_per_seed():
    words = [str(i) for i in range(50)]
    a = RandomMerge(FixedWords(1), seed=7).split(words)
    b = RandomMerge(FixedWords(1), seed=7).split(words)
    c = RandomMerge(FixedWords(1), seed=8).split(words)
    assert a == b and a != c


def test_random_merge_of_audio_chunks_concatenates_samples():
    audio = np.arange(1000, dtype=np.float32)
    chunks = RandomMerge(FixedMilliseconds(5, 16000), 2, 3, seed=0).split(audio)
    assert np.array_equal(np.concatenate([c.content for c in chunks]), audio)
    assert chunks[-1].end == pytest.approx(1000 / 16)

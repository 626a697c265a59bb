"""Sentence-level quality metrics: chrF, BLEU, and the COMET loading code."""

from __future__ import annotations

import math
import os
import sys
import types

import numpy as np
import pytest

from simulpo.errors import ConfigError
from simulpo.rewards.sentence_quality import Bleu, Chrf, Comet, QualityMetric, build_quality


def test_chrf_scores_each_sentence_on_its_own():
    chrf = build_quality("chrf")
    assert isinstance(chrf, QualityMetric) and chrf.name == "chrF" and chrf.higher_is_better
    s = chrf(["the cat sat .", "", "zzz qqq"], ["the cat sat .", "the cat sat .", "the cat sat ."])
    assert s.dtype == np.float64 and s.shape == (3,)
    assert s[0] == pytest.approx(100.0)  # identical
    assert s[1] == 0.0  # empty hypothesis: the metric's own score for "", chrF gives 0
    assert s[2] == 0.0  # no character in common


def test_chrf_plus_plus_is_chrf_with_word_bigrams():
    assert build_quality("chrF++").name == "chrF++"


def test_sentence_bleu_uses_effective_order():
    # "the cat" vs "the cat sat": unigram and bigram precisions 1 (orders 3-4 left out),
    # brevity penalty exp(1 - 3/2)
    s = build_quality("bleu")(["the cat"], ["the cat sat"])
    assert s[0] == pytest.approx(100 * math.exp(-0.5))


def test_bleu_of_an_empty_hypothesis_is_zero():
    assert Bleu()([""], ["the cat sat"])[0] == 0.0


def test_metrics_refuse_unpaired_inputs():
    with pytest.raises(ValueError, match="pair up"):
        Chrf()(["a", "b"], ["a"])


def test_unknown_spec_names_the_known_ones():
    with pytest.raises(ConfigError, match="chrf"):
        build_quality("meteor")
    with pytest.raises(ConfigError, match="checkpoint path"):
        build_quality("comet:")


def test_comet_needs_an_existing_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="no COMET checkpoint"):
        build_quality(f"comet:{tmp_path / 'missing.ckpt'}")


def test_comet_without_the_extra_says_how_to_install_it(tmp_path, monkeypatch):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "comet", None)  # import comet -> ImportError
    with pytest.raises(ConfigError, match=r"simulpo\[comet\]"):
        build_quality(f"comet:{ckpt}")


def test_comet_loads_the_checkpoint_and_scores_triples(tmp_path, monkeypatch):
    """The loading and scoring code against a stand-in for the ``comet`` package."""
    model_dir = tmp_path / "wmt22-comet-da"
    (model_dir / "checkpoints").mkdir(parents=True)
    (model_dir / "checkpoints" / "model.ckpt").write_bytes(b"")
    seen = {}

    class FakeModel:
        def eval(self):
            seen["eval"] = True

        def predict(self, data, batch_size, gpus, progress_bar):
            seen.update(data=data, batch_size=batch_size, gpus=gpus, progress_bar=progress_bar)
            return types.SimpleNamespace(scores=[0.25 * (i + 1) for i in range(len(data))])

    def load_from_checkpoint(path):
        seen["path"] = path
        return FakeModel()

    monkeypatch.setitem(
        sys.modules, "comet", types.SimpleNamespace(load_from_checkpoint=load_from_checkpoint)
    )
    metric = build_quality(f"comet:{model_dir}")  # a model directory finds its checkpoint
    assert isinstance(metric, Comet) and metric.name == "COMET"
    assert seen["path"] == str(model_dir / "checkpoints" / "model.ckpt") and seen["eval"]
    scores = metric(["hyp a", "hyp b"], ["ref a", "ref b"], ["src a", "src b"])
    np.testing.assert_array_equal(scores, [0.25, 0.5])
    assert seen["data"] == [
        {"src": "src a", "mt": "hyp a", "ref": "ref a"},
        {"src": "src b", "mt": "hyp b", "ref": "ref b"},
    ]
    assert seen["progress_bar"] is False and seen["gpus"] in (0, 1)


def test_real_comet_checkpoint():
    """With ``unbabel-comet`` installed and SIMULPO_COMET_CKPT pointing at a model."""
    pytest.importorskip("comet")
    ckpt = os.environ.get("SIMULPO_COMET_CKPT")
    if not ckpt:
        pytest.skip("set SIMULPO_COMET_CKPT to a local COMET checkpoint to run this test")
    metric = build_quality(f"comet:{ckpt}")
    good, bad = metric(
        ["The cat sits on the mat.", "Banana telephone purple."],
        ["The cat is sitting on the mat."] * 2,
        ["Die Katze sitzt auf der Matte."] * 2,
    )
    assert good > bad


def test_chrf1_weighs_extra_words_like_missing_ones():
    from simulpo.rewards.sentence_quality import build_quality

    ref = "laron yu kasu nunvu"
    longer, shorter = ref + " heke mi", "laron yu"
    chrf, chrf1 = build_quality("chrf"), build_quality("chrf1")
    # beta 2 forgives the two extra words far more than the two missing ones ...
    assert chrf([longer], [ref])[0] > chrf([shorter], [ref])[0] + 10
    # ... character F1 does not favour writing too much.
    assert chrf1([longer], [ref])[0] < chrf([longer], [ref])[0]
    assert chrf1([ref], [ref])[0] == 100.0

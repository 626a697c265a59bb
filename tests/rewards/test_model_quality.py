"""MetricX and the generic QE metric on tiny random models built and saved here.

Nothing is downloaded: the models are random 1-layer mT5 / BERT, the tokenizers
character-level ``tokenizers`` models; the checks are that the loading code reads what is
on disk and that the scores equal a direct forward on the documented input.
"""

from __future__ import annotations

import json
import pickle
import string

import numpy as np
import pytest
from reward_helpers import episode

from simulpo.errors import ConfigError
from simulpo.rewards import ReferenceSpan, RewardConfig, build_quality, build_reward, hpo_reward
from simulpo.rewards.group import zscore
from simulpo.rewards.model_quality import (
    METRICX_SCORE_INDEX,
    SIDECAR,
    MetricX,
    QualityEstimator,
    metricx_input,
)
from simulpo.rewards.sentence_quality import QUALITY_SPECS, QualityMetric

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.usefixtures("one_thread")

CHARS = list(string.ascii_letters + string.digits + " .,:'?!-")
HYPS = ["the cat sleeps .", "a dog", "a cat barks at the sun and more words here .", ""]
REFS = ["the cat sleeps .", "a dog barks at the moon .", "a dog barks at the moon .", "x"]
SRCS = ["s1 s2 s3 s4", "s5 s6", "s5 s6 s7 s8 s9 s10", "s1"]


def char_tokenizer(specials: list[str], single: str, pair: str | None = None, **named):
    """A character-level fast tokenizer with ``specials`` first and a post-processor."""
    from tokenizers import Tokenizer, decoders, models, processors

    vocab = {t: i for i, t in enumerate(specials + CHARS)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=named["unk_token"]))
    tok.decoder = decoders.Fuse()
    used = [t for t in specials if t in single + (pair or "")]
    tok.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(t, vocab[t]) for t in used]
    )
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, **named)


def mt5_like_tokenizer():
    """mT5's conventions: pad 0, ``</s>`` 1 appended to every text, unk 2."""
    return char_tokenizer(
        ["<pad>", "</s>", "<unk>"],
        "$A </s>",
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
    )


def save_mt5(directory, vocab_size: int, score_index: int, with_tokenizer: bool = True):
    torch.manual_seed(0)
    config = transformers.MT5Config(
        vocab_size=vocab_size, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1,
        num_heads=2, relative_attention_num_buckets=8, decoder_start_token_id=0,
        pad_token_id=0, eos_token_id=1, tie_word_embeddings=False,
    )  # fmt: skip
    model = transformers.MT5ForConditionalGeneration(config).eval()
    with torch.no_grad():  # spread the random scores over (0, 25) instead of mostly < 0
        model.lm_head.weight[score_index].mul_(-3.0)
    model.save_pretrained(directory)
    if with_tokenizer:
        mt5_like_tokenizer().save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def mx24(tmp_path_factory):
    """A MetricX-24-like model with mT5's vocabulary size, named as on the hub."""
    d = tmp_path_factory.mktemp("models") / "metricx-24-hybrid-tiny-v2p6"
    return save_mt5(d, 250112, METRICX_SCORE_INDEX)


@pytest.fixture(scope="module")
def mx_small(tmp_path_factory):
    """A small-vocabulary model whose sidecar makes it MetricX-23-QE reading entry 70."""
    d = save_mt5(tmp_path_factory.mktemp("models") / "tiny", 80, 70)
    (d / SIDECAR).write_text(json.dumps({"version": 23, "qe": True, "score_index": 70}))
    return d


def direct_metricx(directory, texts, index):
    """MetricX by hand: one input at a time, ``</s>`` dropped, step-0 logit, clipped."""
    model = transformers.MT5ForConditionalGeneration.from_pretrained(directory).eval()
    tok = transformers.AutoTokenizer.from_pretrained(directory)
    raw = []
    with torch.no_grad():
        for text in texts:
            ids = tok(text)["input_ids"]
            assert ids[-1] == tok.eos_token_id
            logits = model(
                input_ids=torch.tensor([ids[:-1]]), decoder_input_ids=torch.tensor([[0]])
            ).logits
            raw.append(float(logits[0, 0, index]))
    return np.array(raw), np.clip(raw, 0.0, 25.0)


# ------------------------------------------------------------------------------ MetricX


def test_metricx24_equals_a_direct_forward_on_the_documented_input(mx24):
    metric = build_quality(f"metricx24:{mx24}")
    assert isinstance(metric, QualityMetric) and metric.name == "MetricX-24"
    assert not metric.higher_is_better and metric.worst == 25.0 and metric.threshold == 10.0
    assert metric.score_index == METRICX_SCORE_INDEX == 250089
    assert metric.max_input_length == 1536
    texts = [f"source: {s} candidate: {h} reference: {r}" for h, r, s in zip(HYPS, REFS, SRCS)]
    assert metric.inputs(HYPS, REFS, SRCS) == texts
    raw, expected = direct_metricx(mx24, texts, METRICX_SCORE_INDEX)
    assert ((raw > 0) & (raw < 25)).sum() >= 2  # not trivially clipped
    scores = metric(HYPS, REFS, SRCS)
    assert scores.dtype == np.float64 and scores.shape == (4,)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    assert len(set(np.round(scores, 4))) == 4  # the inputs differ, so do the scores


def test_batching_and_order_do_not_change_the_scores(mx24):
    one = MetricX(mx24, 24, batch_size=1)(HYPS, REFS, SRCS)
    three = MetricX(mx24, 24, batch_size=3)(HYPS, REFS, SRCS)
    np.testing.assert_allclose(three, one, rtol=1e-5, atol=1e-5)
    rev = MetricX(mx24, 24)(HYPS[::-1], REFS[::-1], SRCS[::-1])
    np.testing.assert_allclose(rev[::-1], one, rtol=1e-5, atol=1e-5)


def test_scores_are_clipped_to_0_25(mx24):
    metric = MetricX(mx24)
    before = metric(HYPS, REFS, SRCS)
    assert (before > 0.1).all()  # so that a large factor pushes every logit out of range
    row = metric.model.lm_head.weight[METRICX_SCORE_INDEX]
    with torch.no_grad():
        row.mul_(1000.0)
    np.testing.assert_array_equal(metric(HYPS, REFS, SRCS), 25.0)
    with torch.no_grad():
        row.mul_(-1.0)
    np.testing.assert_array_equal(metric(HYPS, REFS, SRCS), 0.0)


def test_versions_and_modes_come_from_the_spec_the_sidecar_or_the_name(mx24, mx_small):
    auto = build_quality(f"metricx:{mx24}")
    assert (auto.version, auto.qe, auto.name) == (24, False, "MetricX-24")
    qe = build_quality(f"metricx-qe:{mx24}")
    assert (qe.version, qe.qe) == (24, True)
    assert qe.inputs(["h"], None, ["s"]) == ["source: s candidate: h"]
    # the sidecar's version, mode and score entry; an explicit spec wins over its mode
    m23 = build_quality(f"metricx:{mx_small}")
    assert (m23.version, m23.qe, m23.score_index, m23.name) == (23, True, 70, "MetricX-23-QE")
    assert m23.max_input_length == 1024
    ref23 = build_quality(f"METRICX23:{mx_small}")
    assert not ref23.qe and ref23.inputs(["h"], ["r"]) == ["candidate: h reference: r"]
    assert metricx_input(23, True, "h", None, "s") == "candidate: h source: s"
    assert metricx_input(24, False, "h", "r", None) == "source:  candidate: h reference: r"
    assert {"metricx:PATH", "metricx24-qe:PATH", "qe:PATH"} <= set(QUALITY_SPECS)


def test_metricx23_qe_with_a_small_vocabulary_equals_a_direct_forward(mx_small):
    metric = build_quality(f"metricx23-qe:{mx_small}")
    texts = [f"candidate: {h} source: {s}" for h, s in zip(HYPS, SRCS)]
    _, expected = direct_metricx(mx_small, texts, 70)
    np.testing.assert_allclose(metric(HYPS, REFS, SRCS), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(metric(HYPS, None, SRCS), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="needs the sources"):
        metric(HYPS, REFS, None)
    with pytest.raises(ValueError, match="needs the references"):
        build_quality(f"metricx23:{mx_small}")(HYPS, None, SRCS)
    assert metric([], [], []).shape == (0,)
    again = pickle.loads(pickle.dumps(metric))  # a RewardFunction travels to workers
    np.testing.assert_allclose(again(HYPS, None, SRCS), expected, rtol=1e-5, atol=1e-5)


def test_truncation_keeps_max_input_length_tokens(mx24):
    metric = MetricX(mx24, max_input_length=12)
    (ids,) = metric.encode(["source: a long source candidate: x reference: y"])
    assert len(ids) == 11  # 12 with the final </s>, which is dropped


def test_metricx_errors_are_clear(tmp_path, mx24, mx_small):
    with pytest.raises(ConfigError, match="does not exist"):
        build_quality(f"metricx24:{tmp_path / 'missing'}")
    with pytest.raises(ConfigError, match="model directory"):
        build_quality(f"metricx24:{tmp_path}")  # no config.json
    with pytest.raises(ConfigError, match="needs a model directory"):
        build_quality("metricx24:")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text((mx24 / "config.json").read_text())
    with pytest.raises(ConfigError, match="cannot tell which MetricX"):
        build_quality(f"metricx:{plain}")
    with pytest.raises(ConfigError, match="mT5 tokenizer"):
        build_quality(f"metricx24:{plain}")
    with pytest.raises(ConfigError, match="outside the model's vocabulary"):
        MetricX(mx_small, score_index=80)
    # a tokenizer kept elsewhere, named (relative to the model) in the sidecar
    shared = tmp_path / "mt5-tokenizer"
    mt5_like_tokenizer().save_pretrained(shared)
    (plain / SIDECAR).write_text(json.dumps({"version": 24, "tokenizer": "../mt5-tokenizer"}))
    (plain / "model.safetensors").write_bytes((mx24 / "model.safetensors").read_bytes())
    tok = build_quality(f"metricx:{plain}").tokenizer
    assert tok("a")["input_ids"] == [tok.convert_tokens_to_ids("a"), tok.eos_token_id]
    bad = save_mt5(tmp_path / "bad", 80, 70, with_tokenizer=False)
    (bad / SIDECAR).write_text(json.dumps({"verison": 23}))
    with pytest.raises(ConfigError, match="unknown keys"):
        build_quality(f"metricx23:{bad}")


# --------------------------------------------------------------------- MetricX in HPO

SRC = " ".join(f"s{i}" for i in range(1, 11))
S1, S2 = "the cat sleeps .", "a dog barks at the moon ."
SEGMENTS = [ReferenceSpan(0, 4, S1, "s1 s2 s3 s4"), ReferenceSpan(4, 10, S2, "s5 s6 s7 s8 s9 s10")]
GOOD = ["the cat", "sleeps .", "a dog", "barks at the", "moon ."]
POOR = ["the cat", "sleeps .", "a cat", "barks at the", "sun ."]
HALF = ["the cat", "sleeps ."]


def test_metricx_plugs_into_hpo_with_lower_is_better(mx24):
    metric = build_quality(f"metricx24:{mx24}")
    group = [episode(SRC, p, None, m=2, index=i) for i, p in enumerate([GOOD, POOR, HALF])]
    s1, s2 = SEGMENTS[0].source, SEGMENTS[1].source
    # the aligned beads: S1 and S2 (GOOD), S1 and the poor sentence (POOR), S1 (HALF)
    scores = metric(
        [S1, S2, "a cat barks at the sun .", S1], [S1, S2, S2, S1], [s1, s2, s2, s1]
    ).tolist()
    thr = float(np.median(scores[:3]))
    res = hpo_reward(group, SEGMENTS, quality=metric, threshold=thr)
    q = np.array([(scores[0] + scores[1]) / 2, (scores[0] + scores[2]) / 2, (scores[3] + 25.0) / 2])
    np.testing.assert_allclose(res.quality, q, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res.quality_norm, zscore(-res.quality), atol=1e-9)  # lower wins
    assert np.argmax(res.quality_norm) == np.argmin(res.quality)
    half_missing = res.details[2][1]
    assert half_missing.quality == 25.0 and not half_missing.passed  # unaligned: the worst
    for beads in res.details:
        for b in beads[:2]:
            if b.ref_segments and b.hyp_sentences:
                assert b.passed == (b.quality <= thr)
    # and through the configured reward: the gate defaults to the metric's threshold
    reward = build_reward(RewardConfig(kind="hpo", quality=f"metricx24:{mx24}"))
    assert reward.threshold == 10.0 and reward.metric.name == "MetricX-24"
    assert np.isfinite(reward(group, SEGMENTS).rewards).all()


# ----------------------------------------------------------------------------------- QE


def save_bert_qe(directory, num_labels: int = 1, with_tokenizer: bool = True):
    torch.manual_seed(1)
    tok = char_tokenizer(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]"],
        "[CLS] $A [SEP]",
        "[CLS] $A [SEP] $B:1 [SEP]:1",
        pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
    )  # fmt: skip
    config = transformers.BertConfig(
        vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=128, num_labels=num_labels,
    )  # fmt: skip
    transformers.BertForSequenceClassification(config).eval().save_pretrained(directory)
    if with_tokenizer:
        tok.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def qe_dir(tmp_path_factory):
    return save_bert_qe(tmp_path_factory.mktemp("models") / "bert-qe")


def test_qe_equals_a_direct_forward_on_the_pair_and_ignores_references(qe_dir, caplog):
    with caplog.at_level("WARNING"):
        metric = build_quality(f"qe:{qe_dir}")
    assert "COMET-like" in caplog.text  # the assumed scale is announced
    assert isinstance(metric, QualityEstimator) and isinstance(metric, QualityMetric)
    assert metric.higher_is_better and metric.worst == 0.0 and metric.threshold == 0.6
    model = transformers.BertForSequenceClassification.from_pretrained(qe_dir).eval()
    tok = transformers.AutoTokenizer.from_pretrained(qe_dir)
    with torch.no_grad():
        # lists: tok("s", "") would drop an empty second text and encode no pair
        pairs = [tok([s], [h], return_tensors="pt") for s, h in zip(SRCS, HYPS)]
        expected = [float(model(**enc).logits[0, 0]) for enc in pairs]
    scores = metric(HYPS, REFS, SRCS)
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(metric(HYPS, ["other"] * 4, SRCS), scores, rtol=1e-6)
    np.testing.assert_allclose(metric(HYPS, None, SRCS), scores, rtol=1e-6)
    one = QualityEstimator(qe_dir, batch_size=1)(HYPS, REFS, SRCS)
    np.testing.assert_allclose(one, scores, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="needs the sources"):
        metric(HYPS, REFS, None)


def test_qe_scale_comes_from_the_sidecar(tmp_path):
    d = save_bert_qe(tmp_path / "hter")
    (d / SIDECAR).write_text(
        json.dumps({"name": "HTER", "higher_is_better": False, "worst": 1.0, "threshold": 0.3})
    )
    metric = build_quality(f"qe:{d}")
    assert (metric.name, metric.higher_is_better, metric.worst, metric.threshold) == (
        "HTER", False, 1.0, 0.3,
    )  # fmt: skip
    (d / SIDECAR).write_text(json.dumps({"higher_is_better": False}))
    with pytest.raises(ConfigError, match="worst score and threshold"):
        build_quality(f"qe:{d}")


def test_qe_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_quality(f"qe:{tmp_path / 'missing'}")
    with pytest.raises(ConfigError, match="not a QE model directory"):
        build_quality(f"qe:{tmp_path}")
    with pytest.raises(ConfigError, match="3 labels"):
        build_quality(f"qe:{save_bert_qe(tmp_path / 'cls', num_labels=3)}")
    with pytest.raises(ConfigError, match="tokenizer"):
        build_quality(f"qe:{save_bert_qe(tmp_path / 'notok', with_tokenizer=False)}")
    speech = save_bert_qe(tmp_path / "speech")  # a tokenizer and a config of no such model
    transformers.WhisperConfig(d_model=8, num_labels=1).to_json_file(speech / "config.json")
    with pytest.raises(ConfigError, match="as a sequence-classification model"):
        build_quality(f"qe:{speech}")
    with pytest.raises(ConfigError, match="not a MetricX model"):
        build_quality(f"metricx24:{save_bert_qe(tmp_path / 'bert')}")

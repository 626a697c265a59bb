"""Model-based sentence quality metrics that run on plain ``transformers`` + ``torch``:
Google's MetricX (23 and 24) and a generic reference-free quality estimator (QE).

Both load a model the user already has on disk (nothing is downloaded: every load is
``local_files_only``), once, when the metric is built; they run batched under
``torch.inference_mode``, on the GPU when torch sees one.
:func:`~simulpo.rewards.sentence_quality.build_quality` builds them from these specs:

``metricx24:DIR``, ``metricx24-qe:DIR``, ``metricx23:DIR``, ``metricx23-qe:DIR``
    a MetricX model directory (``config.json`` + weights, e.g. a local copy of
    ``google/metricx-24-hybrid-large-v2p6``) in the given mode. MetricX-24 models are
    hybrid: ``metricx24:`` scores with the reference, ``metricx24-qe:`` without it.
``metricx:DIR`` / ``metricx-qe:DIR``
    the same with the version (and, for ``metricx:``, the mode) taken from ``DIR``: first
    the ``"version"`` and ``"qe"`` keys of ``DIR/simulpo_quality.json``, else the last
    path component that names a MetricX model (``metricx-24-hybrid-large-v2p6``,
    ``models--google--metricx-23-qe-xl-v2p0``: a ``qe`` word in it means QE). Neither: a
    ConfigError asking for an explicit spec.
``qe:DIR``
    any Hugging Face sequence-classification checkpoint with one regression output
    (``num_labels=1``) that scores a ``(source, hypothesis)`` text pair.

**MetricX**, as google-research/metricx computes it: the input is one string,

- MetricX-24: ``"source: {src} candidate: {hyp} reference: {ref}"``, QE
  ``"source: {src} candidate: {hyp}"`` (as its ``predict.py --qe`` builds it; its README
  speaks of an empty reference instead, which would add a trailing ``" reference: "``);
- MetricX-23: ``"candidate: {hyp} reference: {ref}"``, QE ``"candidate: {hyp} source: {src}"``;

tokenized with the mT5 tokenizer (truncated at ``max_input_length``: 1536 for 24, 1024 for
23, the lengths the models were trained with) and stripped of its final ``</s>``. The model
is an mT5 encoder-decoder (loaded as ``MT5ForConditionalGeneration``: MetricX's
``MT5ForRegression`` has the same weights); one decoder step from token 0 gives the score,
the logit of vocabulary entry ``score_index`` (250089, ``<extra_id_10>``), clipped to
[0, 25]. It is an MQM-like *error* score: lower is better, 25 is the worst. MetricX-24 with
no sources uses ``""`` (its README allows that); the QE modes and MetricX-23-QE need them.
The default gate :attr:`MetricX.threshold` = 10 is rough (about two major errors); tune it.

MetricX repositories ship no tokenizer: put the mT5 one in the model directory (all mT5
sizes share it; where a hub is reachable:
``AutoTokenizer.from_pretrained("google/mt5-xl").save_pretrained(DIR)``), or name a
tokenizer directory in ``simulpo_quality.json``.

**QE** (:class:`QualityEstimator`): ``tokenizer(source, hypothesis)`` as a text pair
(truncated to ``max_input_length``, default the tokenizer's ``model_max_length`` or 512),
one forward, the score is the raw output ``logits[:, 0]`` (no sigmoid: the regression
value the model was trained to predict). References are ignored; sources are required.
Its scale is not known from the checkpoint, so the defaults assume a COMET-like 0–1 score
where higher is better (``worst`` 0, ``threshold`` 0.6, as
:class:`~simulpo.rewards.sentence_quality.Comet`), and a warning says so; a model on another scale
states it in the sidecar (a lower-is-better one must give ``worst`` and ``threshold``).

**The sidecar** ``DIR/simulpo_quality.json`` (optional; one JSON object, unknown keys are
an error) configures what the checkpoint cannot say, without editing its ``config.json``.
MetricX keys: ``version`` (23 or 24), ``qe`` (bool), ``score_index``, ``max_input_length``,
``tokenizer`` (a directory; relative paths are relative to ``DIR``), ``threshold``,
``batch_size``. QE keys: ``name``, ``higher_is_better``, ``worst``, ``threshold``,
``max_input_length``, ``tokenizer``, ``batch_size``. A spec that names the version
(``metricx23:``, ``metricx24-qe:``) fixes the mode too and wins over the sidecar's.
Example: ``{"version": 24, "tokenizer": "../mt5-tokenizer", "threshold": 8}``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simulpo.errors import ConfigError

__all__ = [
    "METRICX_SCORE_INDEX",
    "MODEL_QUALITY_SPECS",
    "SIDECAR",
    "MetricX",
    "QualityEstimator",
    "build_model_quality",
    "metricx_input",
]

logger = logging.getLogger(__name__)

#: the optional per-model settings file read from the model directory
SIDECAR = "simulpo_quality.json"
#: the vocabulary entry whose step-0 logit is MetricX's score (``<extra_id_10>`` of mT5)
METRICX_SCORE_INDEX = 250089
#: the input lengths MetricX-23 and -24 were trained with
METRICX_MAX_INPUT_LENGTH = {23: 1024, 24: 1536}
#: the spec prefixes :func:`build_model_quality` understands, each followed by ``:DIR``
MODEL_QUALITY_SPECS = (
    "metricx:PATH",
    "metricx-qe:PATH",
    "metricx24:PATH",
    "metricx24-qe:PATH",
    "metricx23:PATH",
    "metricx23-qe:PATH",
    "qe:PATH",
)

_METRICX_KEYS = {
    "version",
    "qe",
    "score_index",
    "max_input_length",
    "tokenizer",
    "threshold",
    "batch_size",
}
_QE_KEYS = {
    "name",
    "higher_is_better",
    "worst",
    "threshold",
    "max_input_length",
    "tokenizer",
    "batch_size",
}
#: files of which a saved tokenizer has at least one
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    "vocab.txt",
    "vocab.json",
)
_SPEC = re.compile(r"^(metricx(?:-?(23|24))?(-qe)?|qe):(.*)$", re.IGNORECASE | re.DOTALL)
_METRICX_NAME = re.compile(r"metricx[-_]?(23|24)", re.IGNORECASE)
_QE_WORD = re.compile(r"(?:^|[-_.])qe(?:[-_.]|$)", re.IGNORECASE)


# ---------------------------------------------------------------- shared loading helpers


def _model_dir(path: str | Path, what: str, example: str) -> Path:
    """The model directory ``path``, or a ConfigError saying what is missing."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"no {what} model at {p}: the path does not exist (e.g. {example})")
    if not p.is_dir() or not (p / "config.json").is_file():
        raise ConfigError(
            f"{p} is not a {what} model directory: it needs a Hugging Face config.json and "
            f"weights (what save_pretrained writes; e.g. {example})"
        )
    return p


def _sidecar(directory: Path, allowed: set[str]) -> dict[str, Any]:
    """``directory/simulpo_quality.json`` as a dict (empty when absent), keys checked."""
    f = directory / SIDECAR
    if not f.is_file():
        return {}
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{f}: not readable JSON: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{f}: must hold one JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{f}: unknown keys {unknown}; known: {', '.join(sorted(allowed))}")
    return data


def _side_path(directory: Path, value: Any) -> Path | None:
    """A path from the sidecar: relative ones are relative to the model directory."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{directory / SIDECAR}: tokenizer must be a path, got {value!r}")
    return directory / Path(value).expanduser()


def _load_tokenizer(directory: Path, tokenizer: str | Path | None, hint: str) -> Any:
    from transformers import AutoTokenizer

    where = Path(tokenizer).expanduser() if tokenizer is not None else directory
    # checked first: given only a config.json, recent transformers build an *empty*
    # tokenizer of the model's class instead of failing, which would score garbage
    if not any((where / name).is_file() for name in _TOKENIZER_FILES):
        raise ConfigError(
            f"no tokenizer in {where} (none of {', '.join(_TOKENIZER_FILES)}); {hint}"
        )
    try:
        return AutoTokenizer.from_pretrained(str(where), local_files_only=True)
    except Exception as e:  # transformers raises OSError, ValueError, TypeError, ...
        raise ConfigError(
            f"no usable tokenizer in {where} ({type(e).__name__}: {e}); {hint}"
        ) from e


def _device(device: str | None) -> Any:
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _place(model: Any, device: Any) -> Any:
    """``model`` in eval mode on ``device``: float32 on CPU, the stored dtype on a GPU
    unless it is float16 (mT5 overflows in float16; bfloat16 is kept)."""
    import torch

    dtype = model.dtype
    if device.type == "cpu" or dtype == torch.float16:
        dtype = torch.float32
    return model.to(device=device, dtype=dtype).eval()


def _positive_int(value: Any, name: str, where: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: {name} must be a positive integer, got {value!r}")
    return value


def _length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), to pad little."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _check_lengths(hypotheses, references, sources, need_sources: bool, name: str) -> None:
    n = len(hypotheses)
    if references is not None and len(references) != n:
        raise ValueError(f"{n} hypotheses but {len(references)} references; they must pair up")
    if sources is None:
        if need_sources:
            raise ValueError(f"{name} scores (source, hypothesis) pairs: it needs the sources")
    elif len(sources) != n:
        raise ValueError(f"{n} hypotheses but {len(sources)} sources")


# ---------------------------------------------------------------------------- MetricX


def metricx_input(
    version: int, qe: bool, hypothesis: str, reference: str | None, source: str | None
) -> str:
    """The one input string MetricX-``version`` scores (see the module doc)."""
    if version == 24:
        text = f"source: {source or ''} candidate: {hypothesis}"
        return text if qe else f"{text} reference: {reference}"
    if version == 23:
        tail = f" source: {source}" if qe else f" reference: {reference}"
        return f"candidate: {hypothesis}{tail}"
    raise ValueError(f"MetricX version must be 23 or 24, got {version!r}")


def _detect_metricx(directory: Path) -> tuple[int, bool] | None:
    """Version and QE mode from the last path component naming a MetricX model."""
    for part in reversed(directory.expanduser().absolute().parts):
        m = _METRICX_NAME.search(part)
        if m:
            return int(m.group(1)), bool(_QE_WORD.search(part))
    return None


class MetricX:
    """MetricX-23/24 from a local model directory; an error score in [0, 25], lower is better.

    ``version`` (23/24) and ``qe`` None: taken from the sidecar, else from the directory's
    name (see the module doc). ``score_index``, ``max_input_length``, ``tokenizer`` (a
    directory; default the model's own), ``threshold``, ``batch_size`` None: the sidecar's
    value, else MetricX's. ``device`` None: CUDA when available, else CPU.
    """

    higher_is_better = False
    worst = 25.0
    #: the default HPO gate: a rough "about two major errors" level; tune it per setup
    threshold = 10.0
    low, high = 0.0, 25.0  # the clipping range

    def __init__(
        self,
        path: str | Path,
        version: int | None = None,
        qe: bool | None = None,
        *,
        score_index: int | None = None,
        max_input_length: int | None = None,
        tokenizer: str | Path | None = None,
        threshold: float | None = None,
        batch_size: int | None = None,
        device: str | None = None,
    ) -> None:
        directory = _model_dir(path, "MetricX", "metricx24:~/models/metricx-24-hybrid-large-v2p6")
        side = _sidecar(directory, _METRICX_KEYS)
        where = directory / SIDECAR
        detected = _detect_metricx(directory)
        if version is None:
            version = side.get("version", detected[0] if detected else None)
        if version is None:
            raise ConfigError(
                f"cannot tell which MetricX {directory} is: use metricx24:{directory} or "
                f"metricx23:{directory} (add -qe for reference-free), or write "
                f'{{"version": 24}} in {where}'
            )
        if version not in (23, 24):
            raise ConfigError(f"MetricX version must be 23 or 24, got {version!r}")
        if qe is None:
            qe = side.get("qe", detected[1] if detected and version == detected[0] else False)
        if not isinstance(qe, bool):
            raise ConfigError(f"{where}: qe must be true or false, got {qe!r}")
        self.version, self.qe = int(version), qe
        self.name = f"MetricX-{self.version}" + ("-QE" if qe else "")
        self.score_index = _positive_int(
            score_index
            if score_index is not None
            else side.get("score_index", METRICX_SCORE_INDEX),
            "score_index",
            where,
        )
        self.max_input_length = _positive_int(
            max_input_length
            if max_input_length is not None
            else side.get("max_input_length", METRICX_MAX_INPUT_LENGTH[version]),
            "max_input_length",
            where,
        )
        self.batch_size = _positive_int(
            batch_size if batch_size is not None else side.get("batch_size", 16),
            "batch_size",
            where,
        )
        if threshold is not None or "threshold" in side:
            value = threshold if threshold is not None else side["threshold"]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}: threshold must be a number, got {value!r}")
            self.threshold = float(value)

        from transformers import AutoConfig, MT5ForConditionalGeneration

        config = AutoConfig.from_pretrained(str(directory), local_files_only=True)
        if not getattr(config, "is_encoder_decoder", False) or config.model_type not in (
            "mt5",
            "t5",
        ):
            raise ConfigError(
                f"{directory} is not a MetricX model: its config.json says model_type "
                f"{config.model_type!r}, MetricX is an mT5 encoder-decoder"
            )
        if self.score_index >= config.vocab_size:
            raise ConfigError(
                f"{directory}: score_index {self.score_index} is outside the model's vocabulary "
                f"({config.vocab_size} entries); MetricX reads entry {METRICX_SCORE_INDEX}"
            )
        self.tokenizer = _load_tokenizer(
            directory,
            tokenizer if tokenizer is not None else _side_path(directory, side.get("tokenizer")),
            "MetricX uses the mT5 tokenizer: save google/mt5-xl's tokenizer into the model "
            f'directory, or name a directory holding it as "tokenizer" in {where}',
        )
        self.pad_id = next(
            i for i in (self.tokenizer.pad_token_id, config.pad_token_id, 0) if i is not None
        )
        self.eos_id = self.tokenizer.eos_token_id
        self.device = _device(device)
        try:
            model = MT5ForConditionalGeneration.from_pretrained(
                str(directory), local_files_only=True
            )
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot load the MetricX weights in {directory}: {e}") from e
        self.model = _place(model, self.device)
        self.directory = directory

    def inputs(self, hypotheses, references, sources=None) -> list[str]:
        """The input strings of the pairs, as MetricX builds them."""
        refs = references if references is not None else [None] * len(hypotheses)
        srcs = sources if sources is not None else [None] * len(hypotheses)
        return [
            metricx_input(self.version, self.qe, h, r, s) for h, r, s in zip(hypotheses, refs, srcs)
        ]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each input: truncated at ``max_input_length``, final ``</s>`` removed."""
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_input_length)
        ids = [list(x) for x in enc["input_ids"]]
        for x in ids:
            if x and self.eos_id is not None and x[-1] == self.eos_id:
                x.pop()
        return ids

    def __call__(self, hypotheses, references=None, sources=None) -> np.ndarray:
        if not self.qe and references is None:
            raise ValueError(f"{self.name} is reference-based: it needs the references")
        # the QE modes score against the source; MetricX-24 with a reference may go without
        _check_lengths(hypotheses, references, sources, self.qe, self.name)
        if not len(hypotheses):
            return np.zeros(0)
        import torch

        ids = self.encode(self.inputs(hypotheses, references, sources))
        out = np.empty(len(ids), dtype=np.float64)
        with torch.inference_mode():
            for batch in _length_batches([len(x) for x in ids], self.batch_size):
                width = max(1, max(len(ids[i]) for i in batch))
                input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    input_ids[row, : len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
                    mask[row, : len(ids[i])] = 1
                start = torch.zeros((len(batch), 1), dtype=torch.long)
                logits = self.model(
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    decoder_input_ids=start.to(self.device),
                    use_cache=False,
                ).logits
                score = logits[:, 0, self.score_index].float().clamp(self.low, self.high)
                out[batch] = score.cpu().numpy()
        return out


# -------------------------------------------------------------------------------- QE


class QualityEstimator:
    """A reference-free QE model: any local sequence-classification checkpoint with one
    regression output, scoring ``(source, hypothesis)`` pairs (see the module doc).

    ``name``, ``higher_is_better``, ``worst``, ``threshold``, ``max_input_length``,
    ``tokenizer``, ``batch_size`` None: the sidecar's value, else the defaults (a COMET-like
    0–1 score: ``QE``, True, 0.0, 0.6; the tokenizer's length or 512; the model's own
    tokenizer; 16). ``device`` None: CUDA when available, else CPU.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        higher_is_better: bool | None = None,
        worst: float | None = None,
        threshold: float | None = None,
        max_input_length: int | None = None,
        tokenizer: str | Path | None = None,
        batch_size: int | None = None,
        device: str | None = None,
    ) -> None:
        directory = _model_dir(path, "QE", "qe:~/models/my-xlmr-qe")
        side = _sidecar(directory, _QE_KEYS)
        where = directory / SIDECAR

        def pick(value, key, default):
            return value if value is not None else side.get(key, default)

        self.name = str(pick(name, "name", "QE"))
        hib = pick(higher_is_better, "higher_is_better", True)
        if not isinstance(hib, bool):
            raise ConfigError(f"{where}: higher_is_better must be true or false, got {hib!r}")
        self.higher_is_better = hib
        scale_given = {
            k for k, v in (("worst", worst), ("threshold", threshold)) if v is not None or k in side
        }
        if not hib and scale_given != {"worst", "threshold"}:
            raise ConfigError(
                f"{directory}: a lower-is-better QE model needs its worst score and threshold "
                f'(e.g. {{"higher_is_better": false, "worst": 1.0, "threshold": 0.4}} in {where})'
            )
        if not scale_given:
            logger.warning(
                "QE model %s: no worst/threshold in %s; assuming a COMET-like 0-1 score "
                "(worst 0.0, gate threshold 0.6).",
                directory,
                SIDECAR,
            )
        try:
            self.worst = float(pick(worst, "worst", 0.0))
            self.threshold = float(pick(threshold, "threshold", 0.6))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: worst and threshold must be numbers: {e}") from e
        if not np.isfinite([self.worst, self.threshold]).all():
            raise ConfigError(f"{where}: worst and threshold must be finite")
        self.batch_size = _positive_int(pick(batch_size, "batch_size", 16), "batch_size", where)

        from transformers import AutoConfig, AutoModelForSequenceClassification

        config = AutoConfig.from_pretrained(str(directory), local_files_only=True)
        if config.num_labels != 1:
            raise ConfigError(
                f"{directory} is not a regression QE model: it has {config.num_labels} labels, "
                "qe: needs one regression output (num_labels=1)"
            )
        self.tokenizer = _load_tokenizer(
            directory,
            tokenizer if tokenizer is not None else _side_path(directory, side.get("tokenizer")),
            "save the model's tokenizer next to it (tokenizer.save_pretrained(DIR)), or name "
            f'its directory as "tokenizer" in {where}',
        )
        limit = getattr(self.tokenizer, "model_max_length", None)
        default_len = limit if isinstance(limit, int) and 0 < limit <= 100_000 else 512
        self.max_input_length = _positive_int(
            pick(max_input_length, "max_input_length", default_len), "max_input_length", where
        )
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                str(directory), local_files_only=True
            )
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(
                f"cannot load {directory} as a sequence-classification model: {e}"
            ) from e
        self.device = _device(device)
        self.model = _place(model, self.device)
        self.directory = directory

    def __call__(self, hypotheses, references=None, sources=None) -> np.ndarray:
        """One score per ``(source, hypothesis)``; ``references`` are ignored."""
        _check_lengths(hypotheses, references, sources, True, self.name)
        if not len(hypotheses):
            return np.zeros(0)
        import torch

        srcs, hyps = list(sources), list(hypotheses)
        lengths = [len(s) + len(h) for s, h in zip(srcs, hyps)]  # characters: a cheap proxy
        out = np.empty(len(hyps), dtype=np.float64)
        with torch.inference_mode():
            for batch in _length_batches(lengths, self.batch_size):
                enc = self.tokenizer(
                    [srcs[i] for i in batch],
                    [hyps[i] for i in batch],
                    truncation=True,
                    max_length=self.max_input_length,
                    padding=True,
                    return_tensors="pt",
                )
                enc = {k: v.to(self.device) for k, v in enc.items()}
                logits = self.model(**enc).logits
                out[batch] = logits[:, 0].float().cpu().numpy()
        return out


# ------------------------------------------------------------------------------- specs


def build_model_quality(spec: str) -> MetricX | QualityEstimator | None:
    """The metric of a ``metricx…:DIR`` or ``qe:DIR`` spec; None for any other spec."""
    m = _SPEC.match(spec.strip())
    if not m:
        return None
    kind, version, qe, path = m.group(1).lower(), m.group(2), m.group(3), m.group(4).strip()
    if not path:
        raise ConfigError(f"{kind}: needs a model directory, e.g. {kind}:/models/my-model")
    if kind == "qe":
        return QualityEstimator(path)
    if version:  # explicit: the spec says the mode too (no -qe: with the reference)
        return MetricX(path, int(version), bool(qe))
    return MetricX(path, None, True if qe else None)

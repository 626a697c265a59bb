"""Run under COMET's environment (.venv-comet): tiny random COMET models, and COMET's own scores.

``python comet_tiny.py build DIR`` writes two randomly initialised models of COMET's real
architectures into DIR — ``regression/`` (COMET-22's RegressionMetric over an XLM-R
encoder) and ``xcomet/`` (XCOMETMetric over an XLM-R-XL encoder) — each as COMET stores a
model: ``checkpoints/model.ckpt`` and ``hparams.yaml``. Their encoders (config and a
hand-made XLM-R-style tokenizer.json) are local folders named in ``pretrained_model``, so
COMET's ``from_pretrained`` reads them from disk. No weights are downloaded from anywhere.

``python comet_tiny.py predict CKPT SAMPLES.json BATCH OUT.json``: what COMET's own API,
``load_from_checkpoint(CKPT).predict(samples)``, says of the samples (the test's truth).
"""

from __future__ import annotations

import json
import os
import string
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"


def tokenizer(folder: Path) -> int:
    """An XLM-R-style sentencepiece-unigram tokenizer over letters and a few words."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import XLMRobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"]  # XLM-R's ids 0-3
    pieces = ["▁", *string.ascii_letters, *string.digits, *".,!?'-"]
    pieces += ["▁" + c for c in string.ascii_lowercase] + ["▁the", "▁a", "▁of", "▁house"]
    vocab = [(p, 0.0) for p in specials]
    vocab += [(p, -1.0 - (len(pieces) - i) / 10) for i, p in enumerate(pieces)]
    vocab.append(("<mask>", 0.0))
    tok = Tokenizer(models.Unigram(vocab, unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    XLMRobertaTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
        cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
    ).save_pretrained(folder)
    return len(vocab)


def save(model, folder: Path) -> None:
    """COMET's on-disk form: a Lightning checkpoint and the hparams.yaml beside its folder."""
    import pytorch_lightning as pl
    import torch
    import yaml

    hparams = dict(model.hparams)
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "hparams.yaml").write_text(yaml.safe_dump(hparams))
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams,
                "pytorch-lightning_version": pl.__version__}, folder / "checkpoints" / "model.ckpt")


def build(root: Path) -> None:
    import torch
    from comet.models import RegressionMetric, XCOMETMetric
    from transformers import XLMRobertaConfig, XLMRobertaXLConfig

    for name, config_class in (("xlmr", XLMRobertaConfig), ("xlmr-xl", XLMRobertaXLConfig)):
        vocab_size = tokenizer(root / name)
        config_class(
            vocab_size=vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=130, pad_token_id=1,
            bos_token_id=0, eos_token_id=2,
        ).save_pretrained(root / name)
    torch.manual_seed(0)
    save(RegressionMetric(pretrained_model=str(root / "xlmr"), load_pretrained_weights=False,
                          local_files_only=True, hidden_sizes=[8]), root / "regression")
    save(XCOMETMetric(pretrained_model=str(root / "xlmr-xl"), load_pretrained_weights=False,
                      local_files_only=True, hidden_sizes=[8], word_layer=2), root / "xcomet")


def predict(checkpoint: str, samples: str, batch_size: str, out: str) -> None:
    from comet import load_from_checkpoint

    model = load_from_checkpoint(checkpoint, local_files_only=True)
    result = model.predict(json.loads(Path(samples).read_text()), batch_size=int(batch_size),
                           gpus=0, progress_bar=False)
    Path(out).write_text(json.dumps({"scores": [float(s) for s in result.scores],
                                     "system_score": float(result.system_score)}))


if __name__ == "__main__":
    if sys.argv[1] == "build":
        build(Path(sys.argv[2]))
    else:
        predict(*sys.argv[2:])

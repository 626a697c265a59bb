"""COMET's scores, computed inside COMET's own environment (run by :mod:`simulpo.metrics.comet`).

unbabel-comet 2.2 needs numpy<2 and transformers<5, which simulpo's environment does not
have, so this script runs under that environment's Python and imports nothing of simulpo:
``python -I comet_worker.py REQUEST.json RESULT.json``. The request holds ``checkpoint``,
``samples`` (``{"src"?, "mt", "ref"}`` dicts) and ``batch_size``; the result
``class_identifier``, ``pretrained_model``, ``scores`` (one per sample) and
``system_score``, exactly what ``load_from_checkpoint(...).predict(...)`` returns. Nothing
is fetched from a model hub: the encoder named in the checkpoint's ``hparams.yaml`` must
be a local folder or already in the local Hugging Face cache. A user error is one line
on stderr and exit status 2.
"""

from __future__ import annotations

import json
import os
import sys

#: the models whose input always includes the source sentence (and unified ones that
#: read no reference, such as CometKiwi)
NEEDS_SOURCE = ("regression_metric", "referenceless_regression_metric", "ranking_metric")


def main(request_path: str, result_path: str) -> int:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    import torch
    from comet import load_from_checkpoint

    model = load_from_checkpoint(request["checkpoint"], local_files_only=True)
    kind = model.hparams.get("class_identifier") or type(model).__name__
    samples = request["samples"]
    inputs = model.hparams.get("input_segments") or []  # unified models: what they read
    needs_source = kind in NEEDS_SOURCE or (inputs and "ref" not in inputs)
    if needs_source and any("src" not in s for s in samples):
        print(f"the COMET model ({kind}) needs the source sentences: give --comet-sources FILE",
              file=sys.stderr)
        return 2
    gpus = 1 if torch.cuda.is_available() else 0
    out = model.predict(samples, batch_size=request["batch_size"], gpus=gpus, progress_bar=False)
    result = {
        "class_identifier": kind,
        "pretrained_model": model.hparams.get("pretrained_model"),
        "scores": [float(s) for s in out.scores],
        "system_score": float(out.system_score),
    }
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: comet_worker.py REQUEST.json RESULT.json", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))

"""The real pretrained models the tests use, as ``scripts/setup.sh --test`` installs them.

Missing models fail the test (not skip it): CI must run these tests, and a skip would hide
that they did not run.
"""

from __future__ import annotations

import functools

import pytest

from simulpo.models.store import models_dir, read_manifest

SMOLLM2 = "smollm2-135m-instruct"
WHISPER_BASE = "whisper-base"


def require(name: str):
    """The installed folder of ``name``, or a failure saying how to install it."""
    folder = models_dir() / name
    if read_manifest(folder) is None:
        pytest.fail(
            f"{name} is not installed in {folder.parent}: run scripts/setup.sh --test "
            f"(or simulpo models install {name})"
        )
    return folder


@functools.lru_cache(maxsize=1)
def smollm2():
    """SmolLM2-135M-Instruct, float32: ``(model, tokenizer)``, loaded once per session.
    Callers must not train it (they get the same object)."""
    from simulpo.models.lm import load_model

    require(SMOLLM2)
    model, tokenizer = load_model(SMOLLM2)
    return model.eval(), tokenizer

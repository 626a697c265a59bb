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


QWEN = "qwen2.5-1.5b-instruct"


def is_installed(name: str) -> bool:
    return read_manifest(models_dir() / name) is not None


def qwen_tokenizer_on_a_random_lm():
    """The installed Qwen2.5-1.5B-Instruct's own tokenizer (151k tokens, its chat template
    with the default system prompt) over a random 2-layer Qwen2: the template is real, the
    model only needs to run. Only where the 1.5B is installed (CI does not install it)."""
    from tiny_lm import random_qwen2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(require(QWEN)), local_files_only=True)
    return random_qwen2(tokenizer).eval(), tokenizer

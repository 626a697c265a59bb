"""Causal LMs: the tiny embedded default built from scratch, or any local Hugging Face model.

``build_tiny_lm`` makes a standard ``transformers`` architecture (Qwen2 or Llama) from a
config, so everything downstream — generation, KV cache, ``save_pretrained``, ``peft`` —
is the ecosystem's own code, and swapping in a real checkpoint with ``load_model`` changes
nothing else. ``save_model`` writes a model directory atomically.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import errno
import json
import os
import pickle
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen2Config,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from simulpo.errors import ConfigError, SimulpoError
from simulpo.models.store import resolve

ARCHITECTURES = {"qwen2": Qwen2Config, "llama": LlamaConfig}


def build_tiny_lm(
    tokenizer: PreTrainedTokenizerBase,
    arch: str = "qwen2",
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    max_positions: int = 1024,
    intermediate_size: int | None = None,
    seed: int = 0,
) -> PreTrainedModel:
    """A small decoder-only LM of a standard architecture, randomly initialized from ``seed``.

    The default — hidden 128, 4 layers of 4 heads of 32, MLP 384, embeddings tied with the
    output head; 1.1 M parameters with the 2,000-token embedded tokenizer — is sized for 2
    CPU cores: it trains at about 11,000 tokens/s there, so an epoch of the 20,000
    synthetic sentences as simultaneous dialogues (3.2 M tokens) takes under 5 minutes.
    Hidden 192 (2.2 M parameters) halves that speed: training is compute-bound (6 x params
    FLOPs a token), and the vocabulary is too small for the embeddings to dominate.
    """
    if arch not in ARCHITECTURES:
        raise ConfigError(
            f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}"
        )
    if hidden_size % num_heads:
        raise ConfigError(f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}")
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    config = ARCHITECTURES[arch](
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or _round_up(hidden_size * 8 // 3, 64),
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    import torch

    # Seeded without touching the global RNG that the caller may rely on.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad
    return model


def _round_up(x: int, multiple: int) -> int:
    return (x + multiple - 1) // multiple * multiple


def count_parameters(model, trainable_only: bool = False) -> int:
    """The number of (trainable) parameters, tied weights counted once."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


# ------------------------------------------------------------------------------ loading


def load_model(
    path: str | Path,
    lora: bool = False,
    lora_r: int = 8,
    lora_alpha: int = 16,
    lora_dropout: float = 0.0,
    lora_target_modules: list[str] | str | None = None,
    dtype: str | None = None,
):
    """Load a local Hugging Face causal LM and its tokenizer: ``(model, tokenizer)``.

    ``path`` is a model directory (``config.json``, weights, tokenizer files), such as
    ``save_model`` writes or a downloaded Qwen/Llama instruct model, or the name of a model
    installed by ``simulpo models install`` (:func:`simulpo.models.store.resolve`). Nothing
    is downloaded.
    With ``lora=True`` the model is wrapped by ``peft`` with LoRA adapters of rank
    ``lora_r`` on every linear layer except the output head (``lora_target_modules``
    overrides), so only the adapters train. ``dtype`` ("float32", "bfloat16", ...) defaults
    to the checkpoint's own.
    """
    path = resolve(path)
    config = check_causal_lm_dir(path)
    tokenizer = load_tokenizer(path)
    kwargs = {"dtype": dtype} if dtype else {}
    try:
        with quiet_progress():
            model = AutoModelForCausalLM.from_pretrained(
                str(path), config=config, local_files_only=True, **kwargs
            )
    except OSError as err:
        raise SimulpoError(f"{path}: cannot load the model weights ({err})") from err
    except (SafetensorError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        files = sorted(f.name for f in path.iterdir() if f.suffix in (".safetensors", ".bin"))
        raise SimulpoError(
            f"{path}: cannot read the model weights ({', '.join(files)}): {err}; the file is "
            "truncated or not a weights file (save the model again, or copy it whole)"
        ) from err
    if lora:
        model = add_lora(model, lora_r, lora_alpha, lora_dropout, lora_target_modules)
    return model, tokenizer


def check_causal_lm_dir(path: Path):
    """The config of the model in ``path``, or a :class:`SimulpoError` saying why it is unusable."""
    if not path.exists():
        raise SimulpoError(f"{path}: no such model directory")
    if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
        raise SimulpoError(
            f"{path}: holds LoRA adapters only; load their base model with lora=True, or save "
            "the trained model merged (save_model(..., merge_lora=True), the default)"
        )
    if not path.is_dir() or not (path / "config.json").is_file():
        raise SimulpoError(
            f"{path}: not a Hugging Face model directory (no config.json); give the folder "
            "that save_pretrained wrote, or that holds a downloaded model"
        )
    try:
        config = AutoConfig.from_pretrained(str(path))
    except (ValueError, KeyError, OSError, json.JSONDecodeError) as err:
        raise SimulpoError(f"{path}/config.json: cannot read the model config ({err})") from err
    kind = getattr(config, "model_type", "?")
    archs = ", ".join(getattr(config, "architectures", None) or []) or kind
    need = "simulpo needs a decoder-only causal LM (Qwen, Llama, Mistral, GPT-2, ...)"
    if getattr(config, "is_encoder_decoder", False):
        raise SimulpoError(f"{path}: {archs} is an encoder-decoder (seq2seq) model; {need}")
    if kind not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise SimulpoError(f"{path}: {archs} ({kind}) is not a causal language model; {need}")
    # BERT-like encoders also have a causal-LM head class, but are trained bidirectionally.
    if kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False):
        raise SimulpoError(f"{path}: {archs} ({kind}) is a bidirectional encoder; {need}")
    return config


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer of the model ``path`` (a directory or an installed name), with its
    chat template (required) and a pad token."""
    path = resolve(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as err:
        raise SimulpoError(
            f"{path}: cannot load a tokenizer from the model directory ({err})"
        ) from err
    if getattr(tokenizer, "chat_template", None) is None:
        raise SimulpoError(
            f"{path}: the tokenizer has no chat template, and simulpo builds its dialogues with "
            "it; use a chat/instruct model, or set one and save it: tokenizer.chat_template = "
            "simulpo.models.chat.CHAT_TEMPLATE; tokenizer.save_pretrained(path)"
        )
    if tokenizer.pad_token is None:
        # Llama-style tokenizers have no pad token; padding is always masked, so eos will do.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def add_lora(
    model: PreTrainedModel,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
    target_modules: list[str] | str | None = None,
):
    """Wrap ``model`` with ``peft`` LoRA adapters; only the adapters stay trainable.

    The default targets, ``"all-linear"``, are found by ``peft`` for any architecture:
    every ``nn.Linear`` (or GPT-2 ``Conv1D``) except the output head.
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules or "all-linear",
    )
    with warnings.catch_warnings():  # peft asks transformers a deprecated question
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
        )
        return get_peft_model(model, config)


# ------------------------------------------------------------------------------- saving


def save_model(
    model, tokenizer: PreTrainedTokenizerBase, path: str | Path, merge_lora: bool = True
) -> Path:
    """Write ``model`` and ``tokenizer`` to the directory ``path``, atomically.

    Everything is written to a temporary sibling directory, which then takes the place of
    ``path`` in one rename (an atomic exchange with an old ``path`` on Linux; elsewhere the
    old directory is moved aside first and removed last). A reader or a killed run sees
    either the complete old directory or the complete new one. A LoRA (``peft``) model is
    saved merged into its base weights (a copy is merged; ``model`` keeps its adapters), so
    the result loads with :func:`load_model` like any model; ``merge_lora=False`` saves only
    the adapters.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if merge_lora and is_peft(model):
        model = copy.deepcopy(model).merge_and_unload()

    def write(tmp: Path) -> None:
        with quiet_progress():
            model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))

    return atomic_write_dir(path, write)


@contextmanager
def quiet_progress():
    """Silence transformers' own progress bars ("Writing model shards") for a moment."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, PeftModel)


def atomic_write_dir(path: str | Path, write) -> Path:
    """Fill a fresh temporary sibling of ``path`` with ``write(tmp)``, then put it at ``path``.

    Temporary and old directories are named ``.{name}.tmp-*`` / ``.{name}.old-*`` (hidden,
    so directory listings that look for complete results skip them). Files are flushed to
    disk before the rename, so even a power cut cannot leave a renamed but empty file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        write(tmp)
        _finish_tree(tmp)
        if not path.exists():
            os.rename(tmp, path)
        elif _exchange(tmp, path):
            shutil.rmtree(tmp, ignore_errors=True)  # now holds the old version
        else:
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
            os.rename(path, old / path.name)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old / path.name, path)  # put the old version back
                os.rmdir(old)
                raise
            shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already unless something failed
    return path


def _finish_tree(root: Path) -> None:
    """Give files ordinary modes (mkdtemp and some writers, like safetensors, leave private
    ones) and flush them to disk."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(root, 0o777 & ~umask)
    for folder, _, files in os.walk(root):
        for name in files:
            file = os.path.join(folder, name)
            os.chmod(file, 0o666 & ~umask)
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2``); False where unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    res = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if res == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")

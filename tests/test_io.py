"""simulpo.io: byte-order marks stripped by every text reader; leftovers of killed writes."""

from __future__ import annotations

import codecs
import json

from simulpo.config import load_config
from simulpo.eval.report import read_report
from simulpo.eval.testset import load_test_set
from simulpo.io import read_lines, read_text, remove_partial_writes
from simulpo.metrics.comet import read_sources
from simulpo.metrics.longform import read_references, read_segments, score_longform_files
from simulpo.serve.client import source_frames
from simulpo.serve.metrics_log import is_metrics_log, read_metrics_log
from simulpo.train.sft import SFTConfig, load_dialogues

BOM = codecs.BOM_UTF8


def test_a_byte_order_mark_is_not_part_of_the_first_word(tmp_path):
    src, ref = tmp_path / "src.txt", tmp_path / "ref.txt"
    src.write_bytes(BOM + b"the dog\r\nsees\n")
    ref.write_bytes(BOM + b"el perro\nve\n")
    assert read_lines(src) == ["the dog", "sees"]
    assert read_text(ref) == "el perro\nve\n"
    (first, second) = load_test_set(src, ref)
    assert (first.source, first.reference, second.source) == ("the dog", "el perro", "sees")


def test_json_and_yaml_readers_take_a_byte_order_mark(tmp_path):
    report = tmp_path / "report.json"
    report.write_bytes(BOM + json.dumps([{"name": "wait-3", "BLEU": 1.0}]).encode())
    assert read_report(report) == [{"name": "wait-3", "BLEU": 1.0}]
    dialogues = tmp_path / "d.jsonl"
    line = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    dialogues.write_bytes(BOM + json.dumps(line).encode() + b"\n")
    assert load_dialogues(dialogues) == [line["messages"]]
    recipe = tmp_path / "sft.yaml"
    recipe.write_bytes(BOM + b"epochs: 3\n")
    assert load_config(SFTConfig, recipe).epochs == 3


def test_long_form_readers_and_the_client_take_a_byte_order_mark(tmp_path):
    refs, yaml_segs, json_segs = tmp_path / "ref.txt", tmp_path / "s.yaml", tmp_path / "s.json"
    refs.write_bytes(BOM + b"the cat sat on the mat\nthe dog ran home\n")
    yaml_segs.write_bytes(BOM + b"- {wav: talk.wav, offset: 1.0, duration: 2.0}\n"
                          b"- {wav: talk.wav, offset: 4.0, duration: 1.0}\n")  # fmt: skip
    segments = [{"wav": "talk.wav", "offset": 1.0, "duration": 2.0},
                {"wav": "talk.wav", "offset": 4.0, "duration": 1.0}]  # fmt: skip
    json_segs.write_bytes(BOM + json.dumps(segments).encode())
    assert read_references(refs) == ["the cat sat on the mat", "the dog ran home"]
    assert read_sources(refs, 2, "segments") == read_references(refs)  # COMET's sources
    assert read_segments(yaml_segs) == read_segments(json_segs) == segments
    # scored as the same files without the marks are
    words = "the cat sat on the mat the dog ran away"
    line = {"source": "talk.wav", "prediction": words, "delays": [1500 + 300 * i for i in range(10)]}  # fmt: skip
    for name, mark in (("bom", BOM), ("plain", b"")):
        (tmp_path / name).mkdir()
        for path in (refs, yaml_segs):
            (tmp_path / name / path.name).write_bytes(mark + path.read_bytes().removeprefix(BOM))
        (tmp_path / name / "hyp.jsonl").write_bytes(mark + json.dumps(line).encode() + b"\n")
    bom, plain = (
        score_longform_files(*(tmp_path / name / f for f in ("hyp.jsonl", "s.yaml", "ref.txt")))
        for name in ("bom", "plain")
    )
    assert bom == plain and 0 < plain["BLEU"] < 100
    log = tmp_path / "metrics.jsonl"
    records = [{"id": 0, "metadata": {"wav_name": "talk.wav"}},
               {"id": 0, "generated_tokens": ["the", "cat"], "deleted_tokens": [],
                "total_audio_processed": 1.5, "computation_time": 0.25}]  # fmt: skip
    log.write_bytes(BOM + "".join(json.dumps(r) + "\n" for r in records).encode())
    assert is_metrics_log(log)
    assert read_metrics_log(log) == [
        {"name": "talk", "prediction": "the cat", "delays": [1500.0] * 2, "elapsed": [1750.0] * 2}
    ]
    text = tmp_path / "talk.txt"
    text.write_bytes(BOM + b"the dog sees\n")
    _, frames, _ = source_frames(text, 100)
    assert frames == [{"text": "the"}, {"text": "dog"}, {"text": "sees"}]


def test_leftovers_of_killed_writes_are_removed_and_a_set_aside_version_put_back(tmp_path):
    (tmp_path / "dev" / "step-2").mkdir(parents=True)
    torn_file = tmp_path / "dev" / "step-2" / ".instances.log.k2j3.tmp"
    torn_file.write_text("{")
    torn_dir = tmp_path / ".final.tmp-x1"
    torn_dir.mkdir()
    # killed between the two renames of a replacement: the old version waits in .NAME.old-*
    aside = tmp_path / ".model.old-q9"
    (aside / "model").mkdir(parents=True)
    (aside / "model" / "config.json").write_text("{}")
    # also set aside, but the new version is in place already: the old one goes
    (tmp_path / "final").mkdir()
    (tmp_path / ".final.old-z7" / "final").mkdir(parents=True)
    mine = [tmp_path / ".hidden.txt", tmp_path / ".cache"]
    mine[0].write_text("not a temporary")
    mine[1].mkdir()
    removed = remove_partial_writes(tmp_path)
    assert set(removed) == {torn_file, torn_dir, aside, tmp_path / ".final.old-z7"}
    assert (tmp_path / "model" / "config.json").read_text() == "{}"
    assert (tmp_path / "final").is_dir() and all(p.exists() for p in mine)
    assert remove_partial_writes(tmp_path / "nothing-here") == []

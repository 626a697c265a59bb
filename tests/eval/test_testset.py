import pytest

from simulpo.errors import InputError, SimulpoError
from simulpo.eval.testset import MAX_WORDS, load_test_set


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_text_pair_round_trip(tmp_path):
    src = write(tmp_path / "s.txt", b"a b\nc d e\n")
    ref = write(tmp_path / "r.txt", b"x\ny z\n")
    segs = load_test_set(src, ref)
    assert [(s.source, s.reference) for s in segs] == [("a b", "x"), ("c d e", "y z")]


def test_jsonl_accepts_reference_or_target(tmp_path):
    path = write(
        tmp_path / "t.jsonl",
        b'{"id": "v1", "source": "a b", "reference": "x"}\n\n{"source": "c", "target": "y"}\n',
    )
    segs = load_test_set(path)
    assert [(s.id, s.source, s.reference) for s in segs] == [("v1", "a b", "x"), ("3", "c", "y")]


def test_mismatched_line_counts_name_both_files(tmp_path):
    src = write(tmp_path / "s.txt", b"a\nb\nc\n")
    ref = write(tmp_path / "r.txt", b"x\ny\n")
    with pytest.raises(InputError, match=r"r\.txt: 2 reference lines but 3 source lines"):
        load_test_set(src, ref)


def test_invalid_utf8_names_the_line(tmp_path):
    src = write(tmp_path / "s.txt", b"ok\n\xff\xfe bad\n")
    with pytest.raises(InputError, match=r"s\.txt:2: invalid UTF-8 \(byte 0xff at column 1\)"):
        load_test_set(src)


def test_empty_line_and_empty_file(tmp_path):
    with pytest.raises(InputError, match=r"s\.txt:2: empty source"):
        load_test_set(write(tmp_path / "s.txt", b"a\n  \nb\n"))
    with pytest.raises(InputError, match="empty"):
        load_test_set(write(tmp_path / "e.txt", b""))


def test_over_long_line(tmp_path):
    src = write(tmp_path / "s.txt", ("w " * (MAX_WORDS + 1)).encode())
    with pytest.raises(InputError, match=r"s\.txt:1: source has 1001 words"):
        load_test_set(src)


def test_malformed_jsonl(tmp_path):
    with pytest.raises(InputError, match=r"t\.jsonl:2: malformed JSON"):
        load_test_set(write(tmp_path / "t.jsonl", b'{"source": "a"}\n{"source": \n'))
    with pytest.raises(InputError, match=r"t2\.jsonl:1: .*\"source\" field"):
        load_test_set(write(tmp_path / "t2.jsonl", b'{"src": "a"}\n'))


def test_missing_file(tmp_path):
    with pytest.raises(SimulpoError, match="no such file"):
        load_test_set(tmp_path / "nope.txt")


def test_a_tsv_is_read_as_data_and_refused_as_a_source(tmp_path):
    from simulpo.errors import InputError
    from simulpo.eval.testset import load_test_set

    tsv = tmp_path / "t.tsv"
    tsv.write_text("the dog\tel perro\na cat\tun gato\n")
    assert [(s.source, s.reference) for s in load_test_set(tsv)] == [
        ("the dog", "el perro"),
        ("a cat", "un gato"),
    ]
    plain = tmp_path / "t.txt"
    plain.write_text(tsv.read_text())
    with pytest.raises(InputError, match=r"t.txt:1: holds a tab: .*--data FILE.tsv"):
        load_test_set(plain, tmp_path / "ref.txt")
    (tmp_path / "three.tsv").write_text("a\tb\tc\n")
    with pytest.raises(InputError, match=r"three.tsv:1: 3 tab-separated fields"):
        load_test_set(tmp_path / "three.tsv")


def test_eval_without_references_says_how_to_give_them(tmp_path, capsys):
    from simulpo.cli import main

    src = tmp_path / "s.txt"
    src.write_text("the dog\n")
    (tmp_path / "t.tsv").write_text("the dog\tel perro\n")
    (tmp_path / "half.tsv").write_text("the dog\tel perro\na cat\n")
    common = ["--translator", "grammar", "--output", str(tmp_path / "o"), "--no-progress"]
    cases = [
        (["--source", str(src)], "holds sources only: give the references with --reference"),
        (["--data", str(src)], "--data takes a .jsonl or .tsv file"),
        (["--source", str(tmp_path / "t.tsv")], "is a .tsv test set: give it as --data"),
        (["--data", str(tmp_path / "half.tsv")], "segment 2 has no reference (a second column)"),
    ]
    for options, message in cases:
        assert main(["eval", *options, *common]) == 2
        err = capsys.readouterr().err
        assert message in err and "missing 'reference'" not in err
    assert main(["eval", "--data", str(tmp_path / "t.tsv"), *common]) == 0

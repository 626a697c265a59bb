import json

import pytest

from simulpo.errors import InputError, SimulpoError
from simulpo.eval.plot import family_of, plot_quality_latency
from simulpo.eval.report import format_rows_table, read_report, update_report


def test_update_report_replaces_same_system_and_dataset(tmp_path):
    path = tmp_path / "report.json"
    update_report(path, [{"name": "wait-1", "dataset": "a", "BLEU": 1.0}])
    update_report(path, [{"name": "wait-1", "dataset": "b", "BLEU": 2.0}])
    rows = update_report(path, [{"name": "wait-1", "dataset": "a", "BLEU": 3.0}])
    assert sorted((r["dataset"], r["BLEU"]) for r in rows) == [("a", 3.0), ("b", 2.0)]
    assert read_report(tmp_path) == rows == json.loads(path.read_text())


def test_read_report_errors(tmp_path):
    with pytest.raises(InputError, match="no such report"):
        read_report(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x"}')
    with pytest.raises(InputError, match="JSON list"):
        read_report(bad)


def test_family_of():
    assert family_of("wait-3") == ("wait-k", "3")
    assert family_of("la-2") == ("la", "2")
    assert family_of("offline") == ("offline", None)


def test_plot_writes_a_png(tmp_path):
    rows = [
        {"name": f"wait-{k}", "dataset": d, "LAAL": k + 0.5, "chrF": 40 + k}
        for k in (1, 3, 5)
        for d in ("synthetic", "bible")
    ] + [{"name": "offline", "dataset": "bible", "LAAL": 20.0, "chrF": 60.0}]
    out = plot_quality_latency(rows, tmp_path / "p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_usable_rows_is_a_clear_error(tmp_path):
    with pytest.raises(SimulpoError, match="no report row has both LAAL and chrF"):
        plot_quality_latency([{"name": "x", "BLEU": 1.0}], tmp_path / "p.png")


def test_rows_table_aligns_and_marks_missing_values():
    table = format_rows_table(
        [{"name": "wait-1", "dataset": "d", "BLEU": 12.345}, {"name": "offline", "dataset": "d"}]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["dataset", "system", "BLEU"]
    assert lines[2].split() == ["d", "wait-1", "12.35"]
    assert lines[3].split() == ["d", "offline", "-"]
    assert len({len(line) for line in lines}) == 1


@pytest.mark.parametrize(
    "x, y, hint",
    [("BLEU", "AL", "swap them"), ("chrF", "LAAL_CA", "swap"), ("LAAL", "StreamLAAL", "")],
)
def test_plot_refuses_quality_on_the_latency_axis(tmp_path, x, y, hint):
    rows = [{"name": "wait-3", "AL": 2.0, "LAAL": 2.0, "LAAL_CA": 3.0, "StreamLAAL": 1.0,
             "BLEU": 20.0, "chrF": 40.0}]  # fmt: skip
    with pytest.raises(SimulpoError, match=f"got --x {x} --y {y}.*{hint}"):
        plot_quality_latency(rows, tmp_path / "p.png", x=x, y=y)
    assert not (tmp_path / "p.png").exists()
    assert plot_quality_latency(rows, tmp_path / "ok.png", x="LAAL_CA", y="BLEU").exists()

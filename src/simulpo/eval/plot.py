"""Quality–latency plots: one panel per dataset, one curve per system family.

Rows named ``wait-1``, ``wait-3``, … form one ``wait-k`` curve (labelled with k); every
other row is a point. Families group on the name before a trailing ``-<number>``.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, and no GUI backend probing
import matplotlib.pyplot as plt

from simulpo.errors import SimulpoError
from simulpo.eval.report import Row
from simulpo.metrics.latency import CA_SUFFIX, LATENCY_METRICS

#: quality metrics a report row may hold (higher is better, except WER): never on the x axis
QUALITY_KEYS = ("BLEU", "chrF", "chrF++", "COMET", "MetricX", "WER")


def is_latency_key(name: str) -> bool:
    """``AL``, ``LAAL_CA``, ``StreamLAAL``, ``LongYAAL``...: a latency of a report row."""
    base = name.removesuffix(CA_SUFFIX)
    return base in LATENCY_METRICS or base.startswith(("Stream", "Long"))


def check_axes(x: str, y: str) -> None:
    """Refuse a quality metric on the latency (x) axis or a latency on the quality (y) axis."""
    if x in QUALITY_KEYS or is_latency_key(y):
        raise SimulpoError(
            f"the x axis is a latency (LAAL, AL, StreamLAAL, ...) and the y axis a quality "
            f"metric (chrF, BLEU, ...); got --x {x} --y {y}"
            + ("; swap them" if x in QUALITY_KEYS and is_latency_key(y) else "")
        )


_FAMILY = re.compile(r"^(?P<family>.*?)-(?P<knob>\d+(?:\.\d+)?)$")


def family_of(name: str) -> tuple[str, str | None]:
    """``wait-3`` → (``wait-k``, ``3``); ``offline`` → (``offline``, None)."""
    m = _FAMILY.match(name)
    if not m:
        return name, None
    family = m["family"]
    return (f"{family}-k" if family == "wait" else family), m["knob"]


def plot_quality_latency(
    rows: Sequence[Row], out: str | Path, x: str = "LAAL", y: str = "chrF", title: str | None = None
) -> Path:
    """Draw ``y`` against ``x`` for every row that has both; returns the PNG path."""
    check_axes(x, y)
    usable = [r for r in rows if _finite(r.get(x)) and _finite(r.get(y))]
    if not usable:
        raise SimulpoError(f"no report row has both {x} and {y}; nothing to plot")
    datasets = sorted({str(r.get("dataset", "")) for r in usable})
    # One colour per system family across all panels.
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    families_all = sorted({family_of(r["name"])[0] for r in usable})
    colour = {f: palette[i % len(palette)] for i, f in enumerate(families_all)}
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets), 4.2), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        families: dict[str, list[tuple[float, float, str | None]]] = defaultdict(list)
        for r in usable:
            if str(r.get("dataset", "")) == dataset:
                family, knob = family_of(r["name"])
                families[family].append((float(r[x]), float(r[y]), knob))
        for family, points in sorted(families.items()):
            points.sort()
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            style = "-" if len(points) > 1 else "none"
            ax.plot(xs, ys, marker="o", linestyle=style, label=family, color=colour[family])
            for px, py, knob in points:
                if knob is not None:
                    ax.annotate(knob, (px, py), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_title(dataset or "(no dataset)")
        ax.set_xlabel(f"{x} (lower is faster)")
        ax.set_ylabel(f"{y} (higher is better)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def plot_report(report: str | Path, out: str | Path, x: str = "LAAL", y: str = "chrF") -> Path | None:
    """The ``y``–``x`` plot of the rows of ``report`` that have ``x`` (None if none has)."""
    from simulpo.eval.report import read_report

    rows = [r for r in read_report(report) if x in r]
    return plot_quality_latency(rows, out, x=x, y=y) if rows else None

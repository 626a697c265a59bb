"""``simulpo plot``: a quality–latency plot from report.json files."""

from __future__ import annotations

import argparse

NAME = "plot"
HELP = "quality–latency plot from one or more report.json files"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help=HELP)
    p.add_argument("reports", nargs="+", help="report.json files or directories holding one")
    p.add_argument("--output", default="quality_latency.png", help="PNG file to write")
    p.add_argument("--x", default="LAAL", help="latency metric on the x axis")
    p.add_argument("--y", default="chrF", help="quality metric on the y axis")
    return p


def run(args: argparse.Namespace) -> None:
    from simulpo.eval.plot import plot_quality_latency
    from simulpo.eval.report import read_report

    rows = [row for path in args.reports for row in read_report(path)]
    print(f"wrote {plot_quality_latency(rows, args.output, x=args.x, y=args.y)}")

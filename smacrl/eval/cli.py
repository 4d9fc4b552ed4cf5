"""``smacrl report``: curves, regret tables and a summary over online runs."""

from __future__ import annotations

import argparse

from smacrl.cli import add_command


def cmd_report(args: argparse.Namespace, rest: list[str]) -> int:
    """Write learning curves, regret tables (Markdown, CSV) and a JSON summary."""
    from smacrl.cli import _no_extra
    from smacrl.eval.report import write_report

    _no_extra(rest, args.parser)
    summary = write_report(args.runs, args.out)
    for row in summary["rows"]:
        print(
            f"{row['task']}: {row['offline']} -> {row['online']}  regret {row['regret_mean']:.2f} ± "
            f"{row['regret_se']:.2f}  drop {row['drop']:.2f}  stable={'yes' if row['stable_transfer'] else 'no'}"
        )
    print(f"report in {args.out}: curves.png, regret.md, regret.csv, summary.json")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "report", cmd_report, "learning curves and regret tables over online runs")
    p.add_argument("runs", nargs="+", help="online run directories, or folders containing them")
    p.add_argument("--out", required=True, help="output folder")

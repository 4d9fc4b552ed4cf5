"""``smacrl report``: curves, regret tables and a summary over online runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from smacrl.cli import add_command


def cmd_report(args: argparse.Namespace, rest: list[str]) -> int:
    """Write learning curves, regret tables (Markdown, CSV) and a JSON summary."""
    from smacrl.cli import _no_extra
    from smacrl.eval.report import write_report

    _no_extra(rest, args.parser)
    summary = write_report(args.runs, args.out, reps=args.reps, seed=args.seed)
    for row in summary["rows"]:
        print(
            f"{row['task']}: {row['offline']} -> {row['online']}  regret {row['regret_mean']:.2f} ± "
            f"{row['regret_se']:.2f}  drop {row['drop']:.2f}  stable={'yes' if row['stable_transfer'] else 'no'}"
        )
    files = sorted(p.name for p in Path(args.out).iterdir() if p.is_file())
    print(f"report in {args.out}: {', '.join(files)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "report", cmd_report, "the paper's tables 1-5, figures 6-8 and rliable intervals over runs"
    )
    p.add_argument("runs", nargs="+", help="online run directories, or folders containing them")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap repetitions of the rliable intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (the report is reproducible)")

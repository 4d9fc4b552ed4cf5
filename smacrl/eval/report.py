"""``smacrl report``: the paper's tables and figures, and honest aggregate statistics, over online runs.

It takes any number of online run directories, or folders holding them (a sweep of tasks x offline
algorithms x online algorithms x seeds), and writes into ``--out`` (docs/report.md has the details):

- ``curves.png``: one panel per task, every offline -> online pair a line (mean ± s.e. over seeds),
  the offline phase shaded at negative steps and the switch dotted at 0;
- ``curves_<online>.png``: figures 6-8, one per online algorithm, a panel per task, each offline
  algorithm a line;
- ``regret.md`` / ``regret.csv``: table 1 (normalized regret per offline x online pair, averaged
  over tasks), tables 2-5 (per-task regret, mean ± s.e. over seeds), the transfer at the switch per
  task and, per pair, on how many tasks it transferred stably or dropped;
- ``aggregate.md`` / ``aggregate.csv``: rliable's IQM of a per-run score per pair and SMAC's
  probability of improvement over each baseline, with stratified-bootstrap 95% intervals (or, without
  rliable, one line saying how to install it);
- ``summary.json``: all of the above as numbers.

The same runs give byte-identical files: everything is sorted, the bootstrap is seeded, the figures
carry no version stamp and ``summary.json`` names the runs relative to the folder that holds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smacrl.eval.aggregate import aggregate_csv, aggregate_markdown, aggregate_statistics
from smacrl.eval.plots import offline_colors, plot_curves, plot_online
from smacrl.eval.runs import find_online_runs, load_run, relative_names
from smacrl.eval.tables import pair_transfer, regret_markdown, report_rows, rows_csv
from smacrl.io import atomic_write_json, atomic_write_text

__all__ = ["find_online_runs", "load_run", "write_report"]


def write_report(paths: list[str | Path], out: str | Path, *, reps: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Write every output file into ``out`` and return the summary (what ``summary.json`` holds).

    ``reps`` and ``seed`` are the bootstrap's repetitions and NumPy seed for the aggregate statistics.
    """
    out = Path(out)
    found = find_online_runs(paths)
    runs = [load_run(r) for r in found]
    curves = [c for c, _ in runs]
    rows, norm, table = report_rows(curves)
    pairs = pair_transfer(rows)
    agg = aggregate_statistics(curves, table, reps=reps, seed=seed)

    figures = ["curves.png"]
    plot_curves(runs, out / "curves.png")
    colors = offline_colors(runs)
    for online in sorted({c.online for c in curves}):
        figures.append(f"curves_{online}.png")
        plot_online(runs, online, out / figures[-1], colors)

    if agg["available"]:
        footer = ["IQM and probability of improvement with bootstrap intervals: [aggregate.md](aggregate.md)."]
    else:
        footer = [f"IQM and probability of improvement need rliable: `{agg['install']}` adds it."]
    atomic_write_text(out / "regret.csv", rows_csv(rows))
    atomic_write_text(out / "regret.md", regret_markdown(rows, norm, pairs, footer))
    atomic_write_text(out / "aggregate.md", aggregate_markdown(agg))
    atomic_write_text(out / "aggregate.csv", aggregate_csv(agg))
    summary = {
        "runs": relative_names(found),
        "rows": rows,
        "normalized_regret": {f"{off}->{on}": v for (off, on), v in sorted(norm.items())},
        "pairs": pairs,
        "aggregate": agg,
        "figures": figures,
    }
    atomic_write_json(out / "summary.json", summary)
    return summary

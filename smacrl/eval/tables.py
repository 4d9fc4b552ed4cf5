"""The report's tables: the paper's table 1 (normalized regret), tables 2-5 (per-task regret, one
table per online algorithm) and the transfer at the switch, as rows, Markdown and CSV.

One row per (task, offline, online) carries everything measured for that cell over its seeds; the
Markdown and CSV are views of those rows, so the files and ``summary.json`` cannot disagree.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from typing import Any

from smacrl.eval.metrics import Curve, normalized_regret, regret_table, transfer_summary

Row = dict[str, Any]


def report_rows(curves: list[Curve]) -> tuple[list[Row], dict[tuple[str, str], float], dict]:
    """The rows sorted by (task, offline, online), table 1's normalized regret per pair, and the regret table."""
    table = regret_table(curves)
    norm = normalized_regret(table)
    transfer = transfer_summary(curves)
    rows = []
    for (task, off, on), r in sorted(table.items()):
        t = transfer[(task, off, on)]
        rows.append({
            "task": task, "offline": off, "online": on, "regret_mean": r["mean"], "regret_se": r["se"],
            "seeds": r["n"], "r_star": r["r_star"], "j0": t["j0"], "j1": t["j1"], "drop": t["drop"],
            "drop_se": t["drop_se"], "stable_transfer": t["stable_transfer"], "normalized_regret": norm[(off, on)],
        })  # fmt: skip
    return rows, norm, table


def pair_transfer(rows: list[Row]) -> dict[str, dict[str, Any]]:
    """Per ``offline->online`` pair, over its tasks: how many transferred stably, how many dropped
    (drop > 0), and table 1's normalized regret. Drops are counted, not averaged: their scale is the
    task's return scale."""
    by_pair: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in rows:
        by_pair[(r["offline"], r["online"])].append(r)
    return {
        f"{off}->{on}": {
            "offline": off,
            "online": on,
            "tasks": len(rs),
            "stable_tasks": sum(bool(r["stable_transfer"]) for r in rs),
            "dropped_tasks": sum(r["drop"] > 0 for r in rs),
            "normalized_regret": rs[0]["normalized_regret"],
        }
        for (off, on), rs in sorted(by_pair.items())
    }


def rows_csv(rows: list[Row]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _ranks(rows: list[Row]) -> dict[tuple[str, str, str], int]:
    """Rank of each cell's mean regret among all pairs on its task (1 = lowest), the paper's gold,
    silver and bronze, which it assigns per task across all four tables."""
    by_task: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_task[r["task"]].append(r)
    ranks = {}
    for rs in by_task.values():
        for i, r in enumerate(sorted(rs, key=lambda r: (r["regret_mean"], r["offline"], r["online"]))):
            ranks[(r["task"], r["offline"], r["online"])] = i + 1
    return ranks


def _table1(norm: dict[tuple[str, str], float]) -> list[str]:
    offs = sorted({off for off, _ in norm})
    ons = sorted({on for _, on in norm})
    best = {on: min(v for (_, o), v in norm.items() if o == on) for on in ons}
    lines = [
        "## Table 1: normalized regret (lower is better)",
        "",
        "Per task, each pair's mean regret is min-max normalized over all pairs on that task (0 = the best",
        "pair, 1 = the worst), then averaged over the tasks the pair ran on. Bold: the lowest per online algorithm.",
        "",
        "| offline \\ online | " + " | ".join(ons) + " |",
        "|---|" + "---|" * len(ons),
    ]
    for off in offs:
        cells = []
        for on in ons:
            v = norm.get((off, on))
            cells.append("-" if v is None else f"**{v:.3f}**" if v == best[on] else f"{v:.3f}")
        lines.append(f"| {off} | " + " | ".join(cells) + " |")
    return lines + [""]


def _regret_tables(rows: list[Row]) -> list[str]:
    ranks = _ranks(rows)
    lines = []
    for online in sorted({r["online"] for r in rows}):
        mine = [r for r in rows if r["online"] == online]
        seeds = sorted({r["seeds"] for r in mine})
        n = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
        lines += [
            f"## Regret when fine-tuning with {online} (tables 2-5; lower is better)",
            "",
            f"Mean ± s.e. over seeds ({n} per cell). (k): the k-th lowest regret on the task over all tables (k <= 3).",
            "",
        ]
        offs = sorted({r["offline"] for r in mine})
        lines += ["| task | " + " | ".join(offs) + " |", "|---|" + "---|" * len(offs)]
        cells_by = {(r["task"], r["offline"]): r for r in mine}
        for task in sorted({r["task"] for r in mine}):
            cells = []
            for off in offs:
                r = cells_by.get((task, off))
                if r is None:
                    cells.append("-")
                    continue
                rank = ranks[(task, off, online)]
                cells.append(f"{r['regret_mean']:.2f} ± {r['regret_se']:.2f}" + (f" ({rank})" if rank <= 3 else ""))
            lines.append(f"| {task} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _transfer(rows: list[Row], pairs: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "## Transfer at the switch",
        "",
        "J(pi_0): the offline checkpoint's return; J(pi_1): the first online evaluation (means over seeds).",
        "Drop: J(pi_0) minus the lowest of the first 10% of online evaluations (mean ± s.e.; > 0: the return",
        "fell). Stable: E[J(pi_1)] >= E[J(pi_0)] (section 3).",
        "",
        "| task | offline → online | seeds | J(pi_0) | J(pi_1) | drop | stable |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['offline']} → {r['online']} | {r['seeds']} | {r['j0']:.2f} | {r['j1']:.2f} | "
            f"{r['drop']:.2f} ± {r['drop_se']:.2f} | {'yes' if r['stable_transfer'] else 'no'} |"
        )
    lines += [
        "",
        "## Transfer per pair",
        "",
        "Over the tasks each pair ran on: on how many it transferred stably, and on how many it dropped.",
        "",
        "| offline → online | stable transfer | drop > 0 | normalized regret |",
        "|---|---|---|---|",
    ]
    for p in pairs.values():
        lines.append(
            f"| {p['offline']} → {p['online']} | {p['stable_tasks']}/{p['tasks']} tasks | "
            f"{p['dropped_tasks']}/{p['tasks']} tasks | {p['normalized_regret']:.3f} |"
        )
    return lines + [""]


def regret_markdown(rows: list[Row], norm: dict[tuple[str, str], float], pairs: dict, footer: list[str]) -> str:
    """``regret.md``: table 1, tables 2-5, the transfer per task and per pair, then ``footer``."""
    lines = ["# Offline-to-online report", ""]
    lines += _table1(norm) + _regret_tables(rows) + _transfer(rows, pairs) + footer
    return "\n".join(lines) + "\n"

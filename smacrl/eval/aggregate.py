"""Aggregate statistics over tasks and seeds with rliable (Agarwal et al. 2021): ``aggregate.md`` and
``aggregate.csv``.

Mean regret per cell (tables 2-5) says little about how sure a ranking is with a handful of seeds.
Following rliable, each offline -> online pair gets the interquartile mean (IQM) of a per-run score,
pooled over its seeds and tasks, with a 95% stratified-bootstrap confidence interval (seeds resampled
within each task); and, per online algorithm, the probability that SMAC improves on each baseline.

The score is :func:`smacrl.eval.metrics.run_scores`: one minus the run's regret min-max normalized
with its task's table-1 bounds (see :data:`SCORE_DEFINITION`). It is higher-is-better and on one scale
across tasks, which the IQM needs; the probability of improvement compares runs within a task only,
so on this score it is the probability that a SMAC run has the lower regret.

rliable wants one ``[seeds, tasks]`` array per algorithm. A pair with unequal seed counts across its
tasks keeps the lowest-numbered seeds, as many as its smallest task has, and the output says so.
The bootstrap draws from NumPy's global generator (rliable's ``StratifiedBootstrap`` ignores its
``random_state``), so each estimate reseeds it with ``seed`` and restores it afterwards: the same
runs give the same numbers, and an estimate does not depend on which other pairs are in the report.

rliable is optional (the ``sweep`` extra): without it the report says what to install and goes on.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np

from smacrl.eval.metrics import Curve, run_scores

SMAC = "smac"
INSTALL = "pip install 'smacrl[sweep]'"
SCORE_DEFINITION = (
    "score = 1 - (regret - lo) / (hi - lo), with regret the run's (appendix G) and lo, hi the lowest and "
    "highest mean regret of any offline → online pair on the run's task (table 1's bounds): 1 is the best "
    "pair's mean on the task, 0 the worst's; single runs can fall outside [0, 1]. A task where every pair "
    "has the same mean regret (or with one pair only) scores 1."
)
CSV_FIELDS = ("statistic", "online", "offline", "baseline", "estimate", "ci_low", "ci_high", "seeds",
              "baseline_seeds", "tasks", "note")  # fmt: skip


def load_rliable() -> tuple[Any, Any] | None:
    """``(rliable.library, rliable.metrics)``, or None where rliable is not installed (or fails to import)."""
    try:
        from rliable import library, metrics
    except Exception:  # an optional extra: a broken install must not stop the report either
        return None
    return library, metrics


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _matrix(by_task: dict[str, list[tuple[int, float]]], tasks: list[str]) -> tuple[np.ndarray, str]:
    """``[seeds, tasks]`` scores, truncated to the smallest task's seed count (lowest seeds kept), and a
    note saying what was cut."""
    counts = {t: len(by_task[t]) for t in tasks}
    n = min(counts.values())
    mat = np.array([[score for _, score in by_task[t][:n]] for t in tasks]).T
    note = ""
    if len(set(counts.values())) > 1:
        had = ", ".join(f"{t} {k}" for t, k in counts.items())
        note = f"unequal seeds per task ({had}): kept the {n} lowest seeds of each"
    return mat, note


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def aggregate_statistics(curves: list[Curve], table: dict, *, reps: int = 2000, seed: int = 0) -> dict[str, Any]:
    """IQM with CI per pair and SMAC's probability of improvement per baseline; ``available`` False
    (with the ``install`` line) without rliable."""
    doc: dict[str, Any] = {"score": SCORE_DEFINITION, "reps": reps, "seed": seed, "confidence": 0.95}
    rl = load_rliable()
    if rl is None:
        return {**doc, "available": False, "install": INSTALL, "iqm": {}, "probability_of_improvement": {}}
    rly, metrics = rl
    by_pair: dict[tuple[str, str], dict[str, list[tuple[int, float]]]] = defaultdict(dict)
    for (task, off, on), scores in sorted(run_scores(curves, table).items()):
        by_pair[(off, on)][task] = scores

    def estimate(data: np.ndarray | list[np.ndarray], func: Any) -> tuple[float, float, float]:
        with _seeded(seed):
            point, ci = rly.get_interval_estimates({"x": data}, func, reps=reps, confidence_interval_size=0.95)
        return float(point["x"][0]), float(ci["x"][0][0]), float(ci["x"][1][0])

    iqm = {}
    for (off, on), by_task in sorted(by_pair.items()):
        tasks = sorted(by_task)
        mat, note = _matrix(by_task, tasks)
        value, lo, hi = estimate(mat, lambda x: np.array([metrics.aggregate_iqm(x)]))
        single = "one seed: the interval has no seed variation to resample" if len(mat) == 1 else ""
        iqm[f"{off}->{on}"] = {"offline": off, "online": on, "iqm": value, "ci_low": lo, "ci_high": hi,
                               "seeds": len(mat), "tasks": tasks, "note": _join(note, single)}  # fmt: skip

    poi = {}
    for online in sorted({on for off, on in by_pair if off == SMAC}):
        for base in sorted(off for off, on in by_pair if on == online and off != SMAC):
            key = f"{SMAC}->{online} vs {base}->{online}"
            mine, theirs = by_pair[(SMAC, online)], by_pair[(base, online)]
            tasks = sorted(set(mine) & set(theirs))
            entry: dict[str, Any] = {"online": online, "offline": SMAC, "baseline": base, "tasks": tasks}
            if not tasks:
                poi[key] = {**entry, "probability": None, "ci_low": None, "ci_high": None, "seeds": 0,
                            "baseline_seeds": 0, "note": "no task in common"}  # fmt: skip
                continue
            x, note_x = _matrix(mine, tasks)
            y, note_y = _matrix(theirs, tasks)
            value, lo, hi = estimate([x, y], lambda a, b: np.array([metrics.probability_of_improvement(a, b)]))
            single = "one seed each: the interval is degenerate" if len(x) == len(y) == 1 else ""
            notes = _join(note_x and f"{SMAC}: {note_x}", note_y and f"{base}: {note_y}", single)
            poi[key] = {**entry, "probability": value, "ci_low": lo, "ci_high": hi, "seeds": len(x),
                        "baseline_seeds": len(y), "note": notes}  # fmt: skip
    return {**doc, "available": True, "iqm": iqm, "probability_of_improvement": poi}


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def aggregate_markdown(agg: dict[str, Any]) -> str:
    """``aggregate.md``: the score's definition, the IQM table and the probability-of-improvement table."""
    lines = ["# Aggregate statistics over tasks and seeds (rliable)", ""]
    if not agg["available"]:
        lines.append(f"rliable is not installed, so there are no IQM or probability-of-improvement estimates: "
                     f"`{agg['install']}` adds it.")  # fmt: skip
        return "\n".join(lines) + "\n"
    lines += [
        f"Per-run score: {agg['score']}",
        "",
        f"Intervals: {agg['confidence']:.0%} stratified bootstrap (seeds resampled within each task), "
        f"{agg['reps']} repetitions, NumPy seed {agg['seed']}.",
        "",
        "## IQM of the score per offline → online pair (higher is better)",
        "",
        "The interquartile mean pools every seed on every task of the pair and averages the middle 50%.",
        "",
        "| offline → online | IQM | 95% CI | seeds x tasks | note |",
        "|---|---|---|---|---|",
    ]
    for r in agg["iqm"].values():
        lines.append(
            f"| {r['offline']} → {r['online']} | {_num(r['iqm'])} | [{_num(r['ci_low'])}, {_num(r['ci_high'])}] | "
            f"{r['seeds']} x {len(r['tasks'])} | {r['note']} |"
        )
    lines += [
        "",
        "## Probability that SMAC improves on each baseline",
        "",
        "P(SMAC > baseline): the chance that a SMAC run scores above a baseline run on the same task (lower",
        "regret), averaged over the tasks both ran; 0.5 is a tie, 1 means every SMAC run beat every baseline run.",
        "",
    ]
    if not agg["probability_of_improvement"]:
        lines.append(f"No pair to compare: this needs runs of offline algorithm `{SMAC}` and of a baseline "
                     f"fine-tuned with the same online algorithm.")  # fmt: skip
        return "\n".join(lines) + "\n"
    lines += ["| online | SMAC vs | P(SMAC > baseline) | 95% CI | seeds (SMAC, baseline) x tasks | note |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for r in agg["probability_of_improvement"].values():
        lines.append(
            f"| {r['online']} | {r['baseline']} | {_num(r['probability'])} | "
            f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}] | ({r['seeds']}, {r['baseline_seeds']}) x "
            f"{len(r['tasks'])} | {r['note']} |"
        )
    return "\n".join(lines) + "\n"


def aggregate_csv(agg: dict[str, Any]) -> str:
    """``aggregate.csv``: one row per estimate (``iqm`` or ``probability_of_improvement``); header
    only without rliable."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for r in agg["iqm"].values():
        writer.writerow({"statistic": "iqm", "online": r["online"], "offline": r["offline"], "baseline": "",
                         "estimate": r["iqm"], "ci_low": r["ci_low"], "ci_high": r["ci_high"], "seeds": r["seeds"],
                         "baseline_seeds": "", "tasks": len(r["tasks"]), "note": r["note"]})  # fmt: skip
    for r in agg["probability_of_improvement"].values():
        writer.writerow({"statistic": "probability_of_improvement", "online": r["online"], "offline": r["offline"],
                         "baseline": r["baseline"], "estimate": r["probability"], "ci_low": r["ci_low"],
                         "ci_high": r["ci_high"], "seeds": r["seeds"], "baseline_seeds": r["baseline_seeds"],
                         "tasks": len(r["tasks"]), "note": r["note"]})  # fmt: skip
    return buf.getvalue()

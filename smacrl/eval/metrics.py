"""Offline-to-online metrics (paper sections 3 and 7, appendix G).

An online run is summarized by its evaluation curve ``(steps, returns)``, where step 0 is the
offline checkpoint as loaded, J(pi_0), and later steps are online updates.

- **Transfer drop**: ``J(pi_0) - min(first 10% of the online evaluations)``. Positive means the
  return fell after the switch. "First 10%" is the first ``ceil(0.1 n)`` of the ``n`` evaluations
  after step 0 (at least one).
- **Stable transfer** (section 3): ``E[J(pi_1)] >= E[J(pi_0)]`` over seeds, with J(pi_1) the first
  evaluation after step 0.
- **Regret** (appendix G): ``(1/T) sum_t (R* - R_t)`` over the ``T`` online evaluations, where
  ``R*`` is the best return observed over all runs of the compared set on that task.
- **Normalized regret** (table 1): per task, min-max normalize the mean regret of every
  (offline, online) pair to [0, 1] (0 = best pair, 1 = worst), then average over tasks.
- **Run score** (for aggregate statistics across tasks): ``1 - (regret - lo) / (hi - lo)`` for one
  run, with ``lo`` and ``hi`` the lowest and highest mean regret of any pair on the run's task, the
  bounds table 1 normalizes with. Regret is lower-is-better and its scale differs per task; this
  score is higher-is-better and on a common scale (1 = the best pair's mean, 0 = the worst pair's).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Curve:
    """One online run's evaluation curve and what it belongs to."""

    task: str
    offline: str
    online: str
    seed: int
    steps: np.ndarray
    returns: np.ndarray

    @property
    def j0(self) -> float:
        return float(self.returns[self.steps == 0][0])

    @property
    def online_returns(self) -> np.ndarray:
        return self.returns[self.steps > 0]

    @property
    def j1(self) -> float:
        return float(self.online_returns[0])


def transfer_drop(steps: Sequence[float], returns: Sequence[float], fraction: float = 0.1) -> float:
    steps, returns = np.asarray(steps), np.asarray(returns, dtype=float)
    if not (steps == 0).any() or not (steps > 0).any():
        raise ValueError("a transfer drop needs the step-0 evaluation and at least one online evaluation")
    online = returns[steps > 0]
    k = max(1, math.ceil(fraction * len(online)))
    return float(returns[steps == 0][0] - online[:k].min())


def stable_transfer(j0: Sequence[float], j1: Sequence[float]) -> bool:
    """Section 3's criterion ``E[J(pi_1)] >= E[J(pi_0)]``, expectations over seeds."""
    return bool(np.mean(j1) >= np.mean(j0))


def regret(online_returns: Sequence[float], r_star: float) -> float:
    r = np.asarray(online_returns, dtype=float)
    return float(np.mean(r_star - r))


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (0 for a single value)."""
    v = np.asarray(values, dtype=float)
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
    return float(v.mean()), se


def regret_table(curves: Iterable[Curve]) -> dict[tuple[str, str, str], dict[str, float]]:
    """Per (task, offline, online): regret mean, standard error and seed count (tables 2-5)."""
    curves = list(curves)
    best: dict[str, float] = defaultdict(lambda: -math.inf)
    for c in curves:
        best[c.task] = max(best[c.task], float(np.max(c.returns)))
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for c in curves:
        groups[(c.task, c.offline, c.online)].append(regret(c.online_returns, best[c.task]))
    out = {}
    for key, values in groups.items():
        m, se = mean_se(values)
        out[key] = {"mean": m, "se": se, "n": len(values), "r_star": best[key[0]]}
    return out


def normalized_regret(table: dict[tuple[str, str, str], dict[str, float]]) -> dict[tuple[str, str], float]:
    """Table 1: min-max normalize each task's pair regrets to [0, 1], then average over tasks."""
    by_task: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
    for (task, off, on), row in table.items():
        by_task[task][(off, on)] = row["mean"]
    sums: dict[tuple[str, str], list[float]] = defaultdict(list)
    for pairs in by_task.values():
        lo, hi = min(pairs.values()), max(pairs.values())
        for pair, r in pairs.items():
            sums[pair].append(0.0 if hi == lo else (r - lo) / (hi - lo))
    return {pair: float(np.mean(v)) for pair, v in sums.items()}


def transfer_summary(curves: Iterable[Curve]) -> dict[tuple[str, str, str], dict[str, float]]:
    """Per (task, offline, online): mean J(pi_0), J(pi_1), transfer drop (± s.e.) and stable transfer."""
    groups: dict[tuple[str, str, str], list[Curve]] = defaultdict(list)
    for c in curves:
        groups[(c.task, c.offline, c.online)].append(c)
    out = {}
    for key, cs in groups.items():
        drops = [transfer_drop(c.steps, c.returns) for c in cs]
        j0, j1 = [c.j0 for c in cs], [c.j1 for c in cs]
        d, d_se = mean_se(drops)
        out[key] = {
            "j0": float(np.mean(j0)),
            "j1": float(np.mean(j1)),
            "drop": d,
            "drop_se": d_se,
            "stable_transfer": stable_transfer(j0, j1),
            "n": len(cs),
        }
    return out


def run_scores(
    curves: Iterable[Curve], table: dict[tuple[str, str, str], dict[str, float]] | None = None
) -> dict[tuple[str, str, str], list[tuple[int, float]]]:
    """Per (task, offline, online): ``(seed, score)`` of each run, sorted by seed (see the module docstring).

    The bounds are table 1's, so the mean score of a pair on a task is exactly one minus its
    normalized regret there. Single runs scatter around their pair's mean, so a run can score above 1
    or below 0. A task whose pairs all have the same mean regret (or that holds only one pair) scores
    1 for every run, as table 1 gives such pairs 0.
    """
    curves = list(curves)
    table = regret_table(curves) if table is None else table
    bounds: dict[str, list[float]] = defaultdict(list)
    for (task, _, _), row in table.items():
        bounds[task].append(row["mean"])
    out: dict[tuple[str, str, str], list[tuple[int, float]]] = defaultdict(list)
    for c in curves:
        lo, hi = min(bounds[c.task]), max(bounds[c.task])
        r = regret(c.online_returns, table[(c.task, c.offline, c.online)]["r_star"])
        out[(c.task, c.offline, c.online)].append((c.seed, 1.0 if hi == lo else 1.0 - (r - lo) / (hi - lo)))
    return {key: sorted(values) for key, values in out.items()}

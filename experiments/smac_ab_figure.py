"""One figure for docs/smac_readings.md (issue 15), made from the committed metrics under results/smac_ab:

- left: the point maze's transfer, J(pi_0) against J after 250 SAC updates, one point per SMAC reading and
  score model (4 seeds each) and per baseline; points on or above the dashed line meet the paper's headline
  criterion E[J(pi_1)] >= E[J(pi_0)] - 0.05;
- right: the trade-off at 3,000 updates, the maze's offline success against the pendulum's offline return,
  with the issue's two offline targets as lines.
"""

from __future__ import annotations

import math
from pathlib import Path

from smac_ab_design import MAZE, RESULTS, SEEDS, TASKS
from smac_ab_tables import _arm_stats, _evals, _rows, mean_and_se

PENDULUM = TASKS[1]
PENDULUM_DATA_MEAN = -1259.0  # the data's mean return (the pendulum target)
MAZE_TARGET = 0.85  # the maze offline target (and within 0.05 of the best baseline)

# label -> (colour, marker, variants: one point each, 4 seeds per point)
SMAC_GROUPS = {
    "SMAC, 3k, paper's alpha_psi rate": ("tab:blue", "o", ["score_cache", *(f"score_seed{i}" for i in range(4))]),
    "SMAC, 3k, alpha_psi rate 1e-5": ("tab:green", "o", [f"alpha_lr_1e-5_seed{i}" for i in range(3)]),
    "SMAC, 3k, alpha_psi = temperature": ("tab:red", "o", [f"alpha_temperature_seed{i}" for i in range(4)]),
    "SMAC, 10k, paper's alpha_psi rate": ("tab:blue", "s", [f"seed{i}_10k" for i in range(4)]),
    "SMAC, 10k, alpha_psi rate 1e-5": ("tab:green", "s", ["alpha_lr_1e-5_seed0_10k", "alpha_lr_1e-5_10k"]),
    "SMAC, 10k, alpha_psi = temperature": ("tab:red", "s", [f"alpha_temperature_seed{i}_10k" for i in range(4)]),
}
BASELINES = {"IQL": "iql", "CQL": "cql", "Cal-QL": "calql", "TD3+BC": "td3bc"}
# the right panel's SMAC points: label -> (colour, marker, [(maze variant, pendulum variant)]); the score at the
# data's 0.9 quantile of w is 1.0 on the maze (the same runs, bit for bit) and 0.51 on the pendulum
TRADEOFF = {
    label: (colour, marker, [(v, v) for v in variants if v != "score_cache"])  # the cache's has no pendulum twin
    for label, (colour, marker, variants) in SMAC_GROUPS.items()
    if "3k" in label
} | {
    "SMAC, 3k, alpha_psi = temperature, w at the 0.9 quantile": (
        "tab:purple",
        "^",
        [(f"alpha_temperature_seed{i}", f"alpha_temperature_w_0.51_seed{i}") for i in range(4)],
    )
}


def smac_transfer(variant: str) -> tuple[list[float], list[float]] | None:
    """Per seed J(pi_0) and J after 250 updates of a SMAC variant's own transfer run on the maze."""
    j0, j1 = [], []
    for s in SEEDS:
        ev = _evals(_rows(RESULTS / MAZE / variant / f"s{s}" / "online" / "metrics.jsonl"), "eval/success_rate")
        if 0 in ev and 250 in ev:
            j0.append(ev[0])
            j1.append(ev[250])
    return (j0, j1) if j0 else None


def offline_final(task: str, variant: str) -> list[float]:
    """Per seed, the last offline evaluation (success on the maze, return on the pendulum)."""
    key = "eval/success_rate" if task == MAZE else "eval/return_mean"
    out = []
    for s in SEEDS:
        ev = _evals(_rows(RESULTS / task / variant / f"s{s}" / "offline" / "metrics.jsonl"), key)
        if ev:
            out.append(ev[max(ev)])
    return out


def _point(axis, xs: list[float], ys: list[float], **kw) -> tuple[float, float]:
    """One mean ± s.e. point of per-seed values; returns the means."""
    (x, xe), (y, ye) = mean_and_se(xs), mean_and_se(ys)
    axis.errorbar(x, y, xerr=xe, yerr=ye, capsize=2, **kw)
    return x, y


def _baseline(axis, name: str, xs: list[float], ys: list[float], offset: tuple[int, int]) -> None:
    xy = _point(axis, xs, ys, fmt="D", color="0.3", ms=6)
    axis.annotate(name, xy, textcoords="offset points", xytext=offset, fontsize=8, color="0.3")


def _note(axis, x: float, y: float, text: str, **kw) -> None:
    axis.text(x, y, text, transform=axis.transAxes, fontsize=7.5, color="0.3", **kw)


def figure(out: Path) -> Path:
    from smacrl.eval.plots import _pyplot, _save

    fig, (ax, bx) = _pyplot().subplots(1, 2, figsize=(13, 5.6))
    for label, (colour, marker, variants) in SMAC_GROUPS.items():
        face = colour if marker == "s" else "white"
        for i, (j0, j1) in enumerate(p for p in map(smac_transfer, variants) if p):
            _point(ax, j0, j1, fmt=marker, color=colour, mfc=face, ms=7, alpha=0.85, label=None if i else label)
    for name, variant in BASELINES.items():
        if st := _arm_stats(MAZE, variant, "handover"):
            _baseline(ax, name, st["j0"], st["j1"], (-8, -13))
    grid = [0.0, 1.05]
    ax.plot(grid, [g - 0.05 for g in grid], "--", color="0.4", lw=1, label="headline: J(pi_1) = J(pi_0) - 0.05")
    ax.plot(grid, grid, ":", color="0.7", lw=1, label="no change")
    ax.set(xlim=(0.2, 1.03), ylim=(0.0, 1.03), xlabel="J(pi_0): offline success at the handover")
    ax.set(ylabel="J after 250 SAC updates", title="Point maze: the switch to SAC (mean ± s.e., 4 seeds a point)")
    ax.legend(fontsize=7.5, loc="upper left")
    _note(ax, 0.99, 0.02, "open: 3,000 offline updates, filled: 10,000; grey: baselines at 3,000", ha="right")

    for label, (colour, marker, pairs) in TRADEOFF.items():
        for i, (maze_variant, pendulum_variant) in enumerate(pairs):
            maze, pend = offline_final(MAZE, maze_variant), offline_final(PENDULUM, pendulum_variant)
            if maze and pend:
                _point(bx, maze, pend, fmt=marker, color=colour, mfc="white", ms=7, label=None if i else label)
    for name, variant in BASELINES.items():
        maze, pend = offline_final(MAZE, variant), offline_final(PENDULUM, variant)
        if maze and pend and all(math.isfinite(v) for v in maze + pend):
            _baseline(bx, name, maze, pend, (6, 4))
    bx.axvline(MAZE_TARGET, ls="--", color="0.4", lw=1)
    bx.axhline(PENDULUM_DATA_MEAN, ls="--", color="0.4", lw=1)
    bx.text(MAZE_TARGET, bx.get_ylim()[0], " maze target 0.85", fontsize=8, color="0.4", va="bottom")
    bx.text(bx.get_xlim()[0], PENDULUM_DATA_MEAN + 4, " pendulum target: the data's mean", fontsize=8, color="0.4")
    bx.set(xlabel="point maze: offline success at 3,000 updates", ylabel="pendulum: offline return at 3,000 updates")
    bx.set(title="Offline at the cpu preset: each point one score model (SMAC) or method")
    if bx.get_legend_handles_labels()[0]:  # no SMAC reading has both tasks' runs yet: no legend
        bx.legend(fontsize=7.5, loc="upper left")
    _note(bx, 0.99, 0.06, "Cal-QL falls back to CQL on the pendulum", ha="right", va="bottom")
    return _save(fig, out)  # the report's png writer: no version stamp, temporary file then rename

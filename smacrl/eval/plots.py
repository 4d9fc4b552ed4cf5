"""The report's learning-curve figures, in the format of the paper's figures 6-8.

Each line is the mean evaluation return over seeds with a ± standard-error band. The online phase is
drawn at steps >= 0; the offline run's curve, where found, is drawn at negative steps in a shaded
band, and a dotted line marks the switch at 0.

- ``curves.png``: one panel per task, every offline -> online pair a line;
- ``curves_<online>.png``: figures 6-8, one per online algorithm, one panel per task, each offline
  algorithm a line. An offline algorithm keeps its colour in all of these figures.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from smacrl.eval.metrics import Curve
from smacrl.eval.runs import OfflineCurve
from smacrl.io import atomic_write_bytes

Run = tuple[Curve, OfflineCurve | None]


def _mean_se(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and standard error over seeds at the steps every curve evaluated."""
    common = sorted(set.intersection(*(set(s.tolist()) for s, _ in curves)))
    ys = np.array([[dict(zip(s.tolist(), r.tolist()))[x] for x in common] for s, r in curves]).reshape(
        len(curves), len(common)
    )
    mean = ys.mean(0)
    se = ys.std(0, ddof=1) / np.sqrt(len(ys)) if len(ys) > 1 else np.zeros_like(mean)
    return np.array(common), mean, se


def _panel(ax, groups: dict[str, list[Run]], colors: dict[str, str]) -> None:
    """One task: a line per group (in the dict's order), its offline phase at negative steps."""
    offline_len = 0.0
    for label, members in groups.items():
        x, m, se = _mean_se([(c.steps, c.returns) for c, _ in members])
        (line,) = ax.plot(x, m, label=label, color=colors.get(label))
        ax.fill_between(x, m - se, m + se, color=line.get_color(), alpha=0.2)
        offs = [o for _, o in members if o is not None]
        if offs:
            ox, om, ose = _mean_se(offs)
            if len(ox):
                shift = ox.max()
                offline_len = max(offline_len, shift)
                ax.plot(ox - shift, om, color=line.get_color())
                ax.fill_between(ox - shift, om - ose, om + ose, color=line.get_color(), alpha=0.2)
    if offline_len:
        ax.axvspan(-offline_len, 0, color="0.85", alpha=0.6, lw=0, label="offline phase")
    ax.axvline(0, color="k", ls=":", lw=1.2)
    ax.set_xlabel("gradient steps (offline < 0 < online)")
    ax.set_ylabel("evaluation return")
    ax.legend(fontsize=8)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})  # no version stamp: same runs, same bytes
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(runs: list[Run], path: Path) -> Path:
    """``curves.png``: a panel per task in one row, every offline -> online pair a line."""
    plt = _pyplot()
    tasks = sorted({c.task for c, _ in runs})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        groups: dict[str, list[Run]] = defaultdict(list)
        for c, off in sorted((r for r in runs if r[0].task == task), key=lambda r: (r[0].offline, r[0].online)):
            groups[f"{c.offline} → {c.online}"].append((c, off))
        _panel(ax, groups, {})
        ax.set_title(task)
    return _save(fig, path)


def offline_colors(runs: list[Run]) -> dict[str, str]:
    """A fixed colour per offline algorithm (by sorted name), the same in every per-online figure."""
    names = sorted({c.offline for c, _ in runs})
    return {name: f"C{i % 10}" for i, name in enumerate(names)}


def plot_online(runs: list[Run], online: str, path: Path, colors: dict[str, str] | None = None) -> Path:
    """``curves_<online>.png`` (figures 6-8): the runs fine-tuned by ``online``, a panel per task in
    rows of three, each offline algorithm a line."""
    plt = _pyplot()
    colors = offline_colors(runs) if colors is None else colors
    mine = sorted((r for r in runs if r[0].online == online), key=lambda r: (r[0].task, r[0].offline, r[0].seed))
    tasks = sorted({c.task for c, _ in mine})
    ncols = min(3, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 4 * nrows), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        groups: dict[str, list[Run]] = defaultdict(list)
        for c, off in mine:
            if c.task == task:
                groups[c.offline].append((c, off))
        _panel(ax, groups, colors)
        ax.set_title(f"{task}: fine-tuned with {online}")
    for ax in list(axes.flat)[len(tasks) :]:
        ax.set_visible(False)
    return _save(fig, path)

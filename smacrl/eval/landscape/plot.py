"""Figures of the landscapes' JSON summaries: the line, the plane and the t-SNE map.

matplotlib is imported only when a figure is drawn, with the non-interactive Agg backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_line(summary: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array(summary["t"])
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label, g in summary["groups"].items():
        mean, se = np.array(g["mean"]), np.array(g["se"])
        (line,) = ax.plot(t, mean, marker="o", ms=3, label=f"{label} (n={g['pairs']})")
        if g["pairs"] > 1:
            ax.fill_between(t, mean - se, mean + se, color=line.get_color(), alpha=0.25)
    ax.set_xlabel("t   (0 = pre-trained, 1 = fine-tuned)")
    ax.set_ylabel("return")
    ax.set_title(f"{summary['env']}: reward along the line")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_plane(summary: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y, z = np.array(summary["x"]), np.array(summary["y"]), np.array(summary["return_mean"])
    fig, ax = plt.subplots(figsize=(6, 4.8))
    levels = 15 if np.ptp(z) > 0 else None
    filled = ax.contourf(x, y, z, levels=levels, cmap="viridis")
    if levels is not None:
        ax.contour(x, y, z, levels=filled.levels, colors="k", linewidths=0.3, alpha=0.5)
    fig.colorbar(filled, ax=ax, label="return")
    ck = summary["checkpoints"]
    base = ck[0]["coords"]
    for c, marker, colour in zip(ck, ("o", "*", "s"), ("white", "red", "orange")):
        cx, cy = c["coords"]
        if c is not ck[0]:
            ax.plot([base[0], cx], [base[1], cy], ls="--", lw=1, color=colour)
        ax.scatter([cx], [cy], marker=marker, s=140, c=colour, edgecolors="k", zorder=5)
        ax.annotate(
            f"{c['name']}\n{c['return_mean']:.0f}",
            (cx, cy),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=8,
            color="white",
            bbox=dict(boxstyle="round,pad=0.2", fc="black", alpha=0.5, lw=0),
        )
    ax.set_xlabel("x: distance along u = θ1 − θ")
    ax.set_ylabel("y: distance along w = v − (u·v/u·u) u")
    ax.set_title(f"{summary['env']}: reward on the plane ({summary['episodes']} episodes/point)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_tsne(summary: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["points"]
    x = np.array([r["x"] for r in rows])
    y = np.array([r["y"] for r in rows])
    z = np.array([r["return_mean"] for r in rows])
    fig, ax = plt.subplots(figsize=(6.5, 5))
    vmin, vmax = float(z.min()), float(z.max()) if z.max() > z.min() else float(z.min()) + 1.0
    colours = plt.get_cmap("tab10")
    runs = list(dict.fromkeys(r["run"] for r in rows))
    for n, run in enumerate(runs):
        idx = [i for i, r in enumerate(rows) if r["run"] == run]
        colour = colours(n % 10)
        ax.plot(x[idx], y[idx], color=colour, lw=1.2, label=rows[idx[0]]["label"])
        for i, j in zip(idx[:-1], idx[1:]):
            if (x[j], y[j]) != (x[i], y[i]):
                ax.annotate(
                    "",
                    xy=(x[j], y[j]),
                    xytext=(x[i], y[i]),
                    arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.2, shrinkA=3, shrinkB=3),
                )
        ax.scatter([x[idx[0]]], [y[idx[0]]], marker="D", s=50, facecolors="none", edgecolors=colour, zorder=4)
    points = ax.scatter(x, y, c=z, cmap="viridis", vmin=vmin, vmax=vmax, s=28, edgecolors="k", lw=0.4, zorder=5)
    fig.colorbar(points, ax=ax, label="return")
    ax.margins(0.06)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{summary['env']}: t-SNE of actor checkpoints (◇ = start)", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

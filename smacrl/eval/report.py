"""``smacrl report``: learning curves, regret tables and a JSON summary over online runs.

Each online run directory (written by ``smacrl finetune`` / ``smacrl run``) holds ``config.json``
(online algorithm, offline algorithm, task, seed, offline checkpoint) and ``metrics.jsonl``. The
offline run is found through the checkpoint path (``<offline run>/checkpoints/<file>``); its
evaluation curve is drawn before the switch.

Outputs in ``--out``:

- ``curves.png``: one panel per task, like the paper's figures 6-8: offline phase shaded and drawn
  at negative steps, the switch marked by a dotted line at 0, mean ± standard error over seeds for
  each offline -> online pair;
- ``regret.md`` / ``regret.csv``: per-task regret (mean ± s.e. over seeds), tables 2-5, plus the
  normalized regret of table 1;
- ``summary.json``: the transfer summary (J(pi_0), J(pi_1), drop, stable transfer), the regret
  table and the normalized regret.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from smacrl.errors import SmacrlError
from smacrl.eval.metrics import Curve, normalized_regret, regret_table, transfer_summary
from smacrl.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from smacrl.logger import read_metrics
from smacrl.registry import canonical


def find_online_runs(paths: list[str | Path]) -> list[Path]:
    """Online run directories under ``paths`` (a run directory itself, or any folder above some)."""
    runs = []
    for p in map(Path, paths):
        if not p.exists():
            raise SmacrlError(p, "path", "does not exist")
        for cfg in sorted([p / "config.json"] if (p / "config.json").exists() else p.rglob("config.json")):
            doc = json.loads(cfg.read_text())
            if doc.get("offline_algo") is not None and (cfg.parent / "metrics.jsonl").exists():
                runs.append(cfg.parent)
    if not runs:
        raise SmacrlError(", ".join(map(str, paths)), "config.json", "no online run directories found")
    return runs


def _eval_curve(rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    pts = {r["step"]: r["eval/return_mean"] for r in rows if isinstance(r.get("eval/return_mean"), int | float)}
    steps = np.array(sorted(pts), dtype=float)
    return steps, np.array([pts[s] for s in sorted(pts)], dtype=float)


def load_run(run: Path) -> tuple[Curve, tuple[np.ndarray, np.ndarray] | None]:
    doc = json.loads((run / "config.json").read_text())
    steps, returns = _eval_curve(read_metrics(run))
    if not (steps == 0).any() or not (steps > 0).any():
        raise SmacrlError(run / "metrics.jsonl", "eval/return_mean", "needs the step-0 and at least one online eval")
    online = canonical(doc["algo"], "online")
    curve = Curve(doc.get("task") or "task", doc["offline_algo"], online, int(doc["config"]["seed"]), steps, returns)
    offline = None
    ckpt = doc.get("checkpoint")
    if ckpt:
        off_run = Path(ckpt).parent.parent
        if (off_run / "metrics.jsonl").exists():
            o_steps, o_ret = _eval_curve(read_metrics(off_run))
            if len(o_steps):
                offline = (o_steps, o_ret)
    return curve, offline


def _aggregate(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    common = sorted(set.intersection(*(set(s.tolist()) for s, _ in curves)))
    ys = np.array([[dict(zip(s.tolist(), r.tolist()))[x] for x in common] for s, r in curves])
    mean = ys.mean(0)
    se = ys.std(0, ddof=1) / np.sqrt(len(ys)) if len(ys) > 1 else np.zeros_like(mean)
    return np.array(common), mean, se


def plot_curves(runs: list[tuple[Curve, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({c.task for c, _ in runs})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        groups: dict[tuple[str, str], list[tuple[Curve, Any]]] = defaultdict(list)
        for c, off in runs:
            if c.task == task:
                groups[(c.offline, c.online)].append((c, off))
        offline_len = 0.0
        for (off_algo, on_algo), members in sorted(groups.items()):
            x, m, se = _aggregate([(c.steps, c.returns) for c, _ in members])
            (line,) = ax.plot(x, m, label=f"{off_algo} → {on_algo}")
            ax.fill_between(x, m - se, m + se, color=line.get_color(), alpha=0.2)
            offs = [o for _, o in members if o is not None]
            if offs:
                ox, om, ose = _aggregate(offs)
                shift = ox.max()
                offline_len = max(offline_len, shift)
                ax.plot(ox - shift, om, color=line.get_color())
                ax.fill_between(ox - shift, om - ose, om + ose, color=line.get_color(), alpha=0.2)
        if offline_len:
            ax.axvspan(-offline_len, 0, color="0.85", alpha=0.6, lw=0, label="offline phase")
        ax.axvline(0, color="k", ls=":", lw=1.2)
        ax.set_title(task)
        ax.set_xlabel("gradient steps (offline < 0 < online)")
        ax.set_ylabel("evaluation return")
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def write_report(paths: list[str | Path], out: str | Path) -> dict[str, Any]:
    out = Path(out)
    runs = [load_run(r) for r in find_online_runs(paths)]
    curves = [c for c, _ in runs]
    table = regret_table(curves)
    norm = normalized_regret(table)
    transfer = transfer_summary(curves)
    plot_curves(runs, out / "curves.png")

    rows = []
    for (task, off, on), r in sorted(table.items()):
        t = transfer[(task, off, on)]
        rows.append({
            "task": task, "offline": off, "online": on, "regret_mean": r["mean"], "regret_se": r["se"],
            "seeds": r["n"], "r_star": r["r_star"], "j0": t["j0"], "j1": t["j1"], "drop": t["drop"],
            "drop_se": t["drop_se"], "stable_transfer": t["stable_transfer"], "normalized_regret": norm[(off, on)],
        })  # fmt: skip
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "regret.csv", buf.getvalue())
    atomic_write_text(out / "regret.md", _markdown(rows, norm))
    summary = {
        "runs": [str(r) for r in find_online_runs(paths)],
        "rows": rows,
        "normalized_regret": {f"{off}->{on}": v for (off, on), v in sorted(norm.items())},
    }
    atomic_write_json(out / "summary.json", summary)
    return summary


def _markdown(rows: list[dict[str, Any]], norm: dict[tuple[str, str], float]) -> str:
    lines = ["# Offline-to-online report", ""]
    for online in sorted({r["online"] for r in rows}):
        lines += [f"## Regret when fine-tuning with {online} (lower is better; mean ± s.e. over seeds)", ""]
        offs = sorted({r["offline"] for r in rows if r["online"] == online})
        lines += ["| task | " + " | ".join(offs) + " |", "|---|" + "---|" * len(offs)]
        for task in sorted({r["task"] for r in rows if r["online"] == online}):
            cells = []
            for off in offs:
                hit = [r for r in rows if (r["task"], r["offline"], r["online"]) == (task, off, online)]
                cells.append(f"{hit[0]['regret_mean']:.2f} ± {hit[0]['regret_se']:.2f}" if hit else "-")
            lines.append(f"| {task} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Transfer at the switch", "", "| task | offline → online | J(pi_0) | J(pi_1) | drop | stable |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['offline']} → {r['online']} | {r['j0']:.2f} | {r['j1']:.2f} | "
            f"{r['drop']:.2f} ± {r['drop_se']:.2f} | {'yes' if r['stable_transfer'] else 'no'} |"
        )
    lines += ["", "## Normalized regret (table 1: per-task min-max, averaged over tasks)", ""]
    lines += ["| offline → online | normalized regret |", "|---|---|"]
    lines += [f"| {off} → {on} | {v:.3f} |" for (off, on), v in sorted(norm.items())]
    return "\n".join(lines) + "\n"

"""Finding and reading the online runs a report covers.

An online run directory (written by ``smacrl finetune`` / ``smacrl run``) holds ``config.json``
(online algorithm, offline algorithm, task, seed, offline checkpoint) and ``metrics.jsonl``. The
offline run is found through the checkpoint path (``<offline run>/checkpoints/<file>``); its
evaluation curve is what the figures draw before the switch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from smacrl.errors import SmacrlError
from smacrl.eval.metrics import Curve
from smacrl.logger import read_metrics
from smacrl.registry import canonical

OfflineCurve = tuple[np.ndarray, np.ndarray]
"""``(steps, returns)`` of the offline run's evaluations."""


def find_online_runs(paths: list[str | Path]) -> list[Path]:
    """Online run directories under ``paths`` (a run directory itself, or any folder above some).

    A run reached through two of ``paths`` is listed once.
    """
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
    return list(dict.fromkeys(runs))


def relative_names(runs: list[Path]) -> list[str]:
    """The runs' paths relative to the folder that holds them all, so that a report over a copy of a
    sweep (another folder, the same runs) writes the same summary."""
    absolute = [r.resolve() for r in runs]
    root = Path(os.path.commonpath([r.parent for r in absolute]))
    return [r.relative_to(root).as_posix() for r in absolute]


def _eval_curve(rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    pts = {r["step"]: r["eval/return_mean"] for r in rows if isinstance(r.get("eval/return_mean"), int | float)}
    steps = np.array(sorted(pts), dtype=float)
    return steps, np.array([pts[s] for s in sorted(pts)], dtype=float)


def load_run(run: Path) -> tuple[Curve, OfflineCurve | None]:
    """The run's evaluation curve (step 0 is J(pi_0)), and its offline run's curve where that is found."""
    doc = json.loads((run / "config.json").read_text())
    steps, returns = _eval_curve(read_metrics(run))
    if not (steps == 0).any() or not (steps > 0).any():
        raise SmacrlError(run / "metrics.jsonl", "eval/return_mean", "needs the step-0 and at least one online eval")
    # a variant (smac-score-free, sac-matched) is reported under its label, beside its algorithm
    online = doc["config"].get("label") or canonical(doc["algo"], "online")
    offline_algo = doc.get("offline_label") or canonical(doc["offline_algo"], "offline")
    curve = Curve(doc.get("task") or "task", offline_algo, online, int(doc["config"]["seed"]), steps, returns)
    offline = None
    off_run = _offline_run(run, doc.get("checkpoint"))
    if off_run is not None:
        o_steps, o_ret = _eval_curve(read_metrics(off_run))
        if len(o_steps):
            offline = (o_steps, o_ret)
    return curve, offline


def _offline_run(run: Path, checkpoint: str | None) -> Path | None:
    """The offline run a fine-tuning started from: the checkpoint's run directory where it still is,
    else the sibling ``offline/`` of the layout ``smacrl run`` and sweeps write (a copied or committed
    set of runs, whose recorded checkpoint paths point elsewhere)."""
    candidates = [Path(checkpoint).parent.parent] if checkpoint else []
    candidates.append(run.parent / "offline")
    for off_run in candidates:
        if (off_run / "metrics.jsonl").exists():
            return off_run
    return None

"""The three landscapes: load checkpoints, evaluate their points, write the JSON summary and plot.

Line (figure 4)
    ``theta(t) = (1 - t) theta_A + t theta_B`` for ``t`` in ``linspace(0, 1, points)``; 0 is the
    pre-trained checkpoint, 1 the fine-tuned one. Several pairs with the same algorithms are seeds:
    the plot shows their mean and standard error.

Plane (figure 3, appendix M)
    A ``grid`` x ``grid`` grid on the plane through three checkpoints; the basis, the coordinates
    and the grid's span are described in :mod:`smacrl.eval.landscape.params` (:class:`PlaneBasis`).

t-SNE (figure 5)
    The ``trajectory/`` snapshots of runs (an online run brings in the offline run it started
    from), flattened as in :mod:`smacrl.eval.landscape.params`, are embedded in 2-D by
    scikit-learn's TSNE. Each run is drawn as a line with arrows in training order, and the points
    are coloured by their evaluated return.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smacrl.errors import CheckpointError, SmacrlError
from smacrl.eval.landscape.evaluate import (
    CACHE_NAME,
    EvalSettings,
    ResultCache,
    cache_key,
    evaluate_cached,
    evaluate_checkpoints,
    point_key,
)
from smacrl.eval.landscape.params import (
    PlaneBasis,
    Policy,
    check_compatible,
    line_thetas,
    load_policy,
    unflatten_actor,
)
from smacrl.eval.landscape.plot import plot_line, plot_plane, plot_tsne
from smacrl.io import atomic_write_json


# ----------------------------------------------------------------------------- shared helpers
def _env_of(policies: Sequence[Policy], env: str | None) -> str:
    if env:
        return env
    first = policies[0]
    for p in policies:
        if not p.env_id:
            raise CheckpointError(p.path, "env_id", "checkpoint names no env; pass --env")
        if p.env_id != first.env_id:
            raise CheckpointError(p.path, "env_id", f"is '{p.env_id}' but {first.path} has '{first.env_id}'")
    return str(first.env_id)


def _stack(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([s[k] for s in states]) for k in states[0]}


def _mean_se(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    n = values.shape[axis]
    mean = values.mean(axis)
    se = values.std(axis, ddof=1) / math.sqrt(n) if n > 1 else np.zeros_like(mean)
    return mean, se


def _out_dir(out: str | os.PathLike) -> Path:
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise SmacrlError(path, "--out", "exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------------------- line (figure 4)
def _pair_label(a: Policy, b: Policy) -> str:
    return b.label if b.label.startswith(f"{a.label} → ") else f"{a.label} → {b.label}"


def line_landscape(
    pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    out: str | os.PathLike,
    *,
    points: int = 11,
    env: str | None = None,
    settings: EvalSettings | None = None,
    plot: bool = True,
) -> dict[str, Any]:
    """Evaluate the segment between each (pre-trained, fine-tuned) pair; write ``line.json`` and
    ``line.png`` (mean ± s.e. over the pairs of each ``A-algo -> B-algo`` group)."""
    settings = settings or EvalSettings()
    if not pairs:
        raise SmacrlError("--from/--to", "value", "need at least one pair")
    if points < 2:
        raise SmacrlError("--points", "value", f"must be at least 2, got {points}")
    out = _out_dir(out)
    loaded = []
    for pa, pb in pairs:
        a, b = load_policy(pa), load_policy(pb)
        check_compatible(a, b)
        loaded.append((a, b))
    task = _env_of([p for pair in loaded for p in pair], env)
    cache = ResultCache(out / CACHE_NAME)
    ts = np.linspace(0.0, 1.0, points)
    pair_rows = []
    ends = list({p.digest: p for pair in loaded for p in pair}.values())
    evaluate_checkpoints(ends, task, settings, cache, "line endpoints")
    for n, (a, b) in enumerate(loaded):

        def key(t: float, a=a, b=b) -> str:
            if t == 0.0:
                return point_key(a, task, settings.episodes, settings.seed)
            if t == 1.0:
                return point_key(b, task, settings.episodes, settings.seed)
            return cache_key("line", [a.digest, b.digest], [t], task, settings.episodes, settings.seed)

        def build(idx: Sequence[int], a=a, b=b) -> dict[str, torch.Tensor]:
            return _stack(line_thetas(a, b, [float(ts[i]) for i in idx]))

        returns = evaluate_cached(
            a.spec, [key(float(t)) for t in ts], build, task, settings, cache, f"line {n + 1}/{len(loaded)}"
        )
        pair_rows.append(
            {
                "from": str(a.path),
                "to": str(b.path),
                "label": _pair_label(a, b),
                "distance": float((b.flat() - a.flat()).norm()),
                "returns": returns.tolist(),
                "return_mean": returns.mean(axis=1).tolist(),
            }
        )
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in pair_rows:
        groups.setdefault(row["label"], []).append(row)
    summary = {"t": ts.tolist(), "env": task, "episodes": settings.episodes, "seed": settings.seed, "groups": {}}
    for label, rows in groups.items():
        mean, se = _mean_se(np.array([r["return_mean"] for r in rows]))
        summary["groups"][label] = {"mean": mean.tolist(), "se": se.tolist(), "pairs": len(rows)}
    summary["pairs"] = pair_rows
    atomic_write_json(out / "line.json", summary)
    if plot:
        plot_line(summary, out / "line.png")
    return summary


# ----------------------------------------------------------------------------- plane (figure 3, appendix M)
def plane_landscape(
    base: str | os.PathLike,
    a: str | os.PathLike,
    b: str | os.PathLike,
    out: str | os.PathLike,
    *,
    grid: int = 15,
    lo: float = -0.2,
    hi: float = 1.2,
    env: str | None = None,
    settings: EvalSettings | None = None,
    labels: Sequence[str] | None = None,
    plot: bool = True,
) -> dict[str, Any]:
    """Evaluate a ``grid`` x ``grid`` plane through three checkpoints; write ``plane.json`` and
    ``plane.png``. The checkpoints themselves are evaluated too, at their exact coordinates."""
    settings = settings or EvalSettings()
    if grid < 2:
        raise SmacrlError("--grid", "value", f"must be at least 2, got {grid}")
    if not hi > lo:
        raise SmacrlError("--range", "value", f"needs LO < HI, got {lo} {hi}")
    out = _out_dir(out)
    p0, p1, p2 = load_policy(base), load_policy(a), load_policy(b)
    check_compatible(p0, p1)
    check_compatible(p0, p2)
    task = _env_of([p0, p1, p2], env)
    try:
        basis = PlaneBasis.from_points(p0.flat(), p1.flat(), p2.flat())
    except ValueError as e:
        raise CheckpointError(p2.path if "theta_2" in str(e) else p1.path, "parameters", str(e)) from e
    xs, ys = basis.grid(grid, lo, hi)
    coords = [(float(x), float(y)) for y in ys for x in xs]
    digests = [p0.digest, p1.digest, p2.digest]
    keys = [cache_key("plane", digests, c, task, settings.episodes, settings.seed) for c in coords]
    norm = p0.norm_state()

    def build(idx: Sequence[int]) -> dict[str, torch.Tensor]:
        return _stack([{**norm, **unflatten_actor(basis.point(*coords[i]), p0.state)} for i in idx])

    cache = ResultCache(out / CACHE_NAME)
    anchors = [p0, p1, p2]
    anchor_returns = evaluate_checkpoints(anchors, task, settings, cache, "plane checkpoints")
    returns = evaluate_cached(p0.spec, keys, build, task, settings, cache, f"plane {grid}x{grid}")
    names = list(labels) if labels else [p0.label, p1.label, p2.label]
    summary = {
        "env": task,
        "episodes": settings.episodes,
        "seed": settings.seed,
        "parametrization": "theta + x * u_hat + y * v_hat; u_hat = u/|u|, v_hat = w/|w|, w = v - (u.v/u.u) u",
        "x": xs.tolist(),
        "y": ys.tolist(),
        "return_mean": returns.mean(axis=1).reshape(grid, grid).tolist(),  # rows: y, columns: x
        "u_norm": basis.u_norm,
        "w_norm": basis.w_norm,
        "uv": basis.uv,
        "checkpoints": [
            {"name": names[i], "path": str(p.path), "coords": list(c), "return_mean": float(anchor_returns[i].mean())}
            for i, (p, c) in enumerate(zip(anchors, basis.anchors().values()))
        ],
    }
    atomic_write_json(out / "plane.json", summary)
    if plot:
        plot_plane(summary, out / "plane.png")
    return summary


# ----------------------------------------------------------------------------- t-SNE (figure 5)
@dataclasses.dataclass
class Trajectory:
    run_dir: Path
    label: str
    policies: list[Policy]


def collect_trajectories(run_dirs: Sequence[str | os.PathLike], include_parents: bool = True) -> list[Trajectory]:
    """The snapshot trajectories of ``run_dirs``; an online run's offline run (the parent of the
    checkpoint it started from) is added unless given or ``include_parents`` is off."""
    from smacrl.run import RunDir

    dirs: list[Path] = []

    def add(d: Path) -> None:
        if d.resolve() not in [x.resolve() for x in dirs]:
            dirs.append(d)

    for d in map(Path, run_dirs):
        if not d.is_dir():
            raise SmacrlError(d, "run directory", "does not exist or is not a directory")
        add(d)
    if include_parents:
        for d in list(dirs):
            cfg_path = d / "config.json"
            if not cfg_path.exists():
                continue
            src = RunDir(d).load_config().get("checkpoint")
            if src:
                # The recorded path is relative to wherever the run was started: try the run's ancestors too.
                for root in (Path("."), *d.resolve().parents):
                    parent = (root / src).parent.parent
                    if RunDir(parent).snapshots():
                        add(parent)
                        break
    trajectories = []
    for d in sorted(dirs, key=lambda p: _is_online(p)):
        snaps = RunDir(d).snapshots()
        if not snaps:
            raise SmacrlError(d, "trajectory", "holds no snapshots (the run had trajectory_points = 0?)")
        policies = sorted((load_policy(p) for p in snaps), key=lambda p: p.step)
        last = policies[-1]
        phase = "offline" if not _is_online(d) else "online"
        label = f"{last.label} ({phase})" if phase == "offline" else last.label
        trajectories.append(Trajectory(d, label, policies))
    return trajectories


def _is_online(d: Path) -> bool:
    try:
        return bool(json.loads((d / "config.json").read_text()).get("checkpoint"))
    except (OSError, json.JSONDecodeError):
        return False


def tsne_landscape(
    run_dirs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    env: str | None = None,
    settings: EvalSettings | None = None,
    perplexity: float = 30.0,
    include_parents: bool = True,
    plot: bool = True,
) -> dict[str, Any]:
    """Embed every snapshot of the runs' trajectories with t-SNE, evaluate each snapshot, and
    write ``tsne.json`` and ``tsne.png``."""
    try:
        from sklearn.manifold import TSNE
    except ImportError as e:
        raise ImportError("smacrl landscape tsne needs scikit-learn: pip install 'smacrl[landscape]'") from e

    settings = settings or EvalSettings(episodes=3)
    out = _out_dir(out)
    trajectories = collect_trajectories(run_dirs, include_parents)
    policies = [p for tr in trajectories for p in tr.policies]
    task = _env_of(policies, env)
    ref = policies[0]
    for p in policies[1:]:
        if p.flat().numel() != ref.flat().numel():
            raise CheckpointError(p.path, "nets", f"actor has a different size from {ref.path}'s: cannot share a map")
    if len(policies) < 4:
        raise SmacrlError(run_dirs[0], "trajectory", f"t-SNE needs at least 4 snapshots, found {len(policies)}")

    cache = ResultCache(out / CACHE_NAME)
    returns = evaluate_checkpoints(policies, task, settings, cache, "t-SNE snapshots").mean(axis=1)

    x = torch.stack([p.flat() for p in policies]).numpy().astype(np.float32)
    perp = float(min(perplexity, max(1.0, (len(policies) - 1) / 3)))
    emb = TSNE(n_components=2, perplexity=perp, init="pca", random_state=settings.seed).fit_transform(x)
    rows, i = [], 0
    for tr in trajectories:
        for p in tr.policies:
            rows.append(
                {"run": str(tr.run_dir), "label": tr.label, "step": p.step, "path": str(p.path),
                 "return_mean": float(returns[i]), "x": float(emb[i, 0]), "y": float(emb[i, 1])}
            )  # fmt: skip
            i += 1
    summary = {"env": task, "episodes": settings.episodes, "seed": settings.seed, "perplexity": perp, "points": rows}
    atomic_write_json(out / "tsne.json", summary)
    if plot:
        plot_tsne(summary, out / "tsne.png")
    return summary

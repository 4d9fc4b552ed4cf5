"""``smacrl data make``, ``smacrl data convert`` and ``smacrl data info``."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np


def _stats(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, dtype=np.float64)
    return {"min": float(x.min()), "mean": float(x.mean()), "max": float(x.max()), "std": float(x.std())}


def dataset_summary(ds) -> dict[str, Any]:
    from smacrl.data.tasks import TASKS

    task = TASKS.get(ds.task) if ds.task else None
    ep_ret = ds.episode_returns()
    out: dict[str, Any] = {
        "source": ds.source,
        "task": ds.task,
        "format": ds.info.get("format"),
        "transitions": len(ds),
        "episodes": ds.n_episodes,
        "obs_dim": ds.obs_dim,
        "act_dim": ds.act_dim,
        "episode_length": _stats(ds.episode_lengths()),
        "return": _stats(ep_ret),
        "normalized_return": None,
        "condition": ds.info.get("condition"),
        "mc_returns": ds.mc_returns is not None,
        "terminals": int(ds.terminals.sum()),
        "timeouts": int(ds.timeouts.sum()),
        "sha256": ds.sha256,
    }
    if task is not None and task.has_reference:
        out["normalized_return"] = _stats(task.normalize_return(ep_ret))
        out["reference_returns"] = [task.ref_min_return, task.ref_max_return]
    for key in (
        "episode_success_rate",
        "timeout_steps_without_next_obs",
        "terminal_next_obs_filled",
        "unterminated_tail",
        "unterminated_episodes",
        "timeouts",
        "mc_returns_note",
    ):
        if key in ds.info:
            out["info_" + key if key == "timeouts" else key] = ds.info[key]
    attrs = ds.info.get("attrs") or {}
    for key in ("protocol", "seed", "final_policy_return", "smacrl_version", "success_rate"):
        if key in attrs:
            out.setdefault("file_attrs", {})[key] = attrs[key]
    return out


def cmd_data_info(args: argparse.Namespace, rest: list[str]) -> int:
    """Load a dataset (file, Minari folder or task name) and print its statistics."""
    from smacrl.cli import _no_extra
    from smacrl.data.loaders import load_dataset

    _no_extra(rest, args.parser)
    ds = load_dataset(args.source, args.task)
    s = dataset_summary(ds)
    if args.json:
        print(json.dumps(s, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
        return 0
    r = s["return"]
    lines = [
        f"{s['source']}" + (f" (task {s['task']})" if s["task"] else ""),
        f"  transitions {s['transitions']:,}  episodes {s['episodes']:,}"
        f"  obs_dim {s['obs_dim']}  act_dim {s['act_dim']}",
        f"  episode return  min {r['min']:.4g}  mean {r['mean']:.4g}  max {r['max']:.4g}  std {r['std']:.4g}",
    ]
    if s["normalized_return"]:
        n = s["normalized_return"]
        lines.append(
            f"  normalized      min {n['min']:.4g}  mean {n['mean']:.4g}  max {n['max']:.4g}  (D4RL, 1 = expert)"
        )
    if "episode_success_rate" in s:
        lines.append(f"  episode success rate {s['episode_success_rate']:.3f}")
    lines.append(
        f"  condition {s['condition']}  MC returns {'available' if s['mc_returns'] else 'unavailable'}"
        f"  terminals {s['terminals']:,}  timeouts {s['timeouts']:,}"
    )
    if s.get("timeout_steps_without_next_obs"):
        lines.append(
            f"  {s['timeout_steps_without_next_obs']} timed-out last steps had no next observation: left out of "
            "the transitions, counted in returns"
        )
    lines.append(f"  sha256 {s['sha256']}")
    print("\n".join(lines))
    return 0


def cmd_data_make(args: argparse.Namespace, rest: list[str]) -> int:
    """Generate a locally reproducible dataset in the D4RL layout."""
    from smacrl.cli import _no_extra
    from smacrl.data.generators import get_generator, make_task_data
    from smacrl.data.loaders import task_data_path
    from smacrl.data.tasks import get_task
    from smacrl.logger import progress

    _no_extra(rest, args.parser)
    task = get_task(args.task)
    get_generator(task)  # fail before any work if it cannot be made
    out = args.out or task_data_path(task.name)
    with progress(args.steps or 0, f"data make {task.name}", enabled=not args.no_progress) as bar:
        path, data, wall = make_task_data(task.name, out, seed=args.seed, steps=args.steps, bar=bar)
    a = data.attrs
    extra = f", success rate {a['success_rate']:.3f}" if "success_rate" in a else ""
    print(
        f"wrote {path}: {len(data.rewards):,} transitions in {wall:.1f} s, "
        f"final policy return {a['final_policy_return']:.4g}{extra}"
    )
    return 0


def cmd_data_convert(args: argparse.Namespace, rest: list[str]) -> int:
    """Turn a binary Adroit task's AWAC ``.npy`` files into its D4RL-layout dataset (Cal-QL's processing)."""
    from pathlib import Path

    from smacrl.cli import _no_extra
    from smacrl.data.awac import FILES, convert
    from smacrl.data.loaders import task_data_path

    _no_extra(rest, args.parser)
    name = args.task.split("-")[0]
    folder = Path(args.dir) if args.dir else None
    demos = args.demos or (folder / FILES["demos"].format(name=name) if folder else None)
    bc = args.bc or (folder / FILES["bc"].format(name=name) if folder else None)
    if demos is None or bc is None:
        args.parser.error("give --dir DIR (holding AWAC's files) or both --demos and --bc")
    out = args.out or task_data_path(args.task)
    s = convert(args.task, demos, bc, out)
    print(
        f"wrote {s['out']}: {s['trajectories']} successful trajectories, {s['steps']:,} steps "
        f"(demos {s['demos']['kept']} of {s['demos']['trajectories']}, BC {s['bc']['kept']} of "
        f"{s['bc']['trajectories']}); load it with --dataset {args.task if not args.out else s['out']}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from smacrl.cli import add_command
    from smacrl.data.tasks import TASKS

    d = add_command(subparsers, "data", lambda a, r: (a.parser.print_help(), 2)[1], "make and inspect datasets")
    sub = d.add_subparsers(dest="data_command", metavar="COMMAND", required=True)

    p = add_command(sub, "make", cmd_data_make, "generate a local task's dataset (D4RL HDF5 layout)")
    local = sorted(n for n, t in TASKS.items() if t.generator)
    p.add_argument("task", metavar="TASK", help=f"one of: {', '.join(local)}")
    p.add_argument("--out", default=None, help="output .hdf5 (default: the data cache, $SMACRL_DATA/TASK.hdf5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="env steps (default: the task protocol's)")
    p.add_argument("--no-progress", action="store_true")

    p = add_command(sub, "convert", cmd_data_convert, "AWAC's binary Adroit .npy files -> the task's D4RL dataset")
    binary = sorted(n for n, t in TASKS.items() if t.wrapper == "adroit_binary")
    p.add_argument("task", metavar="TASK", choices=binary, help=f"one of: {', '.join(binary)}")
    p.add_argument("--dir", default=None, help="folder with AWAC's {task}2_sparse.npy and {task}_bc_sparse4.npy")
    p.add_argument("--demos", default=None, help="the expert demonstrations, {task}2_sparse.npy")
    p.add_argument("--bc", default=None, help="the BC rollouts, {task}_bc_sparse4.npy")
    p.add_argument("--out", default=None, help="output .hdf5 (default: the data cache, $SMACRL_DATA/TASK.hdf5)")

    p = add_command(sub, "info", cmd_data_info, "validate a dataset and print its statistics")
    p.add_argument("source", metavar="PATH|TASK", help="D4RL .hdf5 file, Minari dataset folder, or task name")
    p.add_argument("--task", default=None, help="task the data belong to (checks dims, sets condition/MC)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

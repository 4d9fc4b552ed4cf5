"""``smacrl run``: the whole offline-to-online pipeline for one (task, offline, online, seed).

Stages, each cached or resumable:

1. **dataset**: a path, or a task name. A local task's file is generated once into the data cache
   (``$SMACRL_DATA``, see :mod:`smacrl.data.loaders`); original D4RL tasks need ``--dataset PATH``.
2. **score model** (SMAC only): reused from the cache when one was trained on the same dataset
   (matched by content hash), else trained (:mod:`smacrl.score.cache`).
3. **pretrain** into ``OUT/offline``: resumes from its latest checkpoint; skipped when finished.
4. **finetune** into ``OUT/online``: resumes likewise.

The stages are the ``pretrain`` and ``finetune`` commands themselves, so a pipeline run and a
by-hand run produce the same files.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from smacrl import registry
from smacrl.cli import add_command
from smacrl.configs import PRESET_NAMES
from smacrl.errors import SmacrlError


def ensure_dataset(task: str, progress: bool = True) -> Path:
    """The data file of a local task, generated into the data cache if it is not there yet."""
    from smacrl.data.generators import make_task_data
    from smacrl.data.loaders import task_data_path
    from smacrl.data.tasks import get_task
    from smacrl.io import exclusive_lock
    from smacrl.logger import progress as bar

    path = task_data_path(task)
    if path.exists():
        return path
    if get_task(task).generator is None:
        raise SmacrlError(task, "dataset", "is an original D4RL dataset: pass its file with --dataset PATH")
    # two runs that need the same missing dataset: one generates it, the other waits and reuses it
    with exclusive_lock(path.with_name(path.name + ".lock"), wait=True, what="dataset being generated"):
        if not path.exists():
            with bar(0, f"data {task}", progress) as b:
                make_task_data(task, path, seed=0, bar=b)
    return path


def run_pipeline(
    task: str,
    offline: str,
    online: str,
    out: str | Path,
    *,
    seed: int = 0,
    preset: str | None = None,
    dataset: str | None = None,
    offline_steps: int | None = None,
    online_steps: int | None = None,
    score_steps: int | None = None,
    extra_offline: list[str] | None = None,
    extra_online: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    from smacrl.cli import main

    out = Path(out)
    data = dataset or str(ensure_dataset(task, progress))
    common = ["--seed", str(seed)] + ([] if progress else ["--no-progress"])
    common += ["--preset", preset] if preset else []
    pre = ["pretrain", "--algo", offline, "--dataset", data, "--task", task, "--out", str(out / "offline"), *common]
    pre += ["--steps", str(offline_steps)] if offline_steps else []
    trains_score = "score_steps" in {f.name for f in dataclasses.fields(registry.get(offline, "offline").config)}
    pre += ["--score-steps", str(score_steps)] if score_steps and trains_score else []
    if main([*pre, *(extra_offline or [])]) != 0:
        raise SmacrlError(out / "offline", "pretrain", "failed (see the message above)")
    fine = ["finetune", "--algo", online, "--checkpoint", str(out / "offline"), "--task", task]
    fine += ["--dataset", data, "--out", str(out / "online"), *common]
    fine += ["--steps", str(online_steps)] if online_steps else []
    if main([*fine, *(extra_online or [])]) != 0:
        raise SmacrlError(out / "online", "finetune", "failed (see the message above)")
    return {"offline": out / "offline", "online": out / "online"}


def cmd_run(args: argparse.Namespace, rest: list[str]) -> int:
    """Dataset, score model, pretrain and finetune for one seed; resumes a killed run."""
    from smacrl.run import default_run_name

    if rest:
        args.parser.error(f"unrecognized arguments: {' '.join(rest)}")
    out = args.out or str(Path("runs") / default_run_name(f"{args.offline}-{args.online}", args.task, args.seed))
    paths = run_pipeline(
        args.task,
        args.offline,
        args.online,
        out,
        seed=args.seed,
        preset=args.preset,
        dataset=args.dataset,
        offline_steps=args.offline_steps,
        online_steps=args.online_steps,
        score_steps=args.score_steps,
        progress=not args.no_progress,
    )
    print(f"offline run: {paths['offline']}\nonline run:  {paths['online']}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "run", cmd_run, "the whole pipeline: dataset, score model, pretrain, finetune")
    p.add_argument("--task", required=True)
    p.add_argument("--offline", default="smac", choices=registry.names("offline"))
    p.add_argument("--online", default="sac", choices=registry.names("online"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default=None, choices=PRESET_NAMES)
    p.add_argument("--dataset", default=None, help="dataset file (default: the task's local data, generated once)")
    p.add_argument("--out", default=None, help="run directory (default runs/<offline>-<online>-<task>-s<seed>)")
    p.add_argument("--offline-steps", type=int, default=None)
    p.add_argument("--online-steps", type=int, default=None)
    p.add_argument("--score-steps", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")

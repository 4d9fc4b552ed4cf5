"""``smacrl sweep``: the paper's grid (tasks x offline x online x seeds) from one command, on Ray."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from smacrl.cli import add_command
from smacrl.configs import PRESET_NAMES
from smacrl.sweep.grid import LAYOUT, Grid, Stage, split_args, stages


def grid_from_args(args: argparse.Namespace) -> Grid:
    if args.grid:
        return Grid.from_toml(args.grid)
    if not args.tasks:
        args.parser.error("give --tasks (with --offline, --online, --seeds) or --grid FILE.toml")
    return Grid(
        tasks=tuple(args.tasks),
        offline=tuple(args.offline),
        online=tuple(args.online),
        seeds=tuple(args.seeds),
        preset=args.preset,
        offline_args=split_args(args.offline_args),
        online_args=split_args(args.online_args),
        data_steps=args.data_steps,
        score_steps=args.score_steps,
        datasets=dict(_binding(b, args.parser) for b in args.dataset or ()),
    )


def _binding(text: str, parser: argparse.ArgumentParser) -> tuple[str, str]:
    task, sep, path = text.partition("=")
    if not sep or not task or not path:
        parser.error(f"--dataset takes TASK=PATH, got '{text}'")
    return task, path


def measure_rates(graph: list[Stage], updates: int = 5) -> dict[tuple[str, str], float]:
    """Updates/s of each (phase, algorithm) of the graph at its preset, on this machine: a few real
    updates on synthetic Hopper-sized batches (:mod:`smacrl.bench`), score model replaced by bench's
    analytic stand-in."""
    import time

    import torch

    from smacrl.bench.cases import build_case, synthetic_batch

    rates: dict[tuple[str, str], float] = {}
    for st in graph:
        if st.kind not in ("offline", "online") or (st.kind, st.algo) in rates:
            continue
        preset = st.argv[st.argv.index("--preset") + 1]
        row = st.algo if st.kind == "offline" else f"online:{st.algo}"
        case = build_case(row, preset, torch.device("cpu"), count_flops=False)
        batch = synthetic_batch(case.batch_size, torch.device("cpu"), torch.Generator().manual_seed(0))
        case.learner.update(batch)
        t0 = time.perf_counter()
        for _ in range(updates):
            case.learner.update(batch)
        rates[st.kind, st.algo] = updates / (time.perf_counter() - t0)
    return rates


def print_plan(grid: Grid, out: Path, trials: int) -> None:
    from smacrl.logger import _duration
    from smacrl.sweep.engine import is_done

    graph = stages(grid, out)
    by_kind = {k: [st for st in graph if st.kind == k] for k in ("data", "score", "offline", "online")}
    done = [st for st in graph if is_done(st, out)]
    print(f"sweep plan for {out}: {len(grid.tasks)} tasks x {len(grid.offline)} offline x {len(grid.online)} "
          f"online x {len(grid.seeds)} seeds = {len(grid.cells)} cells")  # fmt: skip
    n = {k: len(v) for k, v in by_kind.items()}
    print(f"stages: {n['data']} data, {n['score']} score, {n['offline']} offline (each shared by {len(grid.online)} "
          f"fine-tunes), {n['online']} online; {len(done)} already done")  # fmt: skip
    for st in graph:
        mark = "done " if st in done else "     "
        deps = f"  <- {', '.join(st.deps)}" if st.deps else ""
        print(f"  {mark}{st.id}{deps}")
    rates = measure_rates([st for st in graph if st not in done])
    print(f"\nupdates/s measured here ({os.cpu_count()} cores, synthetic Hopper-sized batches, analytic score):")
    for (kind, algo), rate in sorted(rates.items()):
        print(f"  {kind:8} {algo:8} {rate:8.1f}")
    seconds = sum(st.steps / rates[st.kind, st.algo] for st in graph if st not in done and (st.kind, st.algo) in rates)
    print(f"\nestimated updates alone: {_duration(seconds)} of one trial's time; about {_duration(seconds / trials)} "
          f"wall on {trials} parallel trial(s). Not counted: evaluations, datasets and score models.")  # fmt: skip


def cmd_sweep(args: argparse.Namespace, rest: list[str]) -> int:
    """Run (or plan) a grid of offline-to-online runs on a local Ray instance or a cluster."""
    from smacrl.sweep.engine import Options, run_sweep

    if rest:
        args.parser.error(f"unrecognized arguments: {' '.join(rest)}")
    grid = grid_from_args(args)
    out = Path(args.out)
    if args.plan:
        cpus = args.num_cpus or os.cpu_count() or 1
        print_plan(grid, out, max(1, cpus // args.cpus_per_trial))
        return 0
    opts = Options(
        address=args.address,
        num_cpus=args.num_cpus,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        retries=args.retries,
        progress=not args.no_progress,
    )
    summary = run_sweep(grid, out, opts)
    return 1 if summary["counts"]["failed"] or summary["counts"]["not run"] else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from smacrl import registry

    p = add_command(subparsers, "sweep", cmd_sweep, "a grid of offline-to-online runs on Ray (laptop or cluster)")
    p.epilog = "Layout of --out:\n" + LAYOUT
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--grid", default=None, help="a TOML grid file (instead of the flags below)")
    p.add_argument("--tasks", nargs="+", default=None)
    p.add_argument("--offline", nargs="+", default=["smac"], choices=registry.names("offline"))
    p.add_argument("--online", nargs="+", default=["sac"], choices=registry.names("online"))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3])
    p.add_argument("--preset", default=None, choices=PRESET_NAMES, help="default: each task's family")
    p.add_argument("--offline-args", default=None, help="config flags for every pre-training, e.g. '--steps 1000'")
    p.add_argument("--online-args", default=None, help="config flags for every fine-tuning")
    p.add_argument("--data-steps", type=int, default=None, help="env steps of generated datasets")
    p.add_argument(
        "--dataset",
        action="append",
        metavar="TASK=PATH",
        help="the data file or Minari folder of a task (repeatable); others are generated",
    )
    p.add_argument("--score-steps", type=int, default=None, help="score model training steps")
    p.add_argument("--out", required=True, help="the sweep directory (shared by all nodes on a cluster)")
    p.add_argument("--plan", action="store_true", help="print the stages and a cost estimate; start nothing")
    p.add_argument("--address", default=None, help="join a Ray cluster: auto or ray://host:port (default: local)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--cpus-per-trial", type=int, default=1, help="CPUs per stage; torch threads follow it")
    p.add_argument("--gpus-per-trial", type=float, default=0.0)
    p.add_argument("--retries", type=int, default=1, help="extra attempts of a failing stage")
    p.add_argument("--no-progress", action="store_true")

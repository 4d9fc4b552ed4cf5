"""Cells per hour of ``smacrl sweep`` on this machine: 2 trials x 1 thread against 1 trial x 2 threads.

The grid is the sweep test's (pendulum, smac + iql offline, sac + td3 online, 2 seeds: 8 cells, 14
stages), with larger budgets so that stage work, not Ray's start-up, dominates. Each configuration
runs into a fresh directory, back to back, alternating, ``--repeats`` times; run it on a quiet machine.

    python benchmarks/sweep_throughput.py --repeats 2 --out /tmp/sweep-bench

Prints one line per sweep and a Markdown table (append it to benchmarks/SWEEP.md by hand).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GRID = [
    "--tasks", "pendulum-medium-replay", "--offline", "smac", "iql", "--online", "sac", "td3", "--seeds", "0", "1",
    "--preset", "cpu", "--data-steps", "600", "--score-steps", "200", "--no-progress",
    "--offline-args", "--steps 1000 --eval-every 500 --eval-episodes 2 --checkpoint-every 100000",
    "--online-args", "--steps 500 --warmup-steps 100 --eval-every 250 --eval-after-first 50 --eval-episodes 2",
]  # fmt: skip
CELLS = 8
CONFIGS = {"2 trials x 1 thread": ["--num-cpus", "2", "--cpus-per-trial", "1"],
           "1 trial x 2 threads": ["--num-cpus", "2", "--cpus-per-trial", "2"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="/tmp/smacrl-sweep-bench")
    args = parser.parse_args()
    walls: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for r in range(args.repeats):
        for name, flags in CONFIGS.items():
            out = Path(args.out) / f"{r}-{flags[-1]}"
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            cmd = [sys.executable, "-m", "smacrl.cli", "sweep", "--out", str(out), *GRID, *flags]
            subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
            wall = time.perf_counter() - t0
            walls[name].append(wall)
            print(f"{name}: {wall:.1f} s, {CELLS * 3600 / wall:.0f} cells/hour", flush=True)
    print("\n| configuration | wall per sweep (s) | cells/hour (median) |\n|---|---|---|")
    for name, w in walls.items():
        print(f"| {name} | {', '.join(f'{x:.1f}' for x in w)} | {CELLS * 3600 / statistics.median(w):.0f} |")


if __name__ == "__main__":
    main()

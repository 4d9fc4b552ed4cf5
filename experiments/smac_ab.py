"""A/B runs of SMAC's config switches (issue 15), and the tables that summarize them.

    python experiments/smac_ab.py run  [--jobs 2] [--only NAME ...]   run what is missing, resumable
    python experiments/smac_ab.py table [--out FILE]                  mean ± s.e. per variant
    python experiments/smac_ab.py compact                             shrink finished runs' metrics

Each variant changes one thing against ``base``; every run is a plain ``smacrl pretrain`` (and, for
the transfer, ``smacrl finetune --algo sac``) with the cpu preset and 20 evaluation episodes, one
torch thread per process. Results land in ``results/smac_ab/<task>/<variant>/s<seed>/{offline,online}``;
only ``config.json`` and ``metrics.jsonl`` are committed (checkpoints are ignored), so the tables
can be regenerated from the repository. A finished stage is skipped (the commands themselves skip a
run whose final checkpoint exists, and resume an interrupted one).

This is a script for one issue's measurements, not a sweep engine (that is ``smacrl sweep``'s job).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from smacrl.logger import compact_metrics, read_metrics

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "smac_ab"
SMACRL = [sys.executable, "-m", "smacrl.cli"]
TASKS = ("pointmaze-umaze-binary", "pendulum-medium-replay")
SEEDS = (0, 1, 2, 3)
COMMON = ["--preset", "cpu", "--eval-episodes", "20", "--no-progress", "--trajectory-points", "0"]

# variant -> (offline algo, extra offline flags[, extra online flags]). One change against "base" each;
# the *_tc rows scale the entropy coefficient's learning rate with the budget (see docs/smac_readings.md).
TC_OFF = ["--ent-coef-lr", "0.025"]  # 3e-4 * 250k / 3k offline steps
TC_ON = ["--ent-coef-lr", "0.012"]  # 3e-4 * 200k / 5k online steps
LONG = ["--steps", "10000", "--eval-every", "1000"]  # the reproduction's offline budget, where SMAC collapses
VARIANTS: dict[str, tuple] = {
    "base": ("smac", []),
    "no_td_entropy": ("smac", ["--no-td-entropy"]),
    "alpha_linear": ("smac", ["--alpha-param", "linear"]),
    "alpha_init_0.1": ("smac", ["--alpha-init", "0.1"]),
    "score_free": ("smac", ["--score-free"]),
    "reduction_redq": ("smac", ["--target-reduction", "redq"]),
    "temp_lr_1e-2": ("smac", ["--ent-coef-lr", "1e-2"]),
    "target_entropy_-1": ("smac", ["--target-entropy-scale", "-1"]),
    "score_eps": ("smac", ["--score-target", "eps"]),
    "paper_literal": ("smac", ["--score-target", "eps", "--alpha-param", "linear", "--no-td-entropy"]),
    # the proposed defaults (each change measured alone above), without and with the scaled temperature
    "smac_defaults": ("smac", ["--no-td-entropy", "--target-entropy-scale", "-1"]),
    "smac_defaults_tc": ("smac", ["--no-td-entropy", "--target-entropy-scale", "-1", *TC_OFF], TC_ON),
    "smac_defaults_online_tc": ("smac", ["--no-td-entropy", "--target-entropy-scale", "-1"], TC_ON),
    "cql_online_tc": ("cql", [], TC_ON),
    "iql": ("iql", []),
    "td3bc": ("td3bc", []),
    "cql": ("cql", []),
    "calql": ("calql", []),
    "smac_tc": ("smac", TC_OFF, TC_ON),
    "iql_tc": ("iql", [], TC_ON),
    "td3bc_tc": ("td3bc", [], TC_ON),
    "cql_tc": ("cql", TC_OFF, TC_ON),
    "calql_tc": ("calql", TC_OFF, TC_ON),
    # at 10k updates (the *_10k rows change one thing against base_10k, SMAC's current defaults)
    "base_10k": ("smac", LONG),
    "td_entropy_10k": ("smac", [*LONG, "--td-entropy"]),
    "alpha_min_0.05_10k": ("smac", [*LONG, "--alpha-min", "0.05"]),
}
TRANSFER_TASKS = ("pointmaze-umaze-binary",)


def _run(cmd: list[str], log: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MUJOCO_GL": "egl"}
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        return subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def job(task: str, variant: str, seed: int, transfer: bool) -> str:
    algo, extra, *online_extra = VARIANTS[variant]
    online_extra = online_extra[0] if online_extra else []
    run = RESULTS / task / variant / f"s{seed}"
    t0 = time.time()
    rc = _run(
        [
            *SMACRL,
            "pretrain",
            "--algo",
            algo,
            "--dataset",
            task,
            "--seed",
            str(seed),
            "--out",
            str(run / "offline"),
            *COMMON,
            *extra,
        ],
        run / "log.txt",
    )
    if rc == 0 and transfer:
        rc = _run(
            [
                *SMACRL,
                "finetune",
                "--algo",
                "sac",
                "--checkpoint",
                str(run / "offline"),
                "--task",
                task,
                "--seed",
                str(seed),
                "--out",
                str(run / "online"),
                *COMMON,
                *online_extra,
            ],
            run / "log.txt",
        )
    return f"{task} {variant} s{seed}: rc={rc} in {time.time() - t0:.0f}s"


def cmd_run(args) -> None:
    jobs = [
        (t, v, s, t in TRANSFER_TASKS and not args.offline_only)
        for v in (args.only or VARIANTS)
        for s in SEEDS
        for t in (args.tasks or TASKS)
    ]
    with cf.ProcessPoolExecutor(args.jobs) as pool:
        for line in pool.map(job, *zip(*jobs, strict=True)):
            print(line, flush=True)


# ----------------------------------------------------------------------------- tables
def _rows(path: Path) -> list[dict]:
    return read_metrics(path) if path.exists() else []


def _evals(rows: list[dict], key: str) -> dict[int, float]:
    return {r["step"]: r[key] for r in rows if key in r}


def _last(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if key in r]
    return vals[-1] if vals else None


def _mse(xs: list[float]) -> str:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    if not xs:
        return "—"
    m = sum(xs) / len(xs)
    se = (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 / len(xs) ** 0.5 if len(xs) > 1 else float("nan")
    digits = 2 if abs(m) < 10 else 0
    return f"{m:.{digits}f} ± {se:.{digits}f} (n={len(xs)})"


def offline_table(task: str, long: bool = False) -> list[str]:
    key = "eval/success_rate" if "pointmaze" in task else "eval/return_mean"
    steps = (3000, 6000, 10000) if long else (1000, 2000, 3000)
    last = f"{steps[-1] // 1000}k"
    lines = [
        f"### {task}: offline{' at 10k updates' if long else ''} ({key.split('/')[1]}, mean ± s.e. over seeds)",
        "",
        "| variant | "
        + " | ".join(f"at {n // 1000}k" for n in steps)
        + f" | alpha at {last} | cos(policy) at {last} | q_spread at {last} | entropy at {last} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in VARIANTS:
        if v.endswith("_10k") != long:
            continue
        runs = [_rows(RESULTS / task / v / f"s{s}" / "offline" / "metrics.jsonl") for s in SEEDS]
        runs = [r for r in runs if r]
        if not runs:
            continue
        ev = [_evals(r, key) for r in runs]
        cells = [_mse([e.get(step) for e in ev]) for step in steps]
        diag = [
            _mse([_last(r, f"offline/{k}") for r in runs]) if v in VARIANTS and VARIANTS[v][0] == "smac" else "—"
            for k in ("alpha_mean", "cos_policy", "q_spread", "entropy")
        ]
        lines.append(f"| {v} | " + " | ".join(cells + diag) + " |")
    return lines + [""]


def transfer_table(task: str) -> list[str]:
    key = "eval/success_rate" if "pointmaze" in task else "eval/return_mean"
    lines = [
        f"### {task}: offline → SAC ({key.split('/')[1]}, mean ± s.e. over seeds)",
        "",
        "| variant | J(pi_0) | after 250 updates | after 5,000 | drop (J0 - J1) | regret vs 1.0 "
        "| handover temperature |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in VARIANTS:
        runs = [_rows(RESULTS / task / v / f"s{s}" / "online" / "metrics.jsonl") for s in SEEDS]
        runs = [r for r in runs if r]
        if not runs:
            continue
        ev = [sorted(_evals(r, key).items()) for r in runs]
        j0 = [e[0][1] if e else None for e in ev]
        j1 = [e[1][1] if len(e) > 1 else None for e in ev]
        jn = [e[-1][1] if e else None for e in ev]
        drop = [a - b for a, b in zip(j0, j1) if a is not None and b is not None]
        regret = [sum(1.0 - x for _, x in e[1:]) / max(1, len(e) - 1) for e in ev if len(e) > 1]
        off = [_rows(RESULTS / task / v / f"s{s}" / "offline" / "metrics.jsonl") for s in SEEDS]
        temp = [_last(r, "offline/ent_coef") for r in off if r]
        cells = [_mse(j0), _mse(j1), _mse(jn), _mse(drop), _mse(regret), _mse(temp)]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return lines + [""]


def _finished(run: Path, transfer: bool) -> bool:
    done = (run / "offline" / "checkpoints" / "final.safetensors").exists()
    return done and (not transfer or (run / "online" / "checkpoints" / "final.safetensors").exists())


def cmd_compact(args) -> None:
    n = 0
    for task in TASKS:
        for variant in VARIANTS:
            for seed in SEEDS:
                run = RESULTS / task / variant / f"s{seed}"
                if _finished(run, task in TRANSFER_TASKS):
                    for phase in ("offline", "online"):
                        if (run / phase / "metrics.jsonl").exists():
                            n += compact_metrics(run / phase / "metrics.jsonl")
    print(f"compacted {n} metrics files")


def cmd_table(args) -> None:
    lines = []
    for task in TASKS:
        lines += offline_table(task)
    for task in TASKS:
        lines += offline_table(task, long=True)
    for task in TRANSFER_TASKS:
        lines += transfer_table(task)
    text = "\n".join(lines)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--only", nargs="*", choices=list(VARIANTS))
    r.add_argument("--offline-only", action="store_true")
    r.add_argument("--tasks", nargs="*", choices=TASKS)
    sub.add_parser("compact", help="average the per-update rows of finished runs over 250-update windows")
    t = sub.add_parser("table")
    t.add_argument("--out", default=None)
    args = p.parse_args()
    {"run": cmd_run, "table": cmd_table, "compact": cmd_compact}[args.cmd](args)


if __name__ == "__main__":
    main()

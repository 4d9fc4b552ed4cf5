"""A/B runs of SMAC's config switches (issue 15), and the tables that summarize them.

    python experiments/smac_ab.py run  [--jobs 2] [--only NAME ...]   run what is missing, resumable
    python experiments/smac_ab.py table [--out FILE]                  mean ± s.e. per variant
    python experiments/smac_ab.py compact                             shrink finished runs' metrics
    python experiments/smac_ab.py arms [--task T] [--only ARM ...]    online-only A/Bs (hopper, the maze)
    python experiments/smac_ab.py extend                              the control: SMAC offline, 5k more
    python experiments/smac_ab.py sampled TASK VARIANT ...            final policies, sampled vs mean
    python experiments/smac_ab.py greedy TASK VARIANT ...             final critics' argmax as a policy
    python experiments/smac_ab.py score-mode                          the pendulum score model's mode
    python experiments/smac_ab.py scores [--only NAME ...]            named score models for the score_* rows
    python experiments/smac_ab.py drift VARIANT ... [--kind K]        how fast SAC moves each critic

Each variant changes one thing against ``base``; every run is a plain ``smacrl pretrain`` (and, for
the transfer, ``smacrl finetune --algo sac``) with the cpu preset and 20 evaluation episodes (the
``*_laptop`` rows: the laptop preset, on hopper with 10 episodes unless ``--tasks`` names others), one
torch thread per process.
Results land in ``results/smac_ab/<task>/<variant>/s<seed>/{offline,online}``;
only ``config.json`` and ``metrics.jsonl`` are committed (checkpoints are ignored), so the tables
can be regenerated from the repository. A finished stage is skipped (the commands themselves skip a
run whose final checkpoint exists, and resume an interrupted one).

This file runs the jobs; what they are is in ``smac_ab_design.py`` (variants, arms, score models), the
tables are ``smac_ab_tables.py``'s and the measurements on checkpoints ``smac_ab_probes.py``'s. It is a
script for one issue's measurements, not a sweep engine (that is ``smacrl sweep``'s job).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import shutil
import subprocess
import time
from pathlib import Path

import smac_ab_figure
import smac_ab_probes as probes
import smac_ab_tables as tables
from smac_ab_design import (
    ARM_STEPS,
    ARM_UPDATES,
    ARM_VARIANT,
    ARMS,
    COMMON,
    DRIFT_EVERY,
    DRIFT_KINDS,
    DRIFT_STEPS,
    HOPPER,
    MAZE,
    Q_SHIFTS,
    RESULTS,
    ROOT,
    SCORE_MODELS,
    SEEDS,
    SMACRL,
    TASKS,
    TRANSFER_TASKS,
    VARIANTS,
    arm_phase,
    score_dir,
)

from smacrl.configs.presets import LAPTOP_STEPS
from smacrl.io import atomic_write_text
from smacrl.logger import compact_metrics


def _run(cmd: list[str], log: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MUJOCO_GL": "egl"}
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        return subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def _finetune(task: str, run: Path, seed: int, out: str, extra: list[str], source: str = "offline") -> int:
    cmd = [*SMACRL, "finetune", "--algo", "sac", "--checkpoint", str(run / source), "--task", task]
    out_flags = ["--seed", str(seed), "--out", str(run / out), *COMMON, *_episodes(task)]
    return _run([*cmd, *out_flags, *extra], run / "log.txt")


def _episodes(task: str) -> list[str]:
    return ["--eval-episodes", "10"] if task == HOPPER else []  # COMMON's 20 elsewhere


def job(task: str, variant: str, seed: int, transfer: bool) -> str:
    algo, extra, *online_extra = VARIANTS[variant]
    extra = [str(score_dir(task, x[len("@score/") :])) if x.startswith("@score/") else x for x in extra]
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
            *_episodes(task),
            *extra,
        ],
        run / "log.txt",
    )
    if rc == 0 and transfer:
        rc = _finetune(task, run, seed, "online", online_extra)
    return f"{task} {variant} s{seed}: rc={rc} in {time.time() - t0:.0f}s"


def cmd_run(args) -> None:
    jobs = [
        (t, v, s, t in TRANSFER_TASKS and not args.offline_only)
        for v in (args.only or VARIANTS)
        for s in SEEDS
        for t in ((args.tasks or (HOPPER,)) if v.endswith("_laptop") else (args.tasks or TASKS))
    ]
    _in_parallel(job, jobs, args.jobs)


def score_job(task: str, name: str) -> str:
    out = score_dir(task, name)
    if (out / "score.safetensors").exists():
        return f"score model {name}: exists"
    t0 = time.time()
    cmd = [*SMACRL, "score", "train", "--dataset", task, "--preset", "cpu", "--out", str(out), "--no-progress"]
    rc = _run([*cmd, "--eval-episodes", "20", *SCORE_MODELS[name]], out.parent / f"{name}.log.txt")
    return f"{task} score model {name}: rc={rc} in {time.time() - t0:.0f}s"


def cmd_scores(args) -> None:
    _in_parallel(score_job, [(args.task, n) for n in (args.only or SCORE_MODELS)], args.jobs)


def _in_parallel(fn, jobs: list[tuple], n: int) -> None:
    """Run ``fn(*job)`` for every job, ``n`` processes at a time, printing each job's line as it ends."""
    with cf.ProcessPoolExecutor(n) as pool:
        for line in pool.map(fn, *zip(*jobs, strict=True)):
            print(line, flush=True)


def arm_job(task: str, variant: str, arm: str, seed: int) -> str:
    extra, source = (*ARMS[arm], "offline")[:2]
    run = RESULTS / task / variant / f"s{seed}"
    if source in Q_SHIFTS and (run / "offline" / "checkpoints" / "final.safetensors").exists():
        probes.shifted_copy(run / "offline", run / source, Q_SHIFTS[source])
    if not (run / source / "checkpoints" / "final.safetensors").exists():
        return f"{arm} s{seed}: no {source} checkpoint (run --only {variant} first, or extend for offline_cont)"
    t0 = time.time()
    flags = [*(VARIANTS[variant][2:] or [[]])[0], *ARM_STEPS, *extra]
    rc = _finetune(task, run, seed, arm_phase(arm), flags, source)
    return f"{task} {variant} {arm} s{seed}: rc={rc} in {time.time() - t0:.0f}s"


def extend_job(seed: int) -> str:
    """The control for the arms: the same SMAC run continued offline from its final checkpoint for as
    many updates as the arms run online, evaluated on the arms' schedule. The copy resumes from the
    final checkpoint (weights, optimizer states, random streams); the original run is left as it is."""
    variant, algo = "smac_laptop", "smac"
    run = RESULTS / HOPPER / variant / f"s{seed}"
    src, dst = run / "offline", run / "offline_cont"
    if not (src / "checkpoints" / "final.safetensors").exists():
        return f"extend s{seed}: no offline checkpoint (run --only {variant} first)"
    if not (dst / "checkpoints").exists():
        (dst / "checkpoints").mkdir(parents=True)
        for name in ("config.json", "metrics.jsonl"):
            shutil.copy(src / name, dst / name)
        resume_from = f"step_{LAPTOP_STEPS:09d}.safetensors"  # the name of a periodic checkpoint at that step
        shutil.copy(src / "checkpoints" / "final.safetensors", dst / "checkpoints" / resume_from)
        (dst / "checkpoints" / "latest").write_text(resume_from + "\n")
    t0 = time.time()
    flags = [*COMMON, *_episodes(HOPPER), *VARIANTS[variant][1], "--steps", str(LAPTOP_STEPS + ARM_UPDATES)]
    flags += ["--eval-every", "500"]
    cmd = [*SMACRL, "pretrain", "--algo", algo, "--dataset", HOPPER, "--seed", str(seed), "--out", str(dst)]
    rc = _run([*cmd, *flags], run / "log.txt")
    return f"extend s{seed}: rc={rc} in {time.time() - t0:.0f}s"


def cmd_extend(args) -> None:
    _in_parallel(extend_job, [(s,) for s in SEEDS], args.jobs)


def cmd_arms(args) -> None:
    variants = args.variants or [ARM_VARIANT[args.task]]
    jobs = [(args.task, v, a, s) for v in variants for a in (args.only or ARMS) for s in SEEDS]
    _in_parallel(arm_job, jobs, args.jobs)


def cmd_compact(args) -> None:
    n = 0
    for task in (*TASKS, HOPPER):
        for variant in VARIANTS:
            for seed in SEEDS:
                for phase in ("offline", "online"):  # each phase once it is finished (--offline-only runs too)
                    run = RESULTS / task / variant / f"s{seed}" / phase
                    if (run / "checkpoints" / "final.safetensors").exists():
                        n += compact_metrics(run / "metrics.jsonl")
    for task in ARM_VARIANT:  # the arms and hopper's control
        for variant in VARIANTS:
            for seed in SEEDS:
                for phase in (*(arm_phase(arm) for arm in ARMS), "offline_cont", *(p for p, _ in DRIFT_KINDS.values())):
                    run = RESULTS / task / variant / f"s{seed}" / phase
                    if (run / "checkpoints" / "final.safetensors").exists():
                        n += compact_metrics(run / "metrics.jsonl")
    print(f"compacted {n} metrics files")


def cmd_table(args) -> None:
    text = "\n".join(tables.all_tables())
    if args.out:
        atomic_write_text(args.out, text + "\n")
    print(text)


def drift_job(task: str, variant: str, seed: int, kind: str = "plain") -> str:
    """SAC for 1,000 steps from a variant's checkpoint, checkpointed every 50 updates, for `drift`."""
    phase, extra = DRIFT_KINDS[kind]
    run = RESULTS / task / variant / f"s{seed}"
    if not (run / "offline" / "checkpoints" / "final.safetensors").exists():
        return f"{variant} s{seed}: no offline checkpoint"
    if (run / phase / "checkpoints" / "final.safetensors").exists():
        return f"{variant} s{seed}: {phase} run done"
    flags = ["--steps", str(DRIFT_STEPS), "--checkpoint-every", str(DRIFT_EVERY), "--keep-checkpoints", "100"]
    rc = _finetune(task, run, seed, phase, [*flags, *extra])
    return f"{task} {variant} {phase} s{seed}: rc={rc}"


def cmd_drift(args) -> None:
    jobs = [(args.task, v, s, args.kind) for v in args.variants for s in SEEDS]
    _in_parallel(drift_job, jobs, args.jobs)
    probes.write_drift(args.task, args.variants, DRIFT_KINDS[args.kind][0])
    print("\n".join(tables.drift_table(args.task, args.kind)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--only", nargs="*", choices=list(VARIANTS))
    r.add_argument("--offline-only", action="store_true")
    r.add_argument("--tasks", nargs="*", choices=TASKS)
    a = sub.add_parser("arms")
    a.add_argument("--jobs", type=int, default=2)
    a.add_argument("--only", nargs="*", choices=list(ARMS))
    a.add_argument("--task", default=HOPPER, choices=list(ARM_VARIANT))
    a.add_argument("--variants", nargs="*", choices=list(VARIANTS), help="offline variants (default: the task's SMAC)")
    x = sub.add_parser("extend")
    x.add_argument("--jobs", type=int, default=2)
    sub.add_parser("compact", help="average the per-update rows of finished runs over 250-update windows")
    t = sub.add_parser("table")
    t.add_argument("--out", default=None)
    f = sub.add_parser("figure", help="the maze's transfer and the maze-pendulum trade-off as one png")
    f.add_argument("--out", default=str(ROOT / "docs" / "smac_readings.png"))
    e = sub.add_parser("sampled")
    e.add_argument("task", choices=(*TASKS, HOPPER))
    e.add_argument("variants", nargs="+", choices=list(VARIANTS))
    g = sub.add_parser("greedy")
    g.add_argument("task", choices=(*TASKS, HOPPER))
    g.add_argument("variants", nargs="+", choices=list(VARIANTS))
    d = sub.add_parser("drift", help="how far SAC's first 1,000 updates move each critic's action gradient")
    d.add_argument("variants", nargs="+", choices=list(VARIANTS))
    d.add_argument("--task", default=MAZE, choices=TASKS)
    d.add_argument("--jobs", type=int, default=2)
    d.add_argument("--kind", default="plain", choices=list(DRIFT_KINDS), help="plain SAC, or SAC with the actor frozen")
    sc = sub.add_parser("scores")
    sc.add_argument("--jobs", type=int, default=2)
    sc.add_argument("--only", nargs="*", choices=list(SCORE_MODELS))
    sc.add_argument("--task", default=MAZE, choices=TASKS)
    m = sub.add_parser("score-mode")
    m.add_argument("score_model", help="the pendulum's score model (its cache directory or file)")
    m.add_argument("--k", type=int, nargs="+", default=[1], help="diffusion steps whose score is integrated")
    m.add_argument("--w", type=float, nargs="+", default=[1.0], help="return conditions (the paper's is 1)")
    args = p.parse_args()
    commands = {"run": cmd_run, "arms": cmd_arms, "table": cmd_table, "compact": cmd_compact, "extend": cmd_extend}
    commands |= {"scores": cmd_scores, "drift": cmd_drift}
    commands |= {
        "sampled": lambda a: probes.sampled(a.task, a.variants),
        "greedy": lambda a: probes.greedy(a.task, a.variants),
        "score-mode": lambda a: probes.score_mode(a.score_model, a.k, a.w),
        "figure": lambda a: print(smac_ab_figure.figure(Path(a.out))),
    }
    commands[args.cmd](args)


if __name__ == "__main__":
    main()

"""Running a sweep's stage graph on Ray.

Each stage is one Ray task (``ray.remote``) whose arguments include the object refs of the stages it
depends on, so Ray starts it only when they have finished and never runs it if one failed. Ray retries
a failing stage ``retries`` times; the others go on, and the closing summary lists what failed and why
(the last line of the stage's own log). Stages already finished in ``OUT`` are not submitted at all,
and an interrupted stage resumes from its own last checkpoint, so rerunning the same command finishes
a killed sweep. A lock file keeps a second sweep off the same ``OUT``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from smacrl.errors import SmacrlError
from smacrl.io import atomic_write_json, atomic_write_text, exclusive_lock
from smacrl.sweep.grid import Grid, Stage, stages


# ----------------------------------------------------------------------------- one stage, in a worker
def stage_env(out: Path, cpus_per_trial: int) -> dict[str, str]:
    """What every stage's process sees: the sweep's own caches, thread count and quiet progress."""
    return {
        "SMACRL_DATA": str(out / "cache" / "datasets"),
        "SMACRL_CACHE": str(out / "cache"),
        "SMACRL_PROGRESS_INTERVAL": "60",
        "OMP_NUM_THREADS": str(cpus_per_trial),
        "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
    }


def log_path(out: Path, stage: Stage) -> Path:
    return out / "logs" / (stage.id.replace("/", "_").replace(":", "-") + ".log")


def run_stage(stage: Stage, out: str, env: dict[str, str], threads: int, *deps: Any) -> dict[str, Any]:
    """Run one stage (in a Ray worker): its ``smacrl`` command, output to its log file. Raises with the
    log's last line when the command fails."""
    import torch

    os.environ.update(env)
    torch.set_num_threads(threads)
    root = Path(out)
    log = log_path(root, stage)
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "a", encoding="utf-8") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        print(f"== {stage.id}: {' '.join(stage.argv)}", flush=True)
        try:
            rc = _execute(stage)
        except SystemExit as e:  # tyro rejects a bad override by exiting
            rc = e.code if isinstance(e.code, int) else 2
        except Exception as e:  # noqa: BLE001 - reported with the stage's name; Ray retries it
            print(f"{type(e).__name__}: {e}", flush=True)
            rc = 1
    seconds = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(_last_line(log))
    record = {"id": stage.id, "kind": stage.kind, "status": "done", "seconds": round(seconds, 2)}
    with open(root / "stages.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    return record


def _execute(stage: Stage) -> int:
    from smacrl.cli import main

    if stage.kind == "score":
        return _train_score(stage)
    no_progress = stage.kind == "data" and stage.argv[1] == "make"
    return main([*stage.argv, "--no-progress"] if no_progress else list(stage.argv))


def _train_score(stage: Stage) -> int:
    from smacrl.configs import make_config
    from smacrl.data import load_dataset
    from smacrl.score.cache import ensure_score_model

    argv = list(stage.argv[1:])
    steps = int(argv[argv.index("--score-steps") + 1]) if "--score-steps" in argv else None
    preset = argv[argv.index("--preset") + 1]
    rvs = make_config("smac", preset).rvs if "--no-rvs" not in argv else False
    source = argv[argv.index("--dataset") + 1]
    dataset = load_dataset(source, stage.task)
    _, path = ensure_score_model(dataset, preset, rvs=rvs, seed=0, progress=False, steps=steps)
    print(f"score model: {path}")
    return 0


_BOX = "│╭╮╰╯─━┃ "


def _last_line(log: Path) -> str:
    """The error of the stage's last attempt, in one line: the first line that says "error" (tyro's
    boxed message unboxed, with its continuation), else the attempt's last line."""
    text = log.read_text(encoding="utf-8", errors="replace").split("\n== ")[-1]
    lines = [ln.strip(_BOX) for ln in text.splitlines()[1:]]
    for i, line in enumerate(lines):
        if "error" in line.lower():
            more = []
            for nxt in lines[i + 1 : i + 3]:
                if not nxt or set(nxt) <= set(_BOX):
                    break
                more.append(nxt)
            return " ".join([line, *more])[:300]
    rest = [ln for ln in lines if ln]
    return rest[-1][:300] if rest else "failed (empty log)"


# ----------------------------------------------------------------------------- done already?
def is_done(stage: Stage, out: Path) -> bool:
    """Whether ``stage``'s result is already in ``out`` (a rerun then skips it)."""
    from smacrl.checkpoint import read_metadata

    if stage.kind == "data":  # the generated file (or the user's own file) is there
        return Path(stage.out).exists()
    if stage.kind == "score":  # the model's cache key needs the dataset's hash: trust the stage's record
        return stage.id in _finished_ids(out)
    final = Path(stage.out) / "checkpoints" / "final.safetensors"
    if not final.exists():
        return False
    try:
        return int(read_metadata(final)["step"]) >= stage.steps
    except SmacrlError:
        return False


def _finished_ids(out: Path) -> set[str]:
    path = out / "stages.jsonl"
    if not path.exists():
        return set()
    return {json.loads(ln)["id"] for ln in path.read_text().splitlines() if ln.strip()}


# ----------------------------------------------------------------------------- one sweep per OUT
def sweep_lock(out: Path):
    """Hold ``OUT/.sweep.lock`` for the sweep's lifetime; the kernel releases it if the driver dies."""
    return exclusive_lock(out / ".sweep.lock", wait=False, what="another sweep is running on this directory")


# ----------------------------------------------------------------------------- the driver
@dataclasses.dataclass
class Options:
    address: str | None = None
    """None: a local Ray instance on this machine; ``auto`` or ``ray://host:port``: join a cluster."""
    num_cpus: int | None = None
    """CPUs of the local instance (None: all of them)."""
    cpus_per_trial: int = 1
    gpus_per_trial: float = 0.0
    retries: int = 1
    """Extra attempts of a failing stage before it is reported as failed."""
    progress: bool = True


def run_sweep(grid: Grid, out: str | Path, options: Options | None = None) -> dict[str, Any]:
    """Run every stage of ``grid`` not yet done in ``out``; returns the closing summary."""
    from smacrl.sweep.progress import StageView

    opts = options or Options()
    out = Path(out)
    try:
        import ray
    except ImportError:
        raise SmacrlError("smacrl sweep", "ray", "needs Ray: pip install 'smacrl[sweep]'") from None
    with sweep_lock(out):
        atomic_write_json(out / "sweep.json", {"grid": grid.as_dict(), "options": dataclasses.asdict(opts)})
        graph = stages(grid, out)
        env = stage_env(out, opts.cpus_per_trial)
        status: dict[str, str] = {}
        errors: dict[str, str] = {}
        for st in graph:
            if is_done(st, out):
                status[st.id] = "skipped"
        todo = [st for st in graph if st.id not in status]
        view = StageView(graph, status, opts.progress)
        if todo:
            init = dict(include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
            if opts.address is None:  # "local": a new instance, even where another cluster runs or once ran
                init["num_cpus"] = opts.num_cpus or os.cpu_count()
            ray.init(address=opts.address or "local", **init)
            view.slots = max(1, int(ray.cluster_resources().get("CPU", 1)) // opts.cpus_per_trial)
            try:
                _run_graph(ray, todo, out, env, opts, status, errors, view)
            finally:
                ray.shutdown()
        view.close()
        summary = _summary(graph, status, errors, out)
    return summary


def _run_graph(ray, todo, out, env, opts, status, errors, view) -> None:
    task = ray.remote(
        num_cpus=opts.cpus_per_trial, num_gpus=opts.gpus_per_trial, max_retries=opts.retries, retry_exceptions=True
    )(run_stage)
    refs: dict[str, Any] = {}
    for st in todo:
        deps = [refs[d] for d in st.deps if d in refs]
        refs[st.id] = task.options(name=st.id).remote(st, str(out), env, opts.cpus_per_trial, *deps)
        view.submitted(st.id)
    by_ref = {ref: sid for sid, ref in refs.items()}
    pending = list(refs.values())
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
        for ref in ready:
            sid = by_ref[ref]
            try:
                record = ray.get(ref)
                status[sid] = "done"
                view.finished(sid, "done", record.get("seconds"))
            except Exception as e:  # noqa: BLE001 - a stage's failure is reported, the others go on
                status[sid] = "failed"
                errors[sid] = _cause(e)
                view.finished(sid, "failed", None)
        view.tick()


def _cause(e: BaseException) -> str:
    """The first line of what the stage raised (Ray wraps it with a traceback)."""
    cause = getattr(e, "cause", None) or e
    text = str(cause).strip().splitlines()
    return text[-1][:300] if text else type(cause).__name__


def _summary(graph: list[Stage], status: dict[str, str], errors: dict[str, str], out: Path) -> dict[str, Any]:
    ids = {st.id for st in graph}
    failed = {sid for sid, s in status.items() if s == "failed"}
    # a stage downstream of a failure never ran: say which stage it waited for
    upstream: dict[str, str] = {}
    for st in graph:
        bad = [d for d in st.deps if d in failed or d in upstream]
        if st.id in failed and bad:
            upstream[st.id] = bad[0]
    for sid in upstream:
        failed.discard(sid)
        status[sid] = "not run"
    counts = {k: sum(1 for s in status.values() if s == k) for k in ("done", "skipped", "failed", "not run")}
    lines = ["# Sweep summary", "", f"{len(ids)} stages: " + ", ".join(f"{v} {k}" for k, v in counts.items()), ""]
    if failed or upstream:
        lines += ["| stage | status | why |", "|---|---|---|"]
        for st in graph:
            if st.id in failed:
                lines.append(f"| {st.id} | failed | {errors.get(st.id, '')} |")
            elif st.id in upstream:
                lines.append(f"| {st.id} | not run | {upstream[st.id]} failed |")
        lines.append("")
    report = None
    if any(st.kind == "online" and status.get(st.id) in ("done", "skipped") for st in graph):
        from smacrl.eval.report import write_report

        write_report([out / "runs"], out / "report")
        report = str(out / "report")
        lines.append(f"Report: {report} (`smacrl report {out / 'runs'} --out DIR` rewrites it).")
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return {"counts": counts, "status": status, "errors": errors, "not_run": upstream, "report": report}

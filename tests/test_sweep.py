"""``smacrl sweep``: the stage graph, and real sweeps on a local Ray instance and on a Ray head node.

The Ray tests run the sweep as a separate process (as a user does, and so it can be SIGKILLed), on a
tiny grid: the pendulum task, 400-step data, a 20-step score model, 30 offline and 30 online updates.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from smacrl.errors import ConfigError
from smacrl.sweep.grid import Grid, stages

TASK = "pendulum-medium-replay"
OFFLINE_ARGS = "--steps 30 --eval-every 30 --eval-episodes 1 --checkpoint-every 100000"
ONLINE_ARGS = "--steps 30 --warmup-steps 20 --eval-every 30 --eval-after-first 10 --eval-episodes 1"
ONLINE_ARGS += " --checkpoint-every 100000"
SMALL = ["--tasks", TASK, "--preset", "cpu", "--data-steps", "400", "--score-steps", "20",
         "--offline-args", OFFLINE_ARGS, "--online-args", ONLINE_ARGS]  # fmt: skip


def _sweep_cmd(out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "smacrl.cli", "sweep", "--out", str(out), *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}


def _stage_runs(out: Path) -> Counter:
    path = out / "stages.jsonl"
    return Counter(json.loads(ln)["id"] for ln in path.read_text().splitlines()) if path.exists() else Counter()


# ----------------------------------------------------------------------------- the graph (no Ray)
def test_grid_file_expands_into_shared_stages(tmp_path):
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(
        'tasks = ["pendulum-medium-replay"]\noffline = ["smac", "iql"]\nonline = ["sac", "td3"]\nseeds = [0, 1]\n'
        'preset = "cpu"\noffline_args = ["--steps", "50"]\n[args.offline]\niql = ["--expectile", "0.7"]\n'
    )
    grid = Grid.from_toml(grid_file)
    graph = stages(grid, tmp_path / "out")
    kinds = Counter(st.kind for st in graph)
    assert kinds == {"data": 1, "score": 1, "offline": 4, "online": 8} and len(grid.cells) == 8
    ids = [st.id for st in graph]
    assert len(set(ids)) == len(ids)
    for i, st in enumerate(graph):  # every stage comes after what it needs
        assert all(d in ids[:i] for d in st.deps), st.id
    by_id = {st.id: st for st in graph}
    assert by_id[f"offline:{TASK}/smac-s0"].deps == (f"data:{TASK}", f"score:{TASK}")
    assert by_id[f"offline:{TASK}/iql-s1"].deps == (f"data:{TASK}",)  # IQL needs no score model
    assert by_id[f"online:{TASK}/iql-s1/td3"].deps == (f"offline:{TASK}/iql-s1",)
    iql = by_id[f"offline:{TASK}/iql-s0"]
    assert iql.argv[-4:] == ("--steps", "50", "--expectile", "0.7") and iql.steps == 50
    assert "--expectile" not in by_id[f"offline:{TASK}/smac-s0"].argv

    grid_file.write_text('tasks = ["x"]\nofline = ["smac"]\n')
    with pytest.raises(ConfigError, match="ofline: not a grid field"):
        Grid.from_toml(grid_file)
    with pytest.raises(ConfigError, match="unknown offline algorithm 'sac'"):
        Grid(tasks=(TASK,), offline=("sac",), online=("sac",), seeds=(0,))


def test_variants_run_an_algorithm_with_its_own_flags_under_their_own_name(tmp_path):
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(
        'tasks = ["pendulum-medium-replay"]\noffline = ["smac", "smac-score-free"]\nonline = ["sac", "sac-matched"]\n'
        'seeds = [0]\npreset = "cpu"\n[args.offline]\nsmac = ["--kappa", "3"]\n'
        '[variants.smac-score-free]\nalgo = "smac"\nargs = ["--score-free"]\n'
        '[variants.sac-matched]\nalgo = "sac"\nargs = ["--no-ent-coef-from-checkpoint", "--init-ent-coef", "0.05"]\n'
    )
    graph = {st.id: st for st in stages(Grid.from_toml(grid_file), tmp_path / "out")}
    assert sum(st.kind == "score" for st in graph.values()) == 1  # one score model, shared by both
    free = graph[f"offline:{TASK}/smac-score-free-s0"]
    assert free.algo == "smac" and free.deps == (f"data:{TASK}", f"score:{TASK}")
    argv = list(free.argv)
    assert argv[argv.index("--algo") + 1] == "smac" and argv[-5:] == ["--kappa", "3", "--score-free", "--label",
                                                                      "smac-score-free"]  # fmt: skip
    assert argv[argv.index("--out") + 1].endswith("smac-score-free-s0/offline")
    assert "--score-free" not in graph[f"offline:{TASK}/smac-s0"].argv
    matched = graph[f"online:{TASK}/smac-score-free-s0/sac-matched"]
    argv = list(matched.argv)
    assert matched.algo == "sac" and argv[argv.index("--algo") + 1] == "sac"
    assert argv[-5:] == ["--no-ent-coef-from-checkpoint", "--init-ent-coef", "0.05", "--label", "sac-matched"]
    assert argv[argv.index("--out") + 1].endswith("smac-score-free-s0/online-sac-matched")

    for bad, match in (('algo = "sac"', "unknown offline algorithm 'sac'"), ('algo = "nope"', "unknown")):
        grid_file.write_text(f'tasks = ["t"]\noffline = ["v"]\nonline = ["sac"]\nseeds = [0]\n[variants.v]\n{bad}\n')
        with pytest.raises(ConfigError, match=match):
            Grid.from_toml(grid_file)
    head = 'tasks = ["t"]\noffline = ["iql"]\nonline = ["sac"]\nseeds = [0]\n'
    grid_file.write_text(head + '[variants.iql]\nalgo = "iql"\n')
    with pytest.raises(ConfigError, match=f"^{grid_file}: variants.iql: needs a name of its own"):
        Grid.from_toml(grid_file)


# ----------------------------------------------------------------------------- local Ray
def test_sweep_runs_each_stage_once_and_a_killed_sweep_ends_with_the_same_report(tmp_path):
    pytest.importorskip("ray")
    grid = ["--offline", "smac", "iql", "--online", "sac", "td3", "--seeds", "0", "1", "--num-cpus", "2", *SMALL]
    whole = tmp_path / "whole"
    done = subprocess.run(_sweep_cmd(whole, *grid), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    runs = _stage_runs(whole)
    assert len(runs) == 14 and set(runs.values()) == {1}  # 1 data, 1 score, 4 offline, 8 online: each once
    assert sum(1 for s in runs if s.startswith("data:")) == 1 and sum(1 for s in runs if s.startswith("score:")) == 1
    assert "sweep: [14/14]" in done.stdout  # one line per finished stage in a log (no TTY)
    regret = (whole / "report" / "regret.csv").read_text()
    for offline in ("smac", "iql"):
        for online in ("sac", "td3"):
            assert f"{offline},{online}" in regret.replace(" ", ""), (offline, online)
    aggregate = (whole / "report" / "aggregate.md").read_text()
    assert "| smac → td3 |" in aggregate and "| iql → sac |" in aggregate  # the IQM with its interval, per pair
    assert "| sac | iql |" in aggregate and "P(SMAC > baseline)" in aggregate

    # the same sweep, SIGKILLed mid-way, then run again
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_sweep_cmd(killed, *grid), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while sum(_stage_runs(killed).values()) < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(2)  # the local Ray instance shares the driver's fate; let its workers go
    before = _stage_runs(killed)
    assert 4 <= sum(before.values()) < 14, before
    again = subprocess.run(_sweep_cmd(killed, *grid), env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    after = _stage_runs(killed)
    assert len(after) == 14 and set(after.values()) == {1}  # no finished stage ran again
    assert f"{len(before)} skipped" in again.stdout
    for name in ("regret.csv", "regret.md", "summary.json", "aggregate.csv"):
        assert (killed / "report" / name).read_bytes() == (whole / "report" / name).read_bytes(), name

    # a second sweep on the same directory refuses with one line
    from smacrl.sweep.engine import sweep_lock

    with sweep_lock(killed):
        second = subprocess.run(_sweep_cmd(killed, *grid), env=_env(), capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and "another sweep is running on this directory" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- a Ray head node
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sweep_on_a_ray_head_node_reports_a_failing_cell_while_the_others_finish(tmp_path):
    pytest.importorskip("ray")
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    start = [str(ray_bin), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
             "--num-cpus=2", "--include-dashboard=false"]  # fmt: skip
    # a head without token authentication, so that the test needs no token file (see docs/sweeps.md);
    # --block keeps it in the foreground, so ending this process stops this head and nothing else
    head = subprocess.Popen(start, env={**_env(), "RAY_AUTH_MODE": "disabled"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert head.poll() is None, "ray start --head exited"
            time.sleep(0.2)
        grid_file = tmp_path / "grid.toml"
        grid_file.write_text(
            f'tasks = ["{TASK}"]\noffline = ["iql", "td3bc"]\nonline = ["sac"]\nseeds = [0]\npreset = "cpu"\n'
            f"data_steps = 400\noffline_args = {json.dumps(OFFLINE_ARGS.split())}\n"
            f"online_args = {json.dumps(ONLINE_ARGS.split())}\n"
            '[args.offline]\ntd3bc = ["--policy-delay", "often"]\n'
        )
        out = tmp_path / "cluster"
        cmd = _sweep_cmd(out, "--grid", str(grid_file), "--address", f"127.0.0.1:{port}", "--retries", "1")
        res = subprocess.run([*cmd, "--no-progress"], env=_env(), capture_output=True, text=True, timeout=600)
    finally:
        os.killpg(head.pid, signal.SIGKILL)  # the head's own process group; SIGTERM takes it ~40 s here
        head.wait(timeout=60)
        current = Path("/tmp/ray/ray_current_cluster")  # what `ray stop` would remove for this head
        if current.exists() and current.read_text().strip().endswith(f":{port}"):
            current.unlink()
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-2000:]
    summary = (out / "summary.md").read_text()
    assert f"| offline:{TASK}/td3bc-s0 | failed | Value error Error parsing --policy-delay:" in summary
    assert f"| online:{TASK}/td3bc-s0/sac | not run | offline:{TASK}/td3bc-s0 failed |" in summary
    runs = _stage_runs(out)
    assert runs[f"online:{TASK}/iql-s0/sac"] == 1 and f"offline:{TASK}/td3bc-s0" not in runs
    log = (out / "logs" / f"offline-{TASK}_td3bc-s0.log").read_text()
    assert log.count(f"== offline:{TASK}/td3bc-s0") == 2  # the first try and one retry
    assert (out / "report" / "regret.csv").exists()


def test_progress_view_counts_stages_and_sweep_without_ray_says_what_to_install(tmp_path, capsys, monkeypatch):
    from rich.console import Console

    from smacrl.errors import SmacrlError
    from smacrl.sweep.engine import run_sweep
    from smacrl.sweep.progress import StageView

    grid = Grid(tasks=(TASK,), offline=("iql",), online=("sac", "td3"), seeds=(0,), preset="cpu")
    graph = stages(grid, tmp_path)  # data -> offline -> 2 online
    view = StageView(graph, {}, enabled=True, slots=1)  # stdout is captured: not a terminal, so log lines
    assert view.state[f"data:{TASK}"] == "ready" and view.state[f"offline:{TASK}/iql-s0"] == "queued"
    view.finished(f"data:{TASK}", "done", 4.0)
    view.finished(f"offline:{TASK}/iql-s0", "done", 10.0)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line == f"sweep: [2/4] done offline:{TASK}/iql-s0 in 10 s; 2 ready (1 running), 0 queued, eta unknown"
    view.finished(f"online:{TASK}/iql-s0/sac", "done", 6.0)
    # one stage left, of 6 s, on one slot; two such stages on one slot would take 12 s, not 6
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("1 ready (1 running), 0 queued, eta 6s")
    view.state[f"online:{TASK}/iql-s0/sac"] = "ready"
    assert view._eta() == "12s"
    view.finished(f"online:{TASK}/iql-s0/sac", "failed", None)
    view.finished(f"online:{TASK}/iql-s0/td3", "done", 6.0)
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("0 ready (0 running), 0 queued, eta 0s")
    console = Console(width=120, record=True)
    console.print(view._table())  # the live view a terminal shows
    text = console.export_text()
    assert "online" in text and "4 stages" in text

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(SmacrlError, match=r"pip install 'smacrl\[sweep\]'"):
        run_sweep(grid, tmp_path / "no-ray")

"""Runs that survive: a run SIGKILLed at a random moment and started again ends exactly as the
uninterrupted run (weights bit for bit, the same metric rows), with real processes and real signals."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SMALL = ["--preset", "cpu", "--actor-hidden", "32", "32", "--critic-hidden", "32", "32", "--ensemble-size", "2",
         "--eval-every", "200", "--eval-episodes", "1", "--checkpoint-every", "50", "--log-every", "25",
         "--trajectory-points", "4"]  # fmt: skip
STEPS = {"td3bc": 500, "iql": 500, "smac": 250}


def _cmd(algo: str, data: Path, out: Path) -> list[str]:
    extra = ["--score-steps", "20", "--alpha-hidden", "16"] if algo == "smac" else []
    return [sys.executable, "-m", "smacrl.cli", "pretrain", "--algo", algo, "--dataset", str(data), "--out", str(out),
            "--steps", str(STEPS[algo]), "--seed", "3", "--no-progress", *SMALL, *extra]  # fmt: skip


def _rows(run: Path) -> list[dict]:
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]  # wall-clock rates differ
    return [r for r in rows if len(r) > 1]


@pytest.mark.parametrize("algo", ["td3bc", "iql", "smac"])
def test_pretrain_killed_at_a_random_moment_resumes_exactly(algo, pendulum_data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SMACRL_CACHE": str(tmp_path / "cache")}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(_cmd(algo, pendulum_data, whole), env=env, check=True, capture_output=True, timeout=600)
    proc = subprocess.Popen(_cmd(algo, pendulum_data, killed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (killed / "checkpoints" / "latest").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(random.Random(algo).uniform(0.0, 0.3))  # somewhere after the first checkpoint
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "checkpoints" / "final.safetensors").exists()
    subprocess.run(_cmd(algo, pendulum_data, killed), env=env, check=True, capture_output=True, timeout=600)
    a = load_file(whole / "checkpoints" / "final.safetensors")
    b = load_file(killed / "checkpoints" / "final.safetensors")
    assert a.keys() == b.keys()
    for key in a:  # weights, optimizer states, the random streams: all of it
        assert torch.equal(a[key], b[key]), key
    assert _rows(killed) == _rows(whole)


def _small(out: Path, data: Path, steps: int = 400, *extra: str) -> list[str]:
    return ["pretrain", "--algo", "td3bc", "--dataset", str(data), "--out", str(out), "--steps", str(steps),
            "--seed", "3", *SMALL, "--no-progress", *extra]  # fmt: skip


def test_sigterm_checkpoints_the_current_step_and_the_next_run_resumes_exactly(pendulum_data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    subprocess.run(_cmd("td3bc", pendulum_data, whole), env=env, check=True, capture_output=True, timeout=600)
    proc = subprocess.Popen(_cmd("td3bc", pendulum_data, stopped), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    while not (stopped / "checkpoints" / "latest").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1].strip().splitlines()
    assert proc.returncode == 128 + signal.SIGTERM
    assert len(err) == 1 and err[0].startswith("smacrl: SIGTERM: stopped at step "), err
    step = int(err[0].split("step ")[1].split(";")[0])
    latest = (stopped / "checkpoints" / "latest").read_text().strip()
    assert latest == f"step_{step:09d}.safetensors"  # a checkpoint at the step it stopped, not the last periodic one
    subprocess.run(_cmd("td3bc", pendulum_data, stopped), env=env, check=True, capture_output=True, timeout=600)
    a = load_file(whole / "checkpoints" / "final.safetensors")
    b = load_file(stopped / "checkpoints" / "final.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _rows(stopped) == _rows(whole)


def _poison_batch_at(monkeypatch, update: int) -> None:
    """A NaN reward in the batch of one update (a corrupt row): its loss, gradients and then weights."""
    from smacrl.offline import td3bc

    real = td3bc.TD3BC.update
    calls = [0]

    def update_with_nan(self, batch, diagnostics=False):
        calls[0] += 1
        if calls[0] == update:
            batch = {**batch, "rewards": batch["rewards"].clone().index_fill_(0, torch.tensor([0]), float("nan"))}
        return real(self, batch, diagnostics)

    monkeypatch.setattr(td3bc.TD3BC, "update", update_with_nan)


def test_a_nan_stops_the_run_and_keeps_the_last_good_checkpoint(pendulum_data, tmp_path, monkeypatch, capsys):
    from smacrl.checkpoint import load_checkpoint
    from smacrl.cli import main
    from smacrl.run import RunDir

    _poison_batch_at(monkeypatch, 130)
    out = tmp_path / "nan"
    assert main(_small(out, pendulum_data)) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "offline/" in err[0] and "is nan at step 130: stopped" in err[0], err
    latest = RunDir(out).latest_checkpoint()
    assert latest.name == "step_000000100.safetensors" and latest.name in err[0]
    ck = load_checkpoint(latest)  # the last good one: it loads, and its weights are finite
    assert all(torch.isfinite(v).all() for v in ck.actor_critic.state_dict().values())
    assert not (out / "checkpoints" / "final.safetensors").exists()


def test_skip_mode_puts_back_the_state_from_before_a_nonfinite_update(pendulum_data, tmp_path, monkeypatch):
    from smacrl.checkpoint import load_checkpoint
    from smacrl.cli import main

    _poison_batch_at(monkeypatch, 130)
    out = tmp_path / "skip"
    assert main(_small(out, pendulum_data, 400, "--on-nonfinite", "skip")) == 0
    ck = load_checkpoint(out / "checkpoints" / "final.safetensors")
    assert all(torch.isfinite(v).all() for v in ck.actor_critic.state_dict().values())
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "offline/skipped_updates" in r] == [130]
    assert not any("offline/loss_td" in r for r in rows if r["step"] == 130)  # nothing logged for it


def test_a_second_writer_of_a_run_exits_and_a_dead_holders_lock_is_taken_over(pendulum_data, tmp_path):
    from smacrl.run import RunDir

    out = tmp_path / "locked"
    cmd = [sys.executable, "-m", "smacrl.cli", *_small(out, pendulum_data, 50)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with RunDir(out).create().lock():
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "another process is writing this run (pid " in err[0], err
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from smacrl.run import RunDir; import time; RunDir({str(out)!r}).lock().__enter__(); "
         "print('locked', flush=True); time.sleep(300)"], stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=300).returncode == 0


def test_two_processes_needing_the_same_score_model_train_it_once(pendulum_data, tmp_path):
    script = ("import sys; from smacrl.data import load_dataset; from smacrl.score.cache import ensure_score_model; "
              f"m, p = ensure_score_model(load_dataset({str(pendulum_data)!r}), 'cpu', steps=300, progress=False); "
              "print(p)")  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SMACRL_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    paths = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs) and paths[0] == paths[1]
    steps = [json.loads(ln)["step"] for ln in (Path(paths[0]).parent / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == len(set(steps)) and max(steps) == 300  # one training, not two appended
    assert not list(Path(paths[0]).parent.glob(".*.tmp"))


def test_a_full_disk_leaves_the_previous_checkpoint_and_latest(pendulum_data, tmp_path, monkeypatch, capsys):
    import errno

    from smacrl import checkpoint as ckmod
    from smacrl.checkpoint import load_checkpoint
    from smacrl.cli import main
    from smacrl.run import RunDir

    real = ckmod.atomic_write_bytes

    def write_until_full(path, data):
        if Path(path).name == "step_000000200.safetensors":  # the disk fills while this one is written

            def no_space(fd):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(os, "fsync", no_space)
            try:
                return real(path, data)
            finally:
                monkeypatch.undo()
        return real(path, data)

    monkeypatch.setattr(ckmod, "atomic_write_bytes", write_until_full)
    out = tmp_path / "full"
    assert main(_small(out, pendulum_data)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "step_000000200.safetensors: No space left on device" in err[0], err
    latest = RunDir(out).latest_checkpoint()
    assert latest.name == "step_000000150.safetensors" and load_checkpoint(latest).step == 150
    assert (
        not list((out / "checkpoints").glob(".*.tmp"))
        and not (out / "checkpoints" / "step_000000200.safetensors").exists()
    )


def test_finetune_resumed_after_a_kill_matches_up_to_its_checkpoint_and_finishes(pendulum_data, tmp_path):
    """The documented bound for the online phase: the environment restarts at a new episode."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    off = tmp_path / "offline"
    subprocess.run([sys.executable, "-m", "smacrl.cli", *_small(off, pendulum_data, 100)], env=env, check=True,
                   capture_output=True, timeout=300)  # fmt: skip

    def cmd(out: Path) -> list[str]:
        return [sys.executable, "-m", "smacrl.cli", "finetune", "--algo", "sac", "--checkpoint", str(off), "--out",
                str(out), "--preset", "cpu", "--steps", "400", "--warmup-steps", "100", "--checkpoint-every", "100",
                "--eval-every", "200", "--eval-after-first", "100", "--eval-episodes", "1", "--log-every", "50",
                "--batch-size", "64", "--seed", "1", "--no-progress"]  # fmt: skip

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(cmd(whole), env=env, check=True, capture_output=True, timeout=600)
    proc = subprocess.Popen(cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (killed / "checkpoints" / "latest").exists():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    resumed_at = int((killed / "checkpoints" / "latest").read_text().split("_")[1].split(".")[0])
    subprocess.run(cmd(killed), env=env, check=True, capture_output=True, timeout=600)
    upto = [r for r in _rows(killed) if r["step"] <= resumed_at]
    assert upto == [r for r in _rows(whole) if r["step"] <= resumed_at] and resumed_at >= 100
    assert max(r["step"] for r in _rows(killed)) == 400


def test_score_training_killed_at_a_random_moment_resumes_exactly(pendulum_data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def cmd(out: Path) -> list[str]:
        return [sys.executable, "-m", "smacrl.cli", "score", "train", "--dataset", str(pendulum_data), "--out",
                str(out), "--preset", "cpu", "--steps", "300", "--checkpoint-every", "50", "--log-every", "25",
                "--eval-episodes", "0", "--no-progress"]  # fmt: skip

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(cmd(whole), env=env, check=True, capture_output=True, timeout=600)
    proc = subprocess.Popen(cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (killed / "train_state.safetensors").exists() and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(random.Random("score").uniform(0.0, 0.5))
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the training finished before it could be killed"
    subprocess.run(cmd(killed), env=env, check=True, capture_output=True, timeout=600)
    a, b = load_file(whole / "score.safetensors"), load_file(killed / "score.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _rows(killed) == _rows(whole)
    assert not (killed / "train_state.safetensors").exists()  # removed once the training ended

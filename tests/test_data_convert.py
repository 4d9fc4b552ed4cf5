"""The paper's own data: files in the exact published layouts, bound to their tasks.

- a D4RL locomotion file under D4RL's own download name, with its ``infos/`` and ``metadata/`` groups;
- AWAC's binary Adroit ``.npy`` object arrays (dict observations in the demos, flat arrays in the BC
  rollouts), converted with Cal-QL's processing and checked against a hand computation;
- a malicious ``.npy`` whose pickle calls ``os.system``: refused, nothing executed.
"""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

from smacrl.cli import main

GAMMA = 0.99


def _d4rl_hopper(path, episodes=3, steps=40, seed=0):
    """hopper-medium-replay-v2's layout: the arrays, timeouts, and D4RL's infos/ and metadata/ groups."""
    rng = np.random.default_rng(seed)
    n = episodes * steps
    with h5py.File(path, "w") as f:
        f["observations"] = rng.normal(size=(n, 11)).astype(np.float32)
        f["next_observations"] = rng.normal(size=(n, 11)).astype(np.float32)
        f["actions"] = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
        f["rewards"] = rng.uniform(0, 3, size=n).astype(np.float32)
        f["terminals"] = np.zeros(n, dtype=bool)
        timeouts = np.zeros(n, dtype=bool)
        timeouts[steps - 1 :: steps] = True
        f["timeouts"] = timeouts
        f["infos/qpos"] = rng.normal(size=(n, 6)).astype(np.float32)
        f["infos/qvel"] = rng.normal(size=(n, 6)).astype(np.float32)
        f["infos/action_log_probs"] = rng.normal(size=n).astype(np.float32)
        f["metadata/algorithm"] = np.bytes_("SAC")
        f["metadata/policy/fc0/weight"] = rng.normal(size=(4, 11)).astype(np.float32)
    return path


def test_d4rl_download_name_binds_the_task_and_the_run_evaluates_on_it(tmp_path, capsys):
    data = _d4rl_hopper(tmp_path / "hopper_medium_replay-v2.hdf5")
    assert main(["data", "info", str(data)]) == 0
    assert "(task hopper-medium-replay-v2)" in capsys.readouterr().out.splitlines()[0]
    out = tmp_path / "run"
    args = ["pretrain", "--algo", "iql", "--dataset", str(data), "--preset", "cpu", "--steps", "20", "--eval-every",
            "20", "--eval-episodes", "1", "--actor-hidden", "8", "--critic-hidden", "8", "--value-hidden", "8",
            "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "hopper-medium-replay-v2"
    evals = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if "eval/return_mean" in ln]
    assert [r["step"] for r in evals] == [0, 20] and all("eval/normalized_return" in r for r in evals)


def test_data_without_a_task_stops_a_run_that_would_evaluate(tmp_path, capsys):
    data = _d4rl_hopper(tmp_path / "my_data.hdf5")
    common = ["pretrain", "--algo", "td3bc", "--dataset", str(data), "--preset", "cpu", "--steps", "10",
              "--actor-hidden", "8", "--critic-hidden", "8", "--no-progress"]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "my_data.hdf5: task: no task is bound" in err[0] and "--task" in err[0]
    assert main([*common, "--out", str(tmp_path / "b"), "--eval-every", "0"]) == 0  # asked for: no evaluation
    assert main([*common, "--out", str(tmp_path / "c"), "--task", "hopper-medium-replay-v2", "--eval-every", "10",
                 "--eval-episodes", "1"]) == 0  # fmt: skip
    assert json.loads((tmp_path / "c" / "config.json").read_text())["task"] == "hopper-medium-replay-v2"


# ----------------------------------------------------------------------------- AWAC's binary Adroit files
OBS, ACT = 39, 28  # door


def _steps(rewards, rng, as_dicts):
    t = len(rewards)
    obs = rng.normal(size=(t, OBS))
    nxt = rng.normal(size=(t, OBS))
    if as_dicts:
        obs = [{"state_observation": o, "desired_goal": np.zeros(3)} for o in obs]
        nxt = [{"state_observation": o, "desired_goal": np.zeros(3)} for o in nxt]
    return obs, nxt, rng.uniform(-1, 1, size=(t, ACT))


def _awac_files(folder):
    """door2_sparse.npy (3 demos, dict observations) and door_bc_sparse4.npy (2 BC rollouts, flat arrays)."""
    rng = np.random.default_rng(0)
    demo_rewards = [[-1, -1, -1], [-1, -1, 0, 0, -1], [-1, 0, -1, 0, -1, -1]]
    demos = np.empty(3, dtype=object)
    for i, r in enumerate(demo_rewards):
        obs, nxt, act = _steps(r, rng, True)
        if i == 1:
            act[0, 0] = 1.0  # clipped to 0.99999
        extra = [-1.0] if i == 2 else []  # one demo stores a reward more than it has steps
        demos[i] = {"observations": obs, "next_observations": nxt, "actions": act,
                    "rewards": np.array(r + extra, dtype=float), "terminals": np.zeros(len(r))}  # fmt: skip
    bc_rewards = [[-1, -1, -1, 0], [-1, -1]]
    bc = np.empty(2, dtype=object)
    for i, r in enumerate(bc_rewards):
        obs, nxt, act = _steps(r, rng, False)
        bc[i] = {"observations": obs, "next_observations": nxt, "actions": act,
                 "rewards": np.array(r, dtype=float).reshape(-1, 1), "terminals": np.zeros((len(r), 1))}  # fmt: skip
    np.save(folder / "door2_sparse.npy", demos, allow_pickle=True)
    np.save(folder / "door_bc_sparse4.npy", bc, allow_pickle=True)
    return demos, bc


def _mc(rewards, dones):
    g, out = 0.0, []
    for r, d in zip(reversed(rewards), reversed(dones), strict=True):
        g = r + GAMMA * g * (1 - d)
        out.append(g)
    return out[::-1]


def test_convert_applies_calql_processing_to_awac_files(tmp_path, monkeypatch, capsys):
    pytest.importorskip("gymnasium_robotics")
    from smacrl.data import load_dataset

    demos, bc = _awac_files(tmp_path)
    monkeypatch.setenv("SMACRL_DATA", str(tmp_path / "cache"))
    assert main(["data", "convert", "door-binary-v0", "--dir", str(tmp_path)]) == 0
    assert "3 successful trajectories, 12 steps (demos 2 of 3, BC 1 of 2)" in capsys.readouterr().out

    # by hand: the never-successful demo and BC rollout are dropped; the others are cut after their last
    # success ([-1,-1,0,0,-1] -> 4 steps, [-1,0,-1,0,-1,-1] -> 4, [-1,-1,-1,0] -> 4); every 0 is terminal
    kept = [[-1, -1, 0, 0], [-1, 0, -1, 0], [-1, -1, -1, 0]]
    rewards = [r for t in kept for r in t]
    dones = [r == 0 for r in rewards]
    mc = [g for t in kept for g in _mc(t, [r == 0 for r in t])]
    assert mc[:4] == pytest.approx([-1.99, -1.0, 0.0, 0.0]) and mc[8] == pytest.approx(-1 - GAMMA * 1.99)

    ds = load_dataset("door-binary-v0")  # from the data cache, by the task's name
    assert ds.task == "door-binary-v0" and len(ds) == 12
    np.testing.assert_array_equal(ds.rewards, rewards)
    np.testing.assert_array_equal(ds.terminals, dones)
    assert ds.timeouts.sum() == 0 and ds.mc_returns is not None
    np.testing.assert_allclose(ds.mc_returns, mc, rtol=1e-6)
    expected_obs = np.concatenate([
        np.array([o["state_observation"] for o in demos[1]["observations"]])[:4],
        np.array([o["state_observation"] for o in demos[2]["observations"]])[:4],
        bc[0]["observations"],
    ])  # fmt: skip
    np.testing.assert_allclose(ds.observations, expected_obs.astype(np.float32))
    assert ds.actions.max() <= 0.99999 + 1e-7 and np.isclose(ds.actions[0, 0], 0.99999)
    with h5py.File(tmp_path / "cache" / "door-binary-v0.hdf5") as f:
        assert f.attrs["trajectories"] == 3
        np.testing.assert_array_equal(f["infos/trajectory"][:], np.repeat([0, 1, 2], 4))
    assert (ds.w == 1).all()  # every kept trajectory succeeds: the RvS condition is the success


def test_a_malicious_npy_is_refused_without_running_anything(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = np.empty(1, dtype=object)
    evil[0] = {"observations": Evil()}
    np.save(tmp_path / "door2_sparse.npy", evil, allow_pickle=True)
    np.save(tmp_path / "door_bc_sparse4.npy", np.empty(0, dtype=object), allow_pickle=True)
    assert main(["data", "convert", "door-binary-v0", "--dir", str(tmp_path), "--out", str(tmp_path / "o.hdf5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "door2_sparse.npy: pickle: refused to load 'posix.system'" in err[0], err
    assert not marker.exists() and not (tmp_path / "o.hdf5").exists()


def test_task_recognition_from_names_and_minari_env_specs():
    from smacrl.data.loaders import task_from_env, task_from_name

    assert task_from_name("/x/hopper_medium_replay-v2.hdf5") == "hopper-medium-replay-v2"
    assert task_from_name("walker2d_medium_replay-v2.hdf5") == "walker2d-medium-replay-v2"
    assert task_from_name("door-binary-v0.hdf5") == "door-binary-v0" and task_from_name("my_data.hdf5") is None
    assert task_from_env("Hopper-v5") == "hopper-medium-replay-v2"  # one paper task runs on it unchanged
    assert task_from_env("AdroitHandDoor-v1") is None  # door-binary-v0 wraps the env's reward: name it
    assert task_from_env("NoSuchEnv-v0") is None


def test_binary_adroit_tasks_use_calql_episode_limits():
    pytest.importorskip("gymnasium_robotics")
    from smacrl.data.tasks import make_env

    for task, limit in (("pen-binary-v0", 100), ("door-binary-v0", 200), ("relocate-binary-v0", 200)):
        env = make_env(task)
        assert env.spec.max_episode_steps == limit, task
        env.close()

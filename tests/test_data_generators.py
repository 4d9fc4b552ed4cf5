"""Local generators and the ``smacrl data`` CLI."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from smacrl.cli import main
from smacrl.data import generators as G
from smacrl.data import load_dataset


@pytest.fixture(scope="module")
def maze_file(tmp_path_factory):
    pytest.importorskip("gymnasium_robotics")
    out = tmp_path_factory.mktemp("maze") / "pm.hdf5"
    assert main(["data", "make", "pointmaze-umaze-binary", "--out", str(out), "--steps", "3000", "--no-progress"]) == 0
    return out


def test_pointmaze_file_layout_and_attrs(maze_file):
    with h5py.File(maze_file) as f:
        assert {"observations", "actions", "rewards", "terminals", "timeouts", "next_observations"} <= set(f)
        a = dict(f.attrs)
        r, term, to = f["rewards"][()], f["terminals"][()], f["timeouts"][()]
        act = f["actions"][()]
    for k in ("protocol", "seed", "steps", "final_policy_return", "smacrl_version", "task"):
        assert k in a
    assert a["steps"] == 3000 and a["seed"] == 0 and a["task"] == "pointmaze-umaze-binary"
    # sparse success reward, terminal exactly at the rewarded (goal) steps, never both terminal and timeout
    assert set(np.unique(r)) <= {0.0, 1.0}
    np.testing.assert_array_equal(term, r == 1.0)
    assert not (term & to).any() and (term[-1] or to[-1])
    assert np.abs(act).max() <= 1.0
    assert 0.0 < a["success_rate"] <= 1.0


def test_pointmaze_loads_with_task_from_attrs_and_is_seeded(maze_file, tmp_path):
    ds = load_dataset(maze_file)
    assert ds.task == "pointmaze-umaze-binary" and ds.obs_dim == 8 and len(ds) == 3000
    assert ds.mc_returns is not None and set(np.unique(ds.w)) <= {0.0, 1.0}
    # same seed, same data; another seed, other data
    again = tmp_path / "again.hdf5"
    G.make_task_data("pointmaze-umaze-binary", again, seed=0, steps=3000)
    assert load_dataset(again).sha256 == ds.sha256
    other = tmp_path / "other.hdf5"
    G.make_task_data("pointmaze-umaze-binary", other, seed=1, steps=3000)
    assert load_dataset(other).sha256 != ds.sha256


def test_data_info_json(maze_file, capsys):
    assert main(["data", "info", str(maze_file), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["transitions"] == 3000 and s["obs_dim"] == 8 and s["act_dim"] == 2
    assert s["condition"] == "success" and s["mc_returns"] is True
    assert s["episodes"] >= 1 and s["return"]["max"] <= 1.0
    assert main(["data", "info", str(maze_file)]) == 0
    assert "transitions 3,000" in capsys.readouterr().out


def test_sac_generator_is_found_and_d4rl_tasks_are_not_generated(tmp_path, capsys):
    from smacrl.data.tasks import get_task
    from smacrl.online.medium_replay import sac_medium_replay

    assert G.get_generator(get_task("pendulum-medium-replay")) is sac_medium_replay
    out = tmp_path / "p.hdf5"
    assert main(["data", "make", "hopper-medium-replay-v2", "--out", str(out)]) == 2
    assert "supply its file by path" in capsys.readouterr().err


def test_generator_hook_writes_d4rl_layout(tmp_path, monkeypatch):
    def fake(task, seed, steps, bar):
        n = steps or 10
        rng = np.random.default_rng(seed)
        obs = rng.normal(size=(n + 1, 3))
        to = np.zeros(n, bool)
        to[-1] = True
        bar.update(n)
        return G.Rollouts(obs[:-1], rng.uniform(-2, 2, (n, 1)), np.ones(n), np.zeros(n, bool), to, obs[1:],
                          {"protocol": "fake", "final_policy_return": 7.0, "threshold": -300.0})  # fmt: skip

    monkeypatch.setitem(G.GENERATORS, "sac_medium_replay", fake)
    out = tmp_path / "p.hdf5"
    assert main(["data", "make", "pendulum-medium-replay", "--out", str(out), "--steps", "12", "--no-progress"]) == 0
    ds = load_dataset(out)
    assert ds.task == "pendulum-medium-replay" and len(ds) == 12 and ds.mc_returns is None
    assert ds.info["attrs"]["threshold"] == -300.0 and ds.info["attrs"]["final_policy_return"] == 7.0

    def broken(task, seed, steps, bar):
        raise RuntimeError("boom")

    monkeypatch.setitem(G.GENERATORS, "sac_medium_replay", broken)
    out2 = tmp_path / "q.hdf5"
    with pytest.raises(RuntimeError):
        G.make_task_data("pendulum-medium-replay", out2)
    assert not out2.exists() and not list(tmp_path.glob(".q.hdf5*"))

"""D4RL-layout and Minari loading, derived fields, and the malformed-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from smacrl.cli import main
from smacrl.data import load_dataset
from smacrl.errors import DatasetError


def _episodes(lengths, obs_dim=3, act_dim=1, bound=2.0, seed=0, end="timeout"):
    """D4RL arrays for consecutive episodes; rewards = 1 per step in episode k times (k + 1)."""
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    d = {
        "observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-bound, bound, size=(n, act_dim)).astype(np.float32),
        "rewards": np.concatenate([np.full(L, k + 1.0) for k, L in enumerate(lengths)]).astype(np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": np.zeros(n, bool),
    }
    ends = np.cumsum(lengths) - 1
    d["terminals" if end == "terminal" else "timeouts"][ends] = True
    return d


def _write(path: Path, arrays: dict, attrs: dict | None = None) -> Path:
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
    return path


# ----------------------------------------------------------------------------- D4RL layout
def test_d4rl_timeouts_without_next_obs_are_counted_not_silent(tmp_path):
    d = _episodes([4, 3, 5])
    ds = load_dataset(_write(tmp_path / "a.hdf5", d), task="pendulum-medium-replay")
    # the last step of each timed-out episode has no next observation: 3 steps kept out, and said so
    assert len(ds) == 12 - 3
    assert ds.info["timeout_steps_without_next_obs"] == 3
    assert ds.n_episodes == 3
    # next obs is the following row of the same episode
    np.testing.assert_array_equal(ds.next_observations[0], d["observations"][1])
    np.testing.assert_array_equal(ds.next_observations[3], d["observations"][5])  # episode 2, step 1 -> 2
    # returns count every step, also the ones kept out: 4*1, 3*2, 5*3
    np.testing.assert_allclose(np.unique(ds.traj_returns), [4.0, 6.0, 15.0])
    np.testing.assert_allclose(ds.w[ds.episode_ids == 0], 0.0)
    np.testing.assert_allclose(ds.w[ds.episode_ids == 2], 1.0)
    np.testing.assert_allclose(ds.w[ds.episode_ids == 1], (6 - 4) / (15 - 4))
    # infinite-horizon task: no Monte-Carlo returns; pendulum actions [-2, 2] normalized to [-1, 1]
    assert ds.mc_returns is None
    kept = [0, 1, 2, 4, 5, 7, 8, 9, 10]  # episode ends (rows 3, 6, 11) are left out
    np.testing.assert_allclose(ds.actions[:, 0], d["actions"][kept, 0] / 2.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.observations, d["observations"][kept])
    assert ds.actions.dtype == np.float32 and ds.observations.dtype == np.float32
    assert ds.episode_ids.dtype == np.int64 and ds.terminals.dtype == bool


def test_d4rl_next_observations_and_terminals_with_mc_returns(tmp_path):
    d = _episodes([3, 2], bound=1.0, end="terminal")
    d["next_observations"] = d["observations"] + 100.0
    path = _write(tmp_path / "b.hdf5", d)
    ds = load_dataset(path)  # no task: bounds assumed [-1, 1]; all episodes terminal -> MC available
    assert len(ds) == 5 and ds.info["next_observations"] == "from file"
    np.testing.assert_array_equal(ds.next_observations, d["next_observations"])
    assert ds.terminals.tolist() == [False, False, True, False, True]
    g = 0.99
    expect = [1 + g + g * g, 1 + g, 1, 2 + 2 * g, 2]
    np.testing.assert_allclose(ds.mc_returns, expect, rtol=1e-6)


def test_d4rl_without_timeouts_infers_episode_ends(tmp_path):
    d = _episodes([3, 4])
    nxt = np.roll(d["observations"], -1, axis=0)
    nxt[2] = 50.0  # episode boundary: next obs is not the following row
    d["next_observations"] = nxt
    del d["timeouts"]
    ds = load_dataset(_write(tmp_path / "c.hdf5", d), task="pendulum-medium-replay")
    assert ds.n_episodes == 2 and ds.episode_lengths().tolist() == [3, 4]
    assert "inferred" in ds.info["timeouts"]


def test_obs_stats_and_sha256(tmp_path):
    d = _episodes([5, 5])
    a = load_dataset(_write(tmp_path / "a.hdf5", d), task="pendulum-medium-replay")
    b = load_dataset(_write(tmp_path / "b.hdf5", d), task="pendulum-medium-replay")
    assert a.sha256 == b.sha256 and len(a.sha256) == 64
    np.testing.assert_allclose(a.obs_mean, a.observations.mean(0), rtol=1e-5)
    np.testing.assert_allclose(a.obs_std, a.observations.std(0), rtol=1e-4)
    d["rewards"][0] += 1.0
    c = load_dataset(_write(tmp_path / "c.hdf5", d), task="pendulum-medium-replay")
    assert c.sha256 != a.sha256


def test_registered_task_name_reads_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SMACRL_DATA", str(tmp_path))
    with pytest.raises(DatasetError, match="smacrl data make pendulum-medium-replay"):
        load_dataset("pendulum-medium-replay")
    _write(tmp_path / "pendulum-medium-replay.hdf5", _episodes([4, 4]))
    ds = load_dataset("pendulum-medium-replay")
    assert ds.task == "pendulum-medium-replay" and len(ds) == 6


# ----------------------------------------------------------------------------- malformed input
def _malformed(tmp_path: Path, case: str) -> tuple[Path, str | None, str, str]:
    """(path, task, expected field, expected problem fragment) for one malformed-input case."""
    d = _episodes([4, 4])
    task = "pendulum-medium-replay"
    p = tmp_path / f"{case}.hdf5"
    if case == "missing_actions":
        del d["actions"]
        return _write(p, d), task, "actions", "missing key"
    if case == "missing_rewards":
        del d["rewards"]
        return _write(p, d), task, "rewards", "missing key"
    if case == "ragged_rewards":
        d["rewards"] = d["rewards"][:-1]
        return _write(p, d), task, "rewards", "ragged"
    if case == "ragged_terminals":
        d["terminals"] = np.zeros(20, bool)
        return _write(p, d), task, "terminals", "ragged"
    if case == "nan_obs":
        d["observations"][3, 1] = np.nan
        return _write(p, d), task, "observations", "row 3"
    if case == "inf_reward":
        d["rewards"][5] = np.inf
        return _write(p, d), task, "rewards", "non-finite"
    if case == "nan_next_obs":
        d["next_observations"] = d["observations"].copy()
        d["next_observations"][0, 0] = np.nan
        return _write(p, d), task, "next_observations", "non-finite"
    if case == "action_out_of_bounds":
        d["actions"][2, 0] = 2.5  # pendulum bound is 2
        return _write(p, d), task, "actions", "outside the env bounds"
    if case == "obs_dim_mismatch":
        d["observations"] = np.zeros((8, 5), np.float32)
        return _write(p, d), task, "observations", "obs dim 5"
    if case == "act_dim_mismatch":
        d["actions"] = np.zeros((8, 2), np.float32)
        return _write(p, d), task, "actions", "action dim 2"
    if case == "empty":
        d = {k: v[:0] for k, v in d.items()}
        return _write(p, d), task, "observations", "empty"
    if case == "not_hdf5":
        p.write_text("observations,actions\n1,2\n")
        return p, task, "file", "not an HDF5 file"
    if case == "missing_file":
        return tmp_path / "nope.hdf5", task, "file", "no such file"
    if case == "obs_wrong_rank":
        d["observations"] = np.zeros((8, 3, 2), np.float32)
        return _write(p, d), task, "observations", "shape"
    if case == "string_rewards":
        d["rewards"] = np.array([b"x"] * 8)
        return _write(p, d), task, "rewards", "non-numeric"
    if case == "actions_group":
        del d["actions"]
        _write(p, d)
        with h5py.File(p, "a") as f:
            f.create_group("actions")
        return p, task, "actions", "group"
    raise KeyError(case)


MALFORMED = [
    "missing_actions",
    "missing_rewards",
    "ragged_rewards",
    "ragged_terminals",
    "nan_obs",
    "inf_reward",
    "nan_next_obs",
    "action_out_of_bounds",
    "obs_dim_mismatch",
    "act_dim_mismatch",
    "empty",
    "not_hdf5",
    "missing_file",
    "obs_wrong_rank",
    "string_rewards",
    "actions_group",
]


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_d4rl_one_line_error(tmp_path, case):
    path, task, field, fragment = _malformed(tmp_path, case)
    with pytest.raises(DatasetError) as e:
        load_dataset(path, task)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(path) in msg and e.value.field == field and fragment in msg, msg


@pytest.mark.parametrize("case", ["ragged_rewards", "not_hdf5", "action_out_of_bounds"])
def test_malformed_cli_exit_2_one_line(tmp_path, capsys, case):
    path, task, field, _ = _malformed(tmp_path, case)
    code = main(["data", "info", str(path), "--task", task])
    err = capsys.readouterr()
    assert code == 2 and err.out == ""
    lines = err.err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and field in lines[0]


def test_small_action_overshoot_is_clipped(tmp_path):
    d = _episodes([4, 4])
    d["actions"][0, 0] = 2.0 + 1e-4  # within 1e-3 of the half-range
    ds = load_dataset(_write(tmp_path / "t.hdf5", d), "pendulum-medium-replay")
    assert ds.actions.max() <= 1.0 and ds.actions[0, 0] == 1.0


# ----------------------------------------------------------------------------- Minari
def _minari_dataset(tmp_path, monkeypatch, episodes=4, steps=30):
    gym = pytest.importorskip("gymnasium")
    pytest.importorskip("gymnasium_robotics")
    minari = pytest.importorskip("minari")
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = minari.DataCollector(gym.make("PointMaze_UMaze-v3", continuing_task=False, max_episode_steps=steps))
    for ep in range(episodes):
        env.reset(seed=ep)
        for _ in range(steps):
            *_, term, trunc, _ = env.step(env.action_space.sample())
            if term or trunc:
                break
    env.create_dataset(dataset_id="smacrl/pointmaze-test-v0", algorithm_name="random")
    env.close()
    return tmp_path / "minari" / "smacrl" / "pointmaze-test-v0"


def test_minari_dataset_from_datacollector(tmp_path, monkeypatch):
    folder = _minari_dataset(tmp_path, monkeypatch)
    ds = load_dataset(folder, task="pointmaze-umaze-binary")
    with h5py.File(folder / "data" / "main_data.hdf5") as f:
        ep0 = f["episode_0"]
        T = len(ep0["actions"])
        # flattened in sorted key order: achieved_goal, desired_goal, observation
        o = np.concatenate([ep0["observations"][k][()] for k in ("achieved_goal", "desired_goal", "observation")], 1)
        n_total = sum(len(f[k]["actions"]) for k in f if k.startswith("episode_"))
    assert len(ds) == n_total and ds.obs_dim == 8 and ds.act_dim == 2
    np.testing.assert_allclose(ds.observations[:T], o[:-1], rtol=1e-6)
    np.testing.assert_allclose(ds.next_observations[:T], o[1:], rtol=1e-6)
    assert ds.info["format"] == "minari" and ds.n_episodes == 4
    assert ds.mc_returns is not None and ds.info["condition"] == "success"
    # the flatten order is the env's: make_env's FlattenObservation gives the same layout
    from gymnasium.spaces import flatten

    from smacrl.data import make_env

    env = make_env("pointmaze-umaze-binary")
    assert env.observation_space.shape == (8,)
    space = env.unwrapped.observation_space
    sample = space.sample()
    np.testing.assert_allclose(
        flatten(space, sample), np.concatenate([sample[k] for k in ("achieved_goal", "desired_goal", "observation")])
    )
    env.close()
    # the same folder through the CLI, and the data/ subfolder is accepted too
    assert load_dataset(folder / "data").sha256 == load_dataset(folder).sha256


def test_minari_malformed(tmp_path, monkeypatch):
    folder = _minari_dataset(tmp_path, monkeypatch, episodes=2, steps=10)
    main_h5 = folder / "data" / "main_data.hdf5"
    with h5py.File(main_h5, "a") as f:
        del f["episode_1/rewards"]
        f["episode_1/rewards"] = np.zeros(3)
    with pytest.raises(DatasetError, match=r"episode_1/rewards: ragged lengths"):
        load_dataset(folder)
    (folder / "data" / "metadata.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"metadata.json: file: not valid JSON"):
        load_dataset(folder)
    (folder / "data" / "metadata.json").write_text(json.dumps({"dataset_id": "x"}))
    (folder / "data" / "main_data.hdf5").unlink()
    with pytest.raises(DatasetError, match="missing main_data.hdf5"):
        load_dataset(folder)

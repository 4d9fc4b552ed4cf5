"""``smacrl score train`` / ``smacrl score eval`` end to end on a tiny synthetic Pendulum dataset."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from smacrl.cli import main
from smacrl.logger import read_metrics
from smacrl.score import DiffusionPolicy, ScoreModel, read_score_metadata


@pytest.fixture(scope="module")
def pendulum_file(tmp_path_factory):
    """400 steps of Pendulum-v1-shaped data (obs 3, action in [-2, 2]), 8 episodes of 50 steps."""
    rng = np.random.default_rng(0)
    n, ep = 400, 50
    theta = rng.uniform(-np.pi, np.pi, n)
    obs = np.stack([np.cos(theta), np.sin(theta), rng.normal(0, 1, n)], 1).astype(np.float32)
    act = np.clip(-1.5 * obs[:, 1:2] + 0.2 * rng.normal(size=(n, 1)), -2, 2).astype(np.float32)
    rew = (-(theta**2)).astype(np.float32)
    timeouts = np.zeros(n, dtype=bool)
    timeouts[ep - 1 :: ep] = True
    path = tmp_path_factory.mktemp("data") / "pendulum.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"], f["actions"], f["rewards"] = obs, act, rew
        f["terminals"], f["timeouts"] = np.zeros(n, dtype=bool), timeouts
        f.attrs["action_low"], f.attrs["action_high"] = np.array([-2.0]), np.array([2.0])
    return path


def _train(path, out, *extra: str) -> int:
    torch.set_num_threads(1)
    args = ["score", "train", "--dataset", str(path), "--out", str(out), "--preset", "cpu", "--steps", "40"]
    args += ["--hidden-dim", "32", "--cond-hidden", "32", "32", "--log-every", "10", "--no-progress", "--device", "cpu"]
    return main(args + list(extra))


@pytest.fixture(scope="module")
def trained_dir(pendulum_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("score")
    assert _train(pendulum_file, out) == 0
    return out


def test_score_train_writes_checkpoint_config_and_metrics(pendulum_file, trained_dir):
    from smacrl.data import load_dataset

    meta = read_score_metadata(trained_dir)
    ds = load_dataset(pendulum_file)
    assert meta["dataset_sha256"] == ds.sha256
    assert meta["step"] == 40 and meta["obs_dim"] == 3 and meta["act_dim"] == 1 and meta["rvs"] is True
    assert meta["config"]["hidden_dim"] == 32 and meta["config"]["cond_hidden"] == [32, 32]
    assert meta["info"]["action_low"] == [-2.0] and meta["info"]["dataset_return_mean"] == pytest.approx(
        float(ds.episode_returns().mean()), rel=1e-6
    )
    cfg = json.loads((trained_dir / "config.json").read_text())
    assert cfg["algo"] == "score" and cfg["dataset_sha256"] == ds.sha256
    rows = read_metrics(trained_dir)
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    assert all(np.isfinite(r["score/loss"]) and r["score/loss"] > 0 for r in rows)


def test_score_train_no_rvs(pendulum_file, tmp_path):
    assert _train(pendulum_file, tmp_path, "--no-rvs", "--steps", "5", "--log-every", "5") == 0
    meta = read_score_metadata(tmp_path)
    assert meta["rvs"] is False and meta["config"]["rvs"] is False and meta["step"] == 5


def test_score_eval_reports_return(trained_dir, capsys):
    torch.set_num_threads(1)
    capsys.readouterr()
    rc = main(
        ["score", "eval", "--model", str(trained_dir), "--task", "Pendulum-v1", "--episodes", "2"]
        + ["--json", "--no-progress", "--device", "cpu"]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["w"] == 1.0 and out["step"] == 40 and out["task"] == "Pendulum-v1"
    # Pendulum rewards are in [-16.3, 0] per step over 200 steps.
    assert -16.3 * 200 <= out["eval/score_bc_return_mean"] <= 0
    assert out["eval/score_bc_length_mean"] == 200


def test_score_eval_wrong_env_is_one_line_error(trained_dir, capsys):
    rc = main(["score", "eval", "--model", str(trained_dir), "--task", "MountainCarContinuous-v0", "--episodes", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "obs_dim" in err and "score.safetensors" in err


def test_score_train_bad_override_and_missing_dataset(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["score", "train", "--dataset", "x", "--out", str(tmp_path), "--no-such-field", "1"])
    rc = main(["score", "train", "--dataset", str(tmp_path / "nope.hdf5"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "nope.hdf5" in capsys.readouterr().err


def test_diffusion_policy_maps_to_env_bounds():
    from smacrl.configs import make_config

    model = ScoreModel(3, 2, make_config("score", "cpu"))
    pol = DiffusionPolicy(model, [-2.0, 0.0], [2.0, 10.0])
    a = torch.tensor([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(pol.to_env_action(a), torch.tensor([[-2.0, 0.0], [0.0, 5.0], [2.0, 10.0]]))
    x = pol.act(torch.randn(5, 3))
    assert x.shape == (5, 2) and x.abs().max() <= 1.0


def test_score_train_reports_heldout_loss_and_the_diffusion_bc_return(tmp_path, capsys):
    """On a dataset with a task, `score train` logs the held-out loss and ends with `score eval`'s rollout."""
    rng = np.random.default_rng(0)
    n, ep = 600, 200
    theta = rng.uniform(-np.pi, np.pi, n)
    obs = np.stack([np.cos(theta), np.sin(theta), rng.normal(0, 1, n)], 1).astype(np.float32)
    act = np.clip(-1.5 * obs[:, 1:2], -2, 2).astype(np.float32)
    timeouts = np.zeros(n, dtype=bool)
    timeouts[ep - 1 :: ep] = True
    path = tmp_path / "pendulum.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"], f["actions"], f["rewards"] = obs, act, (-(theta**2)).astype(np.float32)
        f["terminals"], f["timeouts"] = np.zeros(n, dtype=bool), timeouts
        f.attrs["action_low"], f.attrs["action_high"] = np.array([-2.0]), np.array([2.0])
        f.attrs["task"] = "pendulum-medium-replay"
    out = tmp_path / "score"
    assert _train(path, out, "--eval-episodes", "2", "--heldout-fraction", "0.1") == 0
    text = capsys.readouterr().out
    rows = read_metrics(out / "metrics.jsonl")
    held = [r["score/heldout_loss"] for r in rows if "score/heldout_loss" in r]
    assert len(held) == 4 and all(np.isfinite(held))
    assert "held-out denoising loss" in text
    bc = [r for r in rows if "eval/score_bc_return_mean" in r]
    assert len(bc) == 1 and bc[0]["step"] == 40 and "diffusion-BC policy" in text and "pendulum" in text

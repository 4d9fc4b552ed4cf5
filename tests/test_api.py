"""The Python API: the README's example runs as written, and it trains what the CLI trains."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import torch

from smacrl.checkpoint import load_checkpoint

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_example() -> str:
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_example_runs_as_written(pendulum_data, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(pendulum_data, data / "pendulum-medium-replay.hdf5")  # what `smacrl data make` leaves there
    monkeypatch.setenv("SMACRL_DATA", str(data))
    monkeypatch.chdir(tmp_path)
    exec(compile(_readme_example(), str(README), "exec"), {})
    printed = capsys.readouterr().out
    assert "eval/return_mean" in printed
    online = load_checkpoint(tmp_path / "runs/api/online/checkpoints/final.safetensors")
    assert online.algo == "sac" and online.meta["info"]["offline_algo"] == "iql" and online.step == 1000
    assert online.config["batch_size"] == 256  # the cpu preset keeps its own small batch


def test_api_and_cli_train_the_same_checkpoint_including_the_calql_fallback(pendulum_data, tmp_path, capsys):
    from smacrl.cli import main
    from smacrl.configs import make_config
    from smacrl.data import load_dataset
    from smacrl.offline.train import pretrain

    small = dict(steps=30, actor_hidden=(8,), critic_hidden=(8,), ensemble_size=2, n_actions=2, eval_every=0)
    flags = ["--steps", "30", "--actor-hidden", "8", "--critic-hidden", "8", "--ensemble-size", "2"]
    flags += ["--n-actions", "2", "--eval-every", "0", "--no-progress"]
    args = ["pretrain", "--algo", "calql", "--dataset", str(pendulum_data), "--preset", "cpu"]
    assert main([*args, *flags, "--out", str(tmp_path / "cli")]) == 0
    cfg = make_config("calql", "cpu", progress=False, **small)
    api = pretrain("calql", load_dataset(pendulum_data), cfg, tmp_path / "api", preset="cpu")
    a, b = load_checkpoint(tmp_path / "cli/checkpoints/final.safetensors"), load_checkpoint(api)
    # the pendulum's episodes are truncated: no Monte-Carlo returns, so both ran CQL and say so
    assert a.meta["info"]["ran"] == b.meta["info"]["ran"] == "cql" and a.config["calibrated"] is False
    assert a.algo == b.algo == "calql" and a.config == {**b.config, "out": a.config["out"]}
    for k, v in a.actor_critic.state_dict().items():
        torch.testing.assert_close(v, b.actor_critic.state_dict()[k], rtol=0, atol=0, msg=k)

import os

import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "egl")
# One thread: the suite's networks are small, and two threads thrash when the two cores are shared.
torch.set_num_threads(1)


@pytest.fixture
def small_spec():
    from smacrl.nets import ActorCriticSpec

    return ActorCriticSpec(
        obs_dim=3,
        act_dim=2,
        action_low=(-2.0, -1.0),
        action_high=(2.0, 1.0),
        actor_hidden=(16, 16),
        critic_hidden=(16, 16),
        ensemble_size=4,
    )


@pytest.fixture(scope="session")
def pendulum_data(tmp_path_factory):
    """A tiny pendulum-medium-replay file (600 steps of the generator's own protocol: SAC from scratch)."""
    from smacrl.cli import main

    out = tmp_path_factory.mktemp("data") / "pendulum.hdf5"
    assert main(["data", "make", "pendulum-medium-replay", "--out", str(out), "--steps", "600", "--no-progress"]) == 0
    return out

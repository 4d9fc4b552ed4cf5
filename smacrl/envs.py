"""Making environments by id, headless, with their box bounds.

``make_env`` accepts a gymnasium id (``Pendulum-v1``, ``Hopper-v5``, ...). The task registry of the
data stage builds on this to map dataset task names to envs.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from smacrl.errors import ConfigError

os.environ.setdefault("MUJOCO_GL", "egl")


def make_env(env_id: str, **kwargs) -> gym.Env:
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        raise ConfigError("--env", "env", f"cannot make '{env_id}': {e}") from e
    if not isinstance(env.action_space, gym.spaces.Box):
        raise ConfigError(
            "--env", "env", f"'{env_id}' has a {type(env.action_space).__name__} action space; smacrl needs Box"
        )
    if not isinstance(env.observation_space, gym.spaces.Box):
        raise ConfigError("--env", "env", f"'{env_id}' has a non-Box observation space; flatten it first")
    return env


def env_dims(env: gym.Env) -> tuple[int, np.ndarray, np.ndarray]:
    """(obs_dim, action_low, action_high) of a Box/Box env."""
    obs_dim = int(np.prod(env.observation_space.shape))
    return obs_dim, env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)


def env_factory(env_id: str, **kwargs) -> Callable[[], gym.Env]:
    return lambda: make_env(env_id, **kwargs)

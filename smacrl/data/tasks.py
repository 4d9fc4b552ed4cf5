"""The task registry: which env, which data, which reference returns, which preset family.

Two kinds of names live here:

* the paper's six D4RL tasks, with their version suffix (``hopper-medium-replay-v2``, ``door-binary-v0``,
  ...). Their data are the original D4RL files, which a user supplies by path;
* locally reproducible tasks, without a suffix (``pendulum-medium-replay``, ``pointmaze-umaze-binary``,
  ``hopper-medium-replay``, ``walker2d-medium-replay``), whose data ``smacrl data make`` generates.

:func:`make_env` accepts either a registered task name or a plain gymnasium id.

Envs from gymnasium-robotics (Adroit, FrankaKitchen, PointMaze) need the optional extra
``pip install 'smacrl[robotics]'``; the core imports without it. FrankaKitchen-v1 (gymnasium-robotics
1.4.x) does not build with mujoco 4.0: its joint-type check compares a numpy integer with a mujoco enum,
which mujoco 4 no longer treats as equal, and fails an assertion. It builds with ``mujoco>=3.1,<4``
(checked with mujoco 3.3.7); the ``kitchen`` extra carries that pin.

Binary variants (paper appendix N.1): the reward is ``success - 1`` (0 at a success step, -1 otherwise,
the convention of the ``*-binary-v0`` data of Nair et al.), and the episode terminates at the first
success step. PointMaze keeps gymnasium-robotics' own sparse reward (1 at the goal, 0 elsewhere) and
its ``continuing_task=False`` termination at the goal.

Dict observations are flattened with gymnasium's ``FlattenObservation``: keys in sorted order,
recursively (PointMaze: ``achieved_goal``, ``desired_goal``, ``observation``). The Minari loader uses
the same order.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from smacrl.errors import ConfigError

os.environ.setdefault("MUJOCO_GL", "egl")

Family = Literal["locomotion", "adroit", "kitchen", "cpu"]
ConditionKind = Literal["return", "success", "tasks_completed"]

# D4RL's normalization references (d4rl/infos.py REF_MIN_SCORE / REF_MAX_SCORE): random and expert returns.
D4RL_REF = {
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "kitchen": (0.0, 4.0),
}
KITCHEN_PARTIAL_TASKS = ("microwave", "kettle", "light switch", "slide cabinet")


@dataclass(frozen=True)
class Task:
    name: str
    env_id: str
    """The gymnasium id the env is built from."""
    data: str
    """Where the data come from: ``"d4rl"`` (user-supplied original file), ``"minari"`` or ``"local"``."""
    family: Family
    condition: ConditionKind
    """The RvS condition ``w``: trajectory return, trajectory success, or kitchen tasks completed."""
    mc_returns: bool
    """Whether Monte-Carlo returns exist (False for truncated infinite-horizon sets: CQL instead of Cal-QL)."""
    ref_min_return: float | None = None
    ref_max_return: float | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    wrapper: str | None = None
    """``"adroit_binary"``, ``"kitchen_d4rl"`` or None; the flattening of dict observations is always applied."""
    success_reward: float | None = None
    """For ``condition == "success"``: a trajectory succeeded if some reward reaches this value."""
    needs: str | None = None
    """The optional extra the env needs (``robotics`` / ``kitchen``), or None for core gymnasium."""
    generator: str | None = None
    """For local tasks: the generator name (see :mod:`smacrl.data.generators`)."""
    description: str = ""
    dims: tuple[int, int] = (0, 0)
    """(obs_dim, act_dim) of the env as :func:`make_env` builds it, known without building it."""
    action_bound: float = 1.0
    """The env's actions lie in [-action_bound, action_bound] per dimension."""

    @property
    def obs_dim(self) -> int:
        return self.dims[0]

    @property
    def act_dim(self) -> int:
        return self.dims[1]

    @property
    def action_low(self) -> np.ndarray:
        return np.full(self.act_dim, -self.action_bound)

    @property
    def action_high(self) -> np.ndarray:
        return np.full(self.act_dim, self.action_bound)

    @property
    def has_reference(self) -> bool:
        return self.ref_min_return is not None and self.ref_max_return is not None

    def normalize_return(self, ret: float | np.ndarray) -> float | np.ndarray | None:
        """D4RL-normalized score in [0, 1] units (multiply by 100 for D4RL's percent), or None."""
        if not self.has_reference:
            return None
        return (ret - self.ref_min_return) / (self.ref_max_return - self.ref_min_return)


_H, _W, _K = D4RL_REF["hopper"], D4RL_REF["walker2d"], D4RL_REF["kitchen"]

TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        # ---- the paper's six D4RL tasks (original files, supplied by path)
        Task("hopper-medium-replay-v2", "Hopper-v5", "d4rl", "locomotion", "return", False, *_H,
             dims=(11, 3),
             description="D4RL hopper medium-replay: SAC replay buffer up to the medium level"),
        Task("walker2d-medium-replay-v2", "Walker2d-v5", "d4rl", "locomotion", "return", False, *_W,
             dims=(17, 6),
             description="D4RL walker2d medium-replay: SAC replay buffer up to the medium level"),
        Task("door-binary-v0", "AdroitHandDoor-v1", "d4rl", "adroit", "success", True, wrapper="adroit_binary",
             success_reward=0.0, needs="robotics", dims=(39, 28),
             description="door-cloned-v0 with successes only, binary reward"),
        # pen: 100-step episodes, the limit of the pen-binary-v0 env Cal-QL evaluates on (mj_envs, as D4RL's
        # pen tasks); gymnasium-robotics registers AdroitHandPen-v1 with 200. Door and relocate: 200 in both.
        Task("pen-binary-v0", "AdroitHandPen-v1", "d4rl", "adroit", "success", True, wrapper="adroit_binary",
             env_kwargs={"max_episode_steps": 100},
             success_reward=0.0, needs="robotics", dims=(45, 24),
             description="pen-cloned-v0 with successes only, binary reward"),
        Task("relocate-binary-v0", "AdroitHandRelocate-v1", "d4rl", "adroit", "success", True,
             wrapper="adroit_binary", success_reward=0.0, needs="robotics",
             dims=(39, 30),
             description="relocate-cloned-v0 with successes only, binary reward"),
        Task("kitchen-partial-v0", "FrankaKitchen-v1", "d4rl", "kitchen", "tasks_completed", True, *_K,
             env_kwargs={"tasks_to_complete": list(KITCHEN_PARTIAL_TASKS)}, wrapper="kitchen_d4rl",
             needs="kitchen", dims=(60, 9),
             description="D4RL kitchen partial: microwave, kettle, light switch, slide cabinet"),
        # ---- locally generated (no version suffix)
        Task("pendulum-medium-replay", "Pendulum-v1", "local", "cpu", "return", False, generator="sac_medium_replay",
             dims=(3, 1), action_bound=2.0,
             description="SAC replay buffer on Pendulum-v1 up to the medium level (tiny; tests and demo)"),
        Task("pointmaze-umaze-binary", "PointMaze_UMaze-v3", "local", "cpu", "success", True,
             env_kwargs={"continuing_task": False, "reward_type": "sparse"}, success_reward=1.0, needs="robotics",
             generator="pointmaze_planner",
             dims=(8, 2),
             description="maze2d-style waypoint planner + noisy PD controller; sparse success, ends at the goal"),
        Task("hopper-medium-replay", "Hopper-v5", "local", "locomotion", "return", False, *_H,
             generator="sac_medium_replay", dims=(11, 3),
             description="D4RL's medium-replay protocol on Hopper-v5"),
        Task("walker2d-medium-replay", "Walker2d-v5", "local", "locomotion", "return", False, *_W,
             generator="sac_medium_replay", dims=(17, 6),
             description="D4RL's medium-replay protocol on Walker2d-v5"),
    ]
}  # fmt: skip


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError("--task", "task", f"unknown task '{name}'; known: {', '.join(sorted(TASKS))}") from None


def task_preset(task: str | None) -> str:
    """The preset a run on ``task`` uses by default: the task's family, else ``cpu`` (a plain gym id, a
    user's own dataset, or no task at all)."""
    return TASKS[task].family if task in TASKS else "cpu"


# ----------------------------------------------------------------------------- env construction
def _require_robotics(what: str, extra: str = "robotics") -> None:
    try:
        import gymnasium_robotics
    except ImportError as e:
        raise ConfigError("--env", "env", f"'{what}' needs gymnasium-robotics: pip install 'smacrl[{extra}]'") from e
    gym.register_envs(gymnasium_robotics)


def _check_kitchen_mujoco() -> None:
    import mujoco

    if int(mujoco.__version__.split(".")[0]) >= 4:
        raise ConfigError(
            "--env",
            "env",
            f"FrankaKitchen-v1 does not build with mujoco {mujoco.__version__}; "
            "install mujoco>=3.1,<4 (pip install 'smacrl[kitchen]')",
        )


class BinarySuccess(gym.Wrapper):
    """Reward ``success - 1`` and terminate at the first success step (appendix N.1 binary variant)."""

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        success = bool(info.get("success", False))
        return obs, float(success) - 1.0, terminated or success, truncated, info


class KitchenD4RLObservation(gym.ObservationWrapper):
    """FrankaKitchen-v1 observations in the 60-d layout of D4RL's kitchen-*-v0 files.

    D4RL: robot joint positions (9), object positions (21), goal (30; the goal values of the tasks at
    their indices into those 30, zero elsewhere). FrankaKitchen-v1's ``observation`` holds robot
    positions (9), robot velocities (9), object positions (21), object velocities (20): the velocities
    are dropped and the goal vector is built from the env's own task goals.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        from gymnasium_robotics.envs.franka_kitchen.kitchen_env import OBS_ELEMENT_GOALS, OBS_ELEMENT_INDICES

        goal = np.zeros(30)
        for name in env.unwrapped.goal:
            goal[OBS_ELEMENT_INDICES[name]] = OBS_ELEMENT_GOALS[name]
        self._goal = goal
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(60,), dtype=np.float64)

    def observation(self, obs):
        o = obs["observation"]
        return np.concatenate([o[:9], o[18:39], self._goal])


def _make_task_env(task: Task, **kwargs) -> gym.Env:
    if task.needs:
        _require_robotics(task.name, task.needs)
    if task.needs == "kitchen":
        _check_kitchen_mujoco()
    try:
        env = gym.make(task.env_id, **{**task.env_kwargs, **kwargs})
    except gym.error.Error as e:
        raise ConfigError("--env", "env", f"cannot make '{task.env_id}' for task '{task.name}': {e}") from e
    if task.wrapper == "adroit_binary":
        env = BinarySuccess(env)
    elif task.wrapper == "kitchen_d4rl":
        env = KitchenD4RLObservation(env)
    if isinstance(env.observation_space, gym.spaces.Dict):
        env = gym.wrappers.FlattenObservation(env)
    return env


def _make_gym_env(env_id: str, **kwargs) -> gym.Env:
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as first:
        # Robotics ids (AdroitHand*, PointMaze_*, FrankaKitchen) are registered by gymnasium_robotics.
        try:
            import gymnasium_robotics
        except ImportError:
            raise ConfigError("--env", "env", f"cannot make '{env_id}': {first}") from first
        gym.register_envs(gymnasium_robotics)
        try:
            env = gym.make(env_id, **kwargs)
        except gym.error.Error as e:
            raise ConfigError("--env", "env", f"cannot make '{env_id}': {e}") from e
    return env


def make_env(task_or_env_id: str | Task, **kwargs) -> gym.Env:
    """A headless env for a registered task name (or :class:`Task`) or a plain gymnasium id.

    Task envs carry their variant wrappers and flattened observations; gymnasium ids are made as is
    and must have Box observation and action spaces.
    """
    task = task_or_env_id if isinstance(task_or_env_id, Task) else TASKS.get(task_or_env_id)
    if task is not None:
        env = _make_task_env(task, **kwargs)
        name = task.name
    else:
        env = _make_gym_env(task_or_env_id, **kwargs)
        name = task_or_env_id
    if not isinstance(env.action_space, gym.spaces.Box):
        raise ConfigError(
            "--env", "env", f"'{name}' has a {type(env.action_space).__name__} action space; smacrl needs Box"
        )
    if not isinstance(env.observation_space, gym.spaces.Box):
        raise ConfigError("--env", "env", f"'{name}' has a non-Box observation space; flatten it first")
    return env


def env_dims(env: gym.Env) -> tuple[int, np.ndarray, np.ndarray]:
    """(obs_dim, action_low, action_high) of a Box/Box env."""
    obs_dim = int(np.prod(env.observation_space.shape))
    return obs_dim, env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)


def env_factory(task_or_env_id: str | Task, **kwargs) -> Callable[[], gym.Env]:
    return lambda: make_env(task_or_env_id, **kwargs)


def task_dims(task: Task | str) -> tuple[int, np.ndarray, np.ndarray]:
    """(obs_dim, action_low, action_high) of a task's env (the env is built once, then closed)."""
    env = make_env(task)
    try:
        return env_dims(env)
    finally:
        env.close()

"""The task registry and env construction."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from smacrl.data import TASKS, env_dims, get_task, make_env
from smacrl.data.tasks import BinarySuccess
from smacrl.errors import ConfigError

PAPER_TASKS = {
    "hopper-medium-replay-v2",
    "walker2d-medium-replay-v2",
    "door-binary-v0",
    "pen-binary-v0",
    "relocate-binary-v0",
    "kitchen-partial-v0",
}
LOCAL_TASKS = {"pendulum-medium-replay", "pointmaze-umaze-binary", "hopper-medium-replay", "walker2d-medium-replay"}


def test_registry_contents():
    assert PAPER_TASKS | LOCAL_TASKS == set(TASKS)
    for name, t in TASKS.items():
        assert (t.data == "local") == (name in LOCAL_TASKS)
        assert t.family in ("locomotion", "adroit", "kitchen", "cpu")
    # paper appendix N.3: the infinite-horizon locomotion sets have no Monte-Carlo returns
    assert [n for n, t in TASKS.items() if not t.mc_returns] == [
        "hopper-medium-replay-v2",
        "walker2d-medium-replay-v2",
        "pendulum-medium-replay",
        "hopper-medium-replay",
        "walker2d-medium-replay",
    ]
    assert get_task("kitchen-partial-v0").condition == "tasks_completed"
    assert get_task("door-binary-v0").condition == "success"
    h = get_task("hopper-medium-replay-v2")
    assert h.normalize_return(3234.3) == pytest.approx(1.0) and h.normalize_return(-20.272305) == pytest.approx(0.0)
    assert get_task("walker2d-medium-replay").ref_max_return == 4592.3
    assert get_task("pen-binary-v0").normalize_return(1.0) is None
    with pytest.raises(ConfigError, match="unknown task"):
        get_task("hopper-expert-v9")


@pytest.mark.parametrize(
    "name",
    ["pendulum-medium-replay", "hopper-medium-replay-v2", "walker2d-medium-replay", "pointmaze-umaze-binary",
     "door-binary-v0", "pen-binary-v0", "relocate-binary-v0"],
)  # fmt: skip
def test_static_dims_match_the_built_env(name):
    if TASKS[name].needs:
        pytest.importorskip("gymnasium_robotics")
    t = get_task(name)
    env = make_env(name)
    obs_dim, low, high = env_dims(env)
    obs, _ = env.reset(seed=0)
    env.close()
    assert (obs_dim, len(low)) == t.dims and obs.shape == (obs_dim,)
    np.testing.assert_array_equal(low, t.action_low)
    np.testing.assert_array_equal(high, t.action_high)


def test_adroit_binary_reward_and_termination():
    pytest.importorskip("gymnasium_robotics")
    env = make_env("door-binary-v0")
    assert isinstance(env, BinarySuccess)
    env.reset(seed=0)
    _, r, term, _, info = env.step(env.action_space.sample())
    assert r == -1.0 and not term and not info["success"]


class _Scripted(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (1,))
    action_space = gym.spaces.Box(-1, 1, (1,))

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), 123.0, False, False, {"success": self.t == 3}


def test_binary_success_wrapper():
    env = BinarySuccess(_Scripted())
    env.reset()
    out = [env.step(np.zeros(1))[1:3] for _ in range(3)]
    assert out == [(-1.0, False), (-1.0, False), (0.0, True)]


def test_make_env_accepts_gym_ids_and_robotics_ids():
    env = make_env("Pendulum-v1")
    assert env_dims(env)[0] == 3
    env.close()
    pytest.importorskip("gymnasium_robotics")
    env = make_env("AdroitHandPen-v1")
    assert env_dims(env)[0] == 45
    env.close()
    with pytest.raises(ConfigError, match="cannot make"):
        make_env("NoSuchEnv-v0")


def test_kitchen_needs_mujoco_3():
    pytest.importorskip("gymnasium_robotics")
    import mujoco

    if int(mujoco.__version__.split(".")[0]) >= 4:
        with pytest.raises(ConfigError, match=r"mujoco>=3.1,<4"):
            make_env("kitchen-partial-v0")
    else:  # pragma: no cover - only where the pin is installed
        env = make_env("kitchen-partial-v0")
        assert env.observation_space.shape == (60,)


def test_core_imports_without_gymnasium_robotics():
    code = (
        "import sys; sys.modules['gymnasium_robotics'] = None\n"
        "from smacrl.data import make_env, load_dataset\n"
        "from smacrl.errors import ConfigError\n"
        "make_env('Pendulum-v1').close()\n"
        "try:\n    make_env('door-binary-v0')\nexcept ConfigError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install 'smacrl[robotics]'" in out.stdout

"""Generating the locally reproducible datasets (``smacrl data make TASK --out FILE.hdf5``).

A generator is a function ``(task, seed, steps, bar) -> Rollouts``: it runs the task's env and returns
the step arrays plus file attributes (at least ``protocol`` and ``final_policy_return``). ``steps``
None means the generator's own default; ``bar`` is a progress bar to ``update`` by env steps (its total
may be changed). :func:`make_task_data` runs one, then writes the D4RL layout atomically with the
attributes ``task``, ``env_id``, ``protocol``, ``seed``, ``steps``, ``final_policy_return``,
``smacrl_version``, ``action_low``/``action_high`` and the generator's own.

Generators are found by name (``Task.generator``) in :data:`GENERATORS`. ``pointmaze_planner`` is
defined here. ``sac_medium_replay`` (pendulum, hopper, walker2d: D4RL's medium-replay protocol, the
whole replay buffer of online SAC up to the point where evaluation return first reaches the medium
level) needs the project's online SAC: the module :data:`SAC_GENERATOR_MODULE` is expected to call
``register_generator("sac_medium_replay", fn)`` on import; until it exists, asking for such a task
says so.
"""

from __future__ import annotations

import importlib
import io
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import h5py
import numpy as np

from smacrl.data.tasks import Task, get_task, make_env
from smacrl.errors import ConfigError
from smacrl.io import atomic_write_bytes

SAC_GENERATOR_MODULE = "smacrl.online.medium_replay"


class Bar(Protocol):
    total: int | float | None

    def update(self, n: int = 1) -> Any: ...

    def refresh(self) -> Any: ...


@dataclass
class Rollouts:
    """Env steps in D4RL layout (one row per step, actions in env units) plus file attributes."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    next_observations: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)


Generator = Callable[[Task, int, "int | None", Bar], Rollouts]
GENERATORS: dict[str, Generator] = {}


def register_generator(name: str, fn: Generator) -> None:
    GENERATORS[name] = fn


def get_generator(task: Task) -> Generator:
    if task.generator is None:
        raise ConfigError(
            "TASK", "task", f"'{task.name}' is an original D4RL dataset; supply its file by path, it is not generated"
        )
    if task.generator not in GENERATORS and task.generator == "sac_medium_replay":
        try:
            importlib.import_module(SAC_GENERATOR_MODULE)
        except ImportError:
            pass
    if task.generator not in GENERATORS:
        raise ConfigError(
            "TASK",
            "task",
            f"'{task.name}' is made by generator '{task.generator}', which needs the project's online SAC "
            f"({SAC_GENERATOR_MODULE}); it is not available yet",
        )
    return GENERATORS[task.generator]


# ----------------------------------------------------------------------------- writing
def write_d4rl_hdf5(path: str | os.PathLike, data: Rollouts, infos: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``data`` in the D4RL layout (``infos``: per-row arrays under ``infos/``); the file appears
    complete or not at all."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("observations", data=np.asarray(data.observations, dtype=np.float32), compression="gzip")
        f.create_dataset("actions", data=np.asarray(data.actions, dtype=np.float32), compression="gzip")
        f.create_dataset("rewards", data=np.asarray(data.rewards, dtype=np.float32))
        f.create_dataset("terminals", data=np.asarray(data.terminals, dtype=bool))
        f.create_dataset("timeouts", data=np.asarray(data.timeouts, dtype=bool))
        f.create_dataset(
            "next_observations", data=np.asarray(data.next_observations, dtype=np.float32), compression="gzip"
        )
        for k, v in data.attrs.items():
            f.attrs[k] = v
        for k, v in (infos or {}).items():
            f.create_dataset(f"infos/{k}", data=np.asarray(v))
    return atomic_write_bytes(path, buf.getvalue())


def make_task_data(
    task_name: str, out: str | os.PathLike, seed: int = 0, steps: int | None = None, bar: Bar | None = None
) -> tuple[Path, Rollouts, float]:
    """Generate ``task_name``'s data and write it to ``out``; returns (path, rollouts, wall seconds)."""
    from smacrl import __version__

    task = get_task(task_name)
    gen = get_generator(task)
    if bar is None:
        bar = _NullBar()
    t0 = time.perf_counter()
    data = gen(task, seed, steps, bar)
    wall = time.perf_counter() - t0
    n = len(data.rewards)
    data.attrs.update(
        task=task.name,
        env_id=task.env_id,
        seed=int(seed),
        steps=int(n),
        smacrl_version=__version__,
        generation_seconds=float(wall),
        action_low=task.action_low,
        action_high=task.action_high,
    )
    for required in ("protocol", "final_policy_return"):
        if required not in data.attrs:
            raise RuntimeError(f"generator '{task.generator}' did not set attribute '{required}'")
    return write_d4rl_hdf5(out, data), data, wall


class _NullBar:
    total = None

    def update(self, n: int = 1) -> None:
        pass

    def refresh(self) -> None:
        pass


# ----------------------------------------------------------------------------- point maze
POINTMAZE_DEFAULT_STEPS = 1_000_000
POINTMAZE_NOISE = 0.5
POINTMAZE_KP, POINTMAZE_KD = 10.0, 1.0
WAYPOINT_RADIUS = 0.2
POINTMAZE_GOAL_PROB = 0.25


def _plan(maze, pos: np.ndarray, goal: np.ndarray, free: list[tuple[int, int]], rng: np.random.Generator):
    """Waypoints (cell centres, then the target point) from ``pos`` to the goal, or, with probability
    ``1 - POINTMAZE_GOAL_PROB``, to the centre of a random free cell (a "wander" target, as maze2d's
    collector drove to random targets)."""
    if rng.random() < POINTMAZE_GOAL_PROB:
        target = goal
    else:
        cell = free[int(rng.integers(len(free)))]
        target = np.asarray(maze.cell_rowcol_to_xy(np.asarray(cell)), dtype=np.float64)
    cells = _grid_path(maze.maze_map, tuple(maze.cell_xy_to_rowcol(pos)), tuple(maze.cell_xy_to_rowcol(target)))
    waypoints = [np.asarray(maze.cell_rowcol_to_xy(np.asarray(c)), dtype=np.float64) for c in cells[1:-1]]
    waypoints.append(target)
    return waypoints


def _grid_path(maze_map: list[list[int]], start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
    """Shortest 4-connected path of free cells (value != 1) from start to goal, both included."""
    rows, cols = len(maze_map), len(maze_map[0])
    prev: dict[tuple[int, int], tuple[int, int] | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            break
        r, c = cell
        for nb in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if 0 <= nb[0] < rows and 0 <= nb[1] < cols and maze_map[nb[0]][nb[1]] != 1 and nb not in prev:
                prev[nb] = cell
                queue.append(nb)
    if goal not in prev:
        return [start]
    path = [goal]
    while prev[path[-1]] is not None:
        path.append(prev[path[-1]])
    return path[::-1]


def _pointmaze_planner(task: Task, seed: int, steps: int | None, bar: Bar) -> Rollouts:
    """maze2d-style data: BFS waypoints over the maze grid, followed by a noisy PD controller.

    Each episode resets the env (random start and goal cells). The planner heads for a target: the goal
    with probability ``POINTMAZE_GOAL_PROB``, else a random free cell, after reaching which it draws the
    next target the same way (so episodes mix direct successes, detours and failures). It plans cell
    centres by BFS over the maze grid, ending at the target point, and steers with ``a = kp (waypoint - pos) - kd vel``
    plus Gaussian noise (std ``POINTMAZE_NOISE``), clipped to the action bounds. Episodes end at the
    goal (terminal, reward 1) or at the env's time limit (timeout). The last episode is cut at ``steps``.
    """
    steps = int(steps or POINTMAZE_DEFAULT_STEPS)
    bar.total = steps
    bar.refresh()
    env = make_env(task)
    base = env.unwrapped
    maze = base.maze
    rng = np.random.default_rng(seed)
    obs_dim, act_dim = task.obs_dim, task.act_dim
    O = np.empty((steps, obs_dim), np.float32)  # noqa: N806
    N = np.empty((steps, obs_dim), np.float32)  # noqa: N806
    A = np.empty((steps, act_dim), np.float32)  # noqa: N806
    R = np.empty(steps, np.float32)  # noqa: N806
    T = np.zeros(steps, bool)  # noqa: N806
    TO = np.zeros(steps, bool)  # noqa: N806
    free = [(r, c) for r, row in enumerate(maze.maze_map) for c, v in enumerate(row) if v != 1]
    returns, successes = [], []
    i, episode = 0, 0
    chunk = 0
    while i < steps:
        obs, _ = env.reset(seed=int(rng.integers(2**31)) if episode == 0 else None)
        if episode == 0:
            env.action_space.seed(seed)
        episode += 1
        goal = np.asarray(base.goal, dtype=np.float64)
        waypoints = _plan(maze, base.point_env.data.qpos[:2], goal, free, rng)
        k, ep_ret, success = 0, 0.0, False
        while i < steps:
            qpos = base.point_env.data.qpos[:2]
            qvel = base.point_env.data.qvel[:2]
            while k < len(waypoints) and np.linalg.norm(waypoints[k] - qpos) < WAYPOINT_RADIUS:
                k += 1
            if k == len(waypoints):  # reached a wander target: pick the next target
                waypoints, k = _plan(maze, qpos, goal, free, rng), 0
            act = POINTMAZE_KP * (waypoints[k] - qpos) - POINTMAZE_KD * qvel
            act = act + rng.normal(0.0, POINTMAZE_NOISE, size=act_dim)
            act = np.clip(act, -1.0, 1.0)
            nxt, r, term, trunc, _ = env.step(act.astype(np.float32))
            O[i], A[i], R[i], N[i], T[i] = obs, act, r, nxt, term
            TO[i] = trunc and not term
            ep_ret += float(r)
            success |= bool(term)
            i += 1
            chunk += 1
            if chunk >= 1000:
                bar.update(chunk)
                chunk = 0
            obs = nxt
            if term or trunc:
                returns.append(ep_ret)
                successes.append(success)
                break
        else:
            TO[i - 1] = not T[i - 1]  # cut by the step budget: a truncation
    bar.update(chunk)
    env.close()
    mean_ret = float(np.mean(returns)) if returns else float("nan")
    attrs = {
        "protocol": (
            "pointmaze_planner: BFS waypoints over the maze grid + PD controller "
            f"(kp={POINTMAZE_KP}, kd={POINTMAZE_KD}) with Gaussian action noise std {POINTMAZE_NOISE}; "
            f"targets: the goal with probability {POINTMAZE_GOAL_PROB}, else a random free cell (then re-drawn); "
            "random start and goal per episode; sparse reward 1 at the goal; episode ends at the goal"
        ),
        "final_policy_return": mean_ret,
        "episodes_completed": len(returns),
        "success_rate": float(np.mean(successes)) if successes else float("nan"),
        "noise_std": POINTMAZE_NOISE,
    }
    return Rollouts(O, A, R, T, TO, N, attrs)


register_generator("pointmaze_planner", _pointmaze_planner)

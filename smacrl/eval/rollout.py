"""The one evaluation loop: batched policy calls over a pool of envs.

Each of ``episodes`` episodes runs in its own env (at most ``max_envs`` at a time), seeded
``seed + i``, so an evaluation is reproducible and independent of how episodes are batched. The
policy is called once per step for all envs together; only unfinished envs are stepped, and an
:class:`EnvPool` keeps the envs alive between evaluations (MuJoCo envs are stepped by two threads).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import gymnasium as gym
import numpy as np
import torch

from smacrl.nets.actor_critic import ActorCritic


@dataclasses.dataclass
class EvalResult:
    returns: np.ndarray
    lengths: np.ndarray
    successes: np.ndarray
    """Per-episode success (info 'success'/'is_success' ever true); all False where the env has none."""

    @property
    def return_mean(self) -> float:
        return float(self.returns.mean())

    @property
    def return_std(self) -> float:
        return float(self.returns.std())

    @classmethod
    def concat(cls, results: Sequence[EvalResult]) -> EvalResult:
        if not results:
            return cls(np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool))
        return cls(
            np.concatenate([r.returns for r in results]),
            np.concatenate([r.lengths for r in results]),
            np.concatenate([r.successes for r in results]),
        )

    def metrics(self, prefix: str = "eval") -> dict[str, float]:
        return {
            f"{prefix}/return_mean": self.return_mean,
            f"{prefix}/return_std": self.return_std,
            f"{prefix}/length_mean": float(self.lengths.mean()),
            f"{prefix}/success_rate": float(self.successes.mean()),
        }


@torch.no_grad()
def evaluate(
    ac: ActorCritic,
    env_id: str | None = None,
    episodes: int = 10,
    seed: int = 0,
    *,
    make_env: Callable[[], gym.Env] | None = None,
    deterministic: bool = True,
    max_envs: int = 16,
    on_episode: Callable[[int], None] | None = None,
) -> EvalResult:
    """Roll out ``ac`` for ``episodes`` episodes and return per-episode returns and lengths.

    ``make_env`` may be an :class:`EnvPool` to reuse its envs; an ``env_id`` uses the process-wide
    pool of that id (:func:`task_pool`)."""
    if make_env is None:
        if env_id is None:
            raise ValueError("evaluate needs env_id or make_env")
        make_env = task_pool(env_id)
    pool = make_env if isinstance(make_env, EnvPool) else EnvPool(make_env)
    device = next(ac.parameters()).device

    def policy(obs: torch.Tensor) -> torch.Tensor:
        return ac.to_env_action(ac.act(obs, deterministic=deterministic))

    try:
        results = [
            run_episodes(policy, pool, range(seed + start, seed + min(episodes, start + max_envs)), device, on_episode)
            for start in range(0, episodes, max_envs)
        ]
    finally:
        if pool is not make_env:
            pool.close()
    return EvalResult.concat(results)


class EnvPool:
    """Evaluation envs kept alive between evaluations, and stepped by a few threads.

    Building a MuJoCo env parses its XML (about 1.5 ms for Hopper), so periodic evaluations and
    landscape grids reuse the envs of a pool; every episode still starts from ``reset(seed=...)``, so
    reuse does not change results. MuJoCo releases the GIL inside ``mj_step``, so ``workers`` threads
    stepping disjoint groups of envs overlap the physics of one group with the Python of another.
    Results do not depend on ``workers``: each env is stepped by exactly one thread per step.

    ``workers=None`` picks 2 threads for MuJoCo envs (on a machine with 2+ cores) and 1 otherwise: a
    pure-Python env such as Pendulum holds the GIL throughout, and threads only add overhead there.
    While a pool steps with several threads, torch runs the policy on one intra-op thread: its idle
    OpenMP threads would otherwise spin on the cores the env threads need.
    """

    def __init__(self, make_env: Callable[[], gym.Env], workers: int | None = None):
        self.make_env = make_env
        self.envs: list[gym.Env] = []
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None

    @property
    def workers(self) -> int:
        if self._workers is not None:
            return max(1, self._workers)
        mujoco_env = bool(self.envs) and _is_mujoco(self.envs[0])
        return min(2, os.cpu_count() or 1) if mujoco_env else 1

    def take(self, n: int) -> list[gym.Env]:
        """The first ``n`` envs, building the missing ones."""
        while len(self.envs) < n:
            self.envs.append(self.make_env())
        return self.envs[:n]

    def step(self, envs: Sequence[gym.Env], actions: np.ndarray) -> list[tuple]:
        """``env.step(action)`` for each pair, in order, split over the worker threads."""
        n = len(envs)
        if self.workers == 1 or n < 2 * self.workers:
            return [env.step(a) for env, a in zip(envs, actions, strict=True)]
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="smacrl-env")
        bounds = np.linspace(0, n, self.workers + 1).astype(int)

        def part(k: int) -> list[tuple]:
            return [envs[i].step(actions[i]) for i in range(bounds[k], bounds[k + 1])]

        return [out for chunk in self._executor.map(part, range(self.workers)) for out in chunk]

    def close(self) -> None:
        for env in self.envs:
            env.close()
        self.envs.clear()
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_mujoco(env: gym.Env) -> bool:
    try:
        import mujoco
    except ImportError:
        return False
    return isinstance(getattr(env.unwrapped, "model", None), mujoco.MjModel)


_TASK_POOLS: dict[str, EnvPool] = {}


def task_pool(task: str) -> EnvPool:
    """The process-wide pool of evaluation envs of a task or gym id (built on first use)."""
    if task not in _TASK_POOLS:
        from smacrl.data.tasks import env_factory

        _TASK_POOLS[task] = EnvPool(env_factory(task))
    return _TASK_POOLS[task]


@torch.no_grad()
def run_episodes(
    policy: Callable[[torch.Tensor], torch.Tensor],
    make_env: Callable[[], gym.Env] | EnvPool,
    seeds: Iterable[int],
    device: torch.device | str = "cpu",
    on_episode: Callable[[int], None] | None = None,
) -> EvalResult:
    """One episode per seed, each in its own env; ``policy`` maps the raw observations of every env,
    shape ``(n, obs_dim)``, to env actions ``(n, act_dim)`` in one call per step.

    The policy may treat envs differently (e.g. one parameter set per group of envs, as the reward
    landscapes in :mod:`smacrl.eval.landscape` do); env ``i`` always runs seed ``seeds[i]``. Only
    unfinished envs are stepped; a finished env keeps its last observation in the policy's batch.
    ``make_env`` may be an :class:`EnvPool`, whose envs are reused and left open.
    """
    seeds = [int(s) for s in seeds]
    n = len(seeds)
    if n == 0:
        return EvalResult.concat([])
    pool = make_env if isinstance(make_env, EnvPool) else EnvPool(make_env)
    threads = torch.get_num_threads()
    try:
        envs = pool.take(n)
        first = [env.reset(seed=s)[0] for env, s in zip(envs, seeds, strict=True)]
        obs = np.stack([np.asarray(o, dtype=np.float32).reshape(-1) for o in first])
        dtype = envs[0].action_space.dtype
        ret = np.zeros(n)
        length = np.zeros(n, dtype=np.int64)
        success = np.zeros(n, dtype=bool)
        live = list(range(n))
        if pool.workers > 1 and torch.device(device).type == "cpu":
            torch.set_num_threads(1)
        while live:
            actions = policy(torch.as_tensor(obs, device=device)).cpu().numpy().astype(dtype, copy=False)
            outs = pool.step([envs[i] for i in live], actions[live])
            still = []
            for i, (o, r, term, trunc, info) in zip(live, outs, strict=True):
                obs[i] = np.asarray(o, dtype=np.float32).reshape(-1)
                ret[i] += float(r)
                length[i] += 1
                if info.get("success", False) or info.get("is_success", False):
                    success[i] = True
                if not (term or trunc):
                    still.append(i)
            if on_episode is not None and len(still) < len(live):
                on_episode(len(live) - len(still))
            live = still
    finally:
        torch.set_num_threads(threads)
        if pool is not make_env:
            pool.close()
    return EvalResult(ret, length, success)


def eval_metrics(ac: ActorCritic, task: str | None, episodes: int, seed: int) -> dict[str, float]:
    """Deterministic-policy evaluation on a task or gym id: ``eval/return_mean`` etc., plus
    ``eval/normalized_return`` (D4RL's reference scores) where the task registry has references."""
    if task is None or episodes <= 0:
        return {}
    from smacrl.data.tasks import TASKS

    result = evaluate(ac, make_env=task_pool(task), episodes=episodes, seed=seed)
    metrics = result.metrics("eval")
    if task in TASKS and TASKS[task].has_reference:
        metrics["eval/normalized_return"] = float(TASKS[task].normalize_return(result.return_mean))
    return metrics

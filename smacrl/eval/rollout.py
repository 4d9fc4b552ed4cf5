"""The one evaluation loop: batched policy calls over a gymnasium vector env.

Each of ``episodes`` episodes runs in its own sub-env (at most ``max_envs`` at a time), seeded
``seed + i``, so an evaluation is reproducible and independent of how episodes are batched. The
policy is called once per step for all sub-envs together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

import gymnasium as gym
import numpy as np
import torch

from smacrl.envs import env_factory
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
    """Roll out ``ac`` for ``episodes`` episodes and return per-episode returns and lengths."""
    if make_env is None:
        if env_id is None:
            raise ValueError("evaluate needs env_id or make_env")
        make_env = env_factory(env_id)
    device = next(ac.parameters()).device

    def policy(obs: torch.Tensor) -> torch.Tensor:
        return ac.to_env_action(ac.act(obs, deterministic=deterministic))

    results = [
        run_episodes(policy, make_env, range(seed + start, seed + min(episodes, start + max_envs)), device, on_episode)
        for start in range(0, episodes, max_envs)
    ]
    return EvalResult.concat(results)


@torch.no_grad()
def run_episodes(
    policy: Callable[[torch.Tensor], torch.Tensor],
    make_env: Callable[[], gym.Env],
    seeds: Iterable[int],
    device: torch.device | str = "cpu",
    on_episode: Callable[[int], None] | None = None,
) -> EvalResult:
    """One episode per seed, all in one vector env; ``policy`` maps the raw observations of every
    sub-env, shape ``(n, obs_dim)``, to env actions ``(n, act_dim)`` in one call per step.

    The policy may treat sub-envs differently (e.g. one parameter set per group of sub-envs, as the
    reward landscapes in :mod:`smacrl.eval.landscape` do); sub-env ``i`` always runs seed ``seeds[i]``.
    """
    seeds = [int(s) for s in seeds]
    n = len(seeds)
    venv = gym.vector.SyncVectorEnv([make_env for _ in range(n)])
    try:
        obs, _ = venv.reset(seed=seeds)
        ret = np.zeros(n)
        length = np.zeros(n, dtype=np.int64)
        success = np.zeros(n, dtype=bool)
        done = np.zeros(n, dtype=bool)
        while not done.all():
            x = torch.as_tensor(obs, dtype=torch.float32, device=device).reshape(n, -1)
            a = policy(x)
            obs, r, term, trunc, info = venv.step(a.cpu().numpy().astype(venv.single_action_space.dtype))
            live = ~done
            ret[live] += r[live]
            length[live] += 1
            for key in ("success", "is_success"):
                if key in info:
                    success[live] |= np.asarray(info[key], dtype=bool)[live]
            newly = live & (term | trunc)
            if on_episode is not None and newly.any():
                on_episode(int(newly.sum()))
            done |= newly
    finally:
        venv.close()
    return EvalResult(ret, length, success)


def eval_metrics(ac: ActorCritic, task: str | None, episodes: int, seed: int) -> dict[str, float]:
    """Deterministic-policy evaluation on a task or gym id: ``eval/return_mean`` etc., plus
    ``eval/normalized_return`` (D4RL's reference scores) where the task registry has references."""
    if task is None or episodes <= 0:
        return {}
    from smacrl.data.tasks import TASKS, env_factory

    result = evaluate(ac, make_env=env_factory(task), episodes=episodes, seed=seed)
    metrics = result.metrics("eval")
    if task in TASKS and TASKS[task].has_reference:
        metrics["eval/normalized_return"] = float(TASKS[task].normalize_return(result.return_mean))
    return metrics

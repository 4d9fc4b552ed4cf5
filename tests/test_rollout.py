"""The evaluation loop: batched, threaded, pooled rollouts give exactly what one env at a time gives."""

import numpy as np
import torch

from smacrl.configs import make_config
from smacrl.data.tasks import env_factory
from smacrl.eval.rollout import EnvPool, evaluate, run_episodes
from smacrl.nets.actor_critic import ActorCritic, ActorCriticSpec


def _actor(env_id: str) -> ActorCritic:
    env = env_factory(env_id)()
    obs_dim = env.observation_space.shape[0]
    low, high = env.action_space.low.tolist(), env.action_space.high.tolist()
    env.close()
    torch.manual_seed(3)
    return ActorCritic(ActorCriticSpec.from_config(make_config("smac", "cpu"), obs_dim, low, high))


@torch.no_grad()
def _one_by_one(ac: ActorCritic, env_id: str, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Plain reference: one env, one episode after another, one observation per policy call."""
    env = env_factory(env_id)()
    returns, lengths = [], []
    for s in seeds:
        obs, _ = env.reset(seed=s)
        total, steps, done = 0.0, 0, False
        while not done:
            a = ac.to_env_action(ac.act(torch.as_tensor(obs, dtype=torch.float32)[None], deterministic=True))[0]
            obs, r, term, trunc, _ = env.step(a.numpy().astype(env.action_space.dtype))
            total, steps, done = total + float(r), steps + 1, term or trunc
        returns.append(total)
        lengths.append(steps)
    env.close()
    return np.array(returns), np.array(lengths)


def test_threaded_pool_matches_one_env_at_a_time():
    ac = _actor("Hopper-v5")
    seeds = list(range(5, 11))
    want_ret, want_len = _one_by_one(ac, "Hopper-v5", seeds)
    assert len(set(want_len.tolist())) > 1  # episodes end at different steps: finished envs must stop
    for workers in (1, 2):
        with EnvPool(env_factory("Hopper-v5"), workers=workers) as pool:
            for _ in range(2):  # the second pass reuses the pool's envs
                res = evaluate(ac, make_env=pool, episodes=len(seeds), seed=5, max_envs=4)
                np.testing.assert_allclose(res.returns, want_ret, rtol=1e-5)
                np.testing.assert_array_equal(res.lengths, want_len)
            assert len(pool.envs) == 4
    assert torch.get_num_threads() == 1  # conftest's setting is restored after the threaded rollout


def test_default_workers_thread_mujoco_but_not_python_envs():
    with EnvPool(env_factory("Hopper-v5")) as hopper, EnvPool(env_factory("Pendulum-v1")) as pendulum:
        hopper.take(1)
        pendulum.take(1)
        assert pendulum.workers == 1
        assert hopper.workers == min(2, __import__("os").cpu_count())


def test_finished_envs_are_not_stepped_and_counts_reach_on_episode():
    class Counting:
        def __init__(self, env):
            self.env, self.n = env, 0

        def __getattr__(self, name):
            return getattr(self.env, name)

        def step(self, a):
            self.n += 1
            return self.env.step(a)

    made = []

    def make():
        made.append(Counting(env_factory("Hopper-v5")()))
        return made[-1]

    ac = _actor("Hopper-v5")
    done = []
    res = run_episodes(
        lambda x: ac.to_env_action(ac.act(x, deterministic=True)), make, [0, 1, 2], on_episode=done.append
    )
    steps = [e.n for e in made]
    assert steps == res.lengths.tolist()
    assert sum(done) == 3
    assert run_episodes(lambda x: x, make, []).returns.shape == (0,)

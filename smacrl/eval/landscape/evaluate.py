"""Evaluating parameter sets: vmapped batches (optionally over a process pool) and the result cache.

Cost and caching
    Every point is a deterministic evaluation over ``episodes`` episodes seeded ``seed + i`` (the
    same seeds for every point, as in :func:`smacrl.eval.rollout.evaluate`). Points are batched: a
    chunk of points runs in one vector env, ``episodes`` sub-envs per point, and the policies of all
    points are computed in a single call per step with ``torch.func.functional_call`` under
    ``vmap`` over the stacked per-point tensors. With ``workers > 1``, chunks are also spread over
    processes. Checkpoints taken as they are (line endpoints, plane anchors, snapshots) are instead
    evaluated one by one with :func:`smacrl.eval.rollout.evaluate`, so their values are exactly their
    own evaluation. Per-point returns go into ``OUT/cache.json``, keyed by the actor digests, the
    coordinates, the env, the episode count and the seed; drawing again evaluates nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from smacrl.errors import SmacrlError
from smacrl.eval.landscape.params import Policy
from smacrl.io import atomic_write_json
from smacrl.nets.actor_critic import ActorCritic, ActorCriticSpec

CACHE_NAME = "cache.json"
CACHE_VERSION = 1


# ----------------------------------------------------------------------------- batched evaluation
class _EnvPolicy(nn.Module):
    """Raw observations to env actions through :meth:`ActorCritic.act`, the path evaluate() uses."""

    def __init__(self, spec: ActorCriticSpec):
        super().__init__()
        self.ac = ActorCritic(spec)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.ac.to_env_action(self.ac.act(obs, deterministic=True))


def evaluate_states(
    spec: ActorCriticSpec,
    states: dict[str, torch.Tensor],
    task: str,
    episodes: int,
    seed: int,
    max_envs: int = 64,
    on_episode: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Returns, shape ``(P, episodes)``, of ``P`` parameter sets of one architecture.

    ``states`` maps each ``actor_state`` key to a stacked tensor with a leading axis of size ``P``.
    Points are run ``max(1, max_envs // episodes)`` at a time in one vector env (episode ``i`` of
    every point is seeded ``seed + i``); each step, one vmapped call computes every sub-env's action
    with its own point's tensors.
    """
    from torch.func import functional_call, vmap

    from smacrl.eval.rollout import run_episodes, task_pool

    module = _EnvPolicy(spec).eval()
    named = {f"ac.{k}": v for k, v in states.items()}
    n_points = next(iter(states.values())).shape[0]
    per_chunk = max(1, max_envs // max(1, episodes))
    make_env = task_pool(task)  # envs built once, reused by every chunk
    out = np.zeros((n_points, episodes))

    def one(params: dict[str, torch.Tensor], obs: torch.Tensor) -> torch.Tensor:
        return functional_call(module, params, (obs,))

    batched = vmap(one)
    for p0 in range(0, n_points, per_chunk):
        p1 = min(n_points, p0 + per_chunk)
        chunk = {k: v[p0:p1] for k, v in named.items()}
        k = p1 - p0

        def policy(obs: torch.Tensor, chunk=chunk, k=k) -> torch.Tensor:
            return batched(chunk, obs.reshape(k, episodes, -1)).reshape(k * episodes, -1)

        seeds = [seed + i for _ in range(k) for i in range(episodes)]
        out[p0:p1] = run_episodes(policy, make_env, seeds, on_episode=on_episode).returns.reshape(k, episodes)
    return out


def _worker_init() -> None:
    torch.set_num_threads(1)


def _worker_eval(spec_dict: dict[str, Any], states: dict[str, torch.Tensor], task: str, episodes: int, seed: int):
    return evaluate_states(ActorCriticSpec.from_dict(spec_dict), states, task, episodes, seed, max_envs=10**9)


class ResultCache:
    """Per-point episode returns in a JSON file, written atomically after every chunk."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path is not None else None
        self.entries: dict[str, list[float]] = {}
        if self.path is not None and self.path.exists():
            try:
                doc = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise SmacrlError(self.path, "json", f"unreadable cache ({e}); delete it to start over") from e
            if isinstance(doc, dict) and doc.get("version") == CACHE_VERSION:
                self.entries = dict(doc.get("entries") or {})

    def get(self, key: str) -> list[float] | None:
        return self.entries.get(key)

    def put(self, key: str, returns: Sequence[float]) -> None:
        self.entries[key] = [float(r) for r in returns]

    def save(self) -> None:
        if self.path is not None:
            atomic_write_json(self.path, {"version": CACHE_VERSION, "entries": self.entries})


def cache_key(kind: str, digests: Sequence[str], coords: Sequence[float], task: str, episodes: int, seed: int) -> str:
    return json.dumps([kind, list(digests), [f"{float(c):.12g}" for c in coords], task, int(episodes), int(seed)])


def point_key(policy: Policy, task: str, episodes: int, seed: int) -> str:
    """The key of a checkpoint evaluated as it is (shared by line endpoints, planes and t-SNE)."""
    return cache_key("point", [policy.digest], [], task, episodes, seed)


@dataclasses.dataclass
class EvalSettings:
    episodes: int = 5
    seed: int = 0
    max_envs: int = 64
    workers: int = 1
    progress: bool = True


def evaluate_cached(
    spec: ActorCriticSpec,
    keys: Sequence[str],
    build: Callable[[Sequence[int]], dict[str, torch.Tensor]],
    task: str,
    settings: EvalSettings,
    cache: ResultCache,
    desc: str,
) -> np.ndarray:
    """Returns ``(len(keys), episodes)`` for points named by ``keys``; only uncached points are
    built (``build(indices)`` gives their stacked states) and rolled out."""
    from smacrl.logger import progress

    episodes = settings.episodes
    if episodes < 1:
        raise SmacrlError("--episodes", "value", f"must be at least 1, got {episodes}")
    out = np.zeros((len(keys), episodes))
    todo = []
    for i, key in enumerate(keys):
        hit = cache.get(key)
        if hit is not None and len(hit) == episodes:
            out[i] = hit
        else:
            todo.append(i)
    if not todo:
        return out
    per_chunk = max(1, settings.max_envs // episodes)
    chunks = [todo[j : j + per_chunk] for j in range(0, len(todo), per_chunk)]

    def store(idx: Sequence[int], returns: np.ndarray) -> None:
        for i, r in zip(idx, returns):
            out[i] = r
            cache.put(keys[i], r)
        cache.save()

    with progress(len(todo) * episodes, desc, settings.progress) as bar:
        if settings.workers <= 1 or len(chunks) == 1:
            for idx in chunks:
                store(idx, evaluate_states(spec, build(idx), task, episodes, settings.seed, 10**9, bar.update))
        else:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(settings.workers, mp_context=ctx, initializer=_worker_init) as pool:
                futures = {
                    pool.submit(_worker_eval, spec.to_dict(), build(idx), task, episodes, settings.seed): idx
                    for idx in chunks
                }
                for fut in as_completed(futures):
                    idx = futures[fut]
                    store(idx, fut.result())
                    bar.update(len(idx) * episodes)
    return out


def evaluate_checkpoints(
    policies: Sequence[Policy], task: str, settings: EvalSettings, cache: ResultCache, desc: str
) -> np.ndarray:
    """Returns ``(len(policies), episodes)`` of checkpoints taken as they are (line endpoints, plane
    anchors, trajectory snapshots), each through :func:`smacrl.eval.rollout.evaluate` itself: their
    values are exactly the checkpoints' own evaluation. (The vmapped batches agree with it up to
    float32 rounding, which a long episode can grow to ~1e-6 of the return.)"""
    from smacrl.data.tasks import env_factory
    from smacrl.eval.rollout import evaluate
    from smacrl.logger import progress

    episodes = settings.episodes
    if episodes < 1:
        raise SmacrlError("--episodes", "value", f"must be at least 1, got {episodes}")
    keys = [point_key(p, task, episodes, settings.seed) for p in policies]
    todo = [i for i, k in enumerate(keys) if len(cache.get(k) or ()) != episodes]
    make_env = env_factory(task)
    with progress(len(todo) * episodes, desc, settings.progress and bool(todo)) as bar:
        for i in todo:
            if len(cache.get(keys[i]) or ()) == episodes:  # the same actor met earlier in the list
                bar.update(episodes)
                continue
            ac = ActorCritic(policies[i].spec)
            ac.load_state_dict(policies[i].state, strict=False)
            result = evaluate(ac, make_env=make_env, episodes=episodes, seed=settings.seed, on_episode=bar.update)
            cache.put(keys[i], result.returns)
            cache.save()
    return np.array([cache.get(k) for k in keys], dtype=np.float64).reshape(len(keys), episodes)

"""Reward landscapes over actor parameters: lines, planes and t-SNE of checkpoint trajectories.

These reproduce the pictures of the paper's section 5 (figures 3, 4 and 5, appendix M).

What is varied
    A rollout depends only on the observation normalizer and the actor (``ActorCritic.actor_state``).
    The landscapes move the actor's tensors (``actor.*``), flattened in state-dict order into one
    vector ``theta``. The normalizer is not a learned parameter: checkpoints placed on one line or
    plane must carry identical normalizer stats (a mismatch is an error, never averaged), and every
    point of the line/plane uses those stats. Arithmetic on ``theta`` is done in float64 and the
    result cast to the network's float32, so ``t = 0`` reproduces the endpoint bit for bit.

Line (figure 4)
    ``theta(t) = (1 - t) theta_A + t theta_B`` for ``t`` in ``linspace(0, 1, points)``; 0 is the
    pre-trained checkpoint, 1 the fine-tuned one. Several pairs with the same algorithms are seeds:
    the plot shows their mean and standard error.

Plane (figure 3, appendix M)
    ``u = theta_1 - theta`` and ``v = theta_2 - theta``; ``w = v - (u.v / u.u) u`` is ``v`` with its
    component along ``u`` removed (the appendix's printed formula has a typo). With the orthonormal
    basis ``u_hat = u / |u|`` and ``v_hat = w / |w|``, the point of in-plane coordinates ``(x, y)``
    is ``theta + x u_hat + y v_hat``. Coordinates are Euclidean distances in parameter space, so the
    plot does not distort angles or lengths. The checkpoints sit at ``theta: (0, 0)``,
    ``theta_1: (|u|, 0)`` and ``theta_2: (u.v / |u|, |w|)``. The appendix's ``(l, t)`` with
    ``theta + l u + t w`` are ``l = x / |u|`` and ``t = y / |w|``. The grid spans the
    three points' bounding box, stretched by ``range``: ``x = x_min + r (x_max - x_min)`` for
    ``r`` in ``linspace(lo, hi, grid)``, and the same for ``y``. When ``theta_2`` projects inside
    the segment ``[theta, theta_1]``, the default ``(-0.2, 1.2)`` is the appendix's
    ``[-0.2, 1.2]^2`` in ``(l, t)``.

t-SNE (figure 5)
    The ``trajectory/`` snapshots of runs (an online run brings in the offline run it started
    from), flattened as above, are embedded in 2-D by scikit-learn's TSNE. Each run is drawn as a
    line with arrows in training order, and the points are coloured by their evaluated return.

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
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from smacrl.checkpoint import load_checkpoint, tensor_digest
from smacrl.errors import CheckpointError, SmacrlError
from smacrl.io import atomic_write_json
from smacrl.nets.actor_critic import ActorCritic, ActorCriticSpec

ACTOR_PREFIX = "actor."
NORM_PREFIX = "obs_norm."
CACHE_NAME = "cache.json"
CACHE_VERSION = 1


# ----------------------------------------------------------------------------- policies as vectors
@dataclasses.dataclass
class Policy:
    """The rollout-relevant part of a checkpoint: spec, normalizer and actor tensors."""

    path: Path
    meta: dict[str, Any]
    spec: ActorCriticSpec
    state: dict[str, torch.Tensor]
    """``ActorCritic.actor_state()``: ``obs_norm.*`` and ``actor.*`` tensors (CPU)."""
    digest: str
    """SHA-256 of ``state``: the same actor in a full checkpoint and in a snapshot shares it."""

    @property
    def algo(self) -> str:
        return str(self.meta.get("algo"))

    @property
    def step(self) -> int:
        return int(self.meta.get("step", 0))

    @property
    def env_id(self) -> str | None:
        return self.meta.get("env_id")

    @property
    def label(self) -> str:
        """``algo`` for offline checkpoints, ``offline -> online`` for fine-tuned ones."""
        algo = self.algo.removesuffix("_online")  # td3bc_online is TD3+BC's online config
        offline = (self.meta.get("info") or {}).get("offline_algo")
        return f"{offline} → {algo}" if offline and offline != self.algo else algo

    def flat(self) -> torch.Tensor:
        return flatten_actor(self.state)

    def norm_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state.items() if k.startswith(NORM_PREFIX)}


def load_policy(path: str | os.PathLike) -> Policy:
    """A checkpoint file or run directory (its latest checkpoint), as a :class:`Policy`."""
    from smacrl.run import resolve_checkpoint

    ckpt = load_checkpoint(resolve_checkpoint(path))
    state = {k: v.detach().cpu().clone() for k, v in ckpt.actor_critic.actor_state().items()}
    return Policy(ckpt.path, ckpt.meta, ckpt.actor_critic.spec, state, tensor_digest(state))


def actor_keys(state: dict[str, torch.Tensor]) -> list[str]:
    return [k for k in state if k.startswith(ACTOR_PREFIX)]


def flatten_actor(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """The ``actor.*`` tensors, in state-dict order, as one float64 vector."""
    return torch.cat([state[k].reshape(-1).to(torch.float64) for k in actor_keys(state)])


def unflatten_actor(theta: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`flatten_actor`: ``actor.*`` tensors shaped and typed as in ``like``."""
    out, i = {}, 0
    for k in actor_keys(like):
        n = like[k].numel()
        out[k] = theta[i : i + n].reshape(like[k].shape).to(like[k].dtype)
        i += n
    if i != theta.numel():
        raise ValueError(f"parameter vector has {theta.numel()} entries, the actor {i}")
    return out


def check_compatible(ref: Policy, other: Policy) -> None:
    """Two checkpoints can share a line or plane: same network spec and identical normalizers."""
    if ref.spec != other.spec:
        diff = sorted(k for k, v in ref.spec.to_dict().items() if other.spec.to_dict().get(k) != v)
        raise CheckpointError(other.path, "nets", f"network spec differs from {ref.path} ({', '.join(diff)})")
    for k, v in ref.norm_state().items():
        if not torch.equal(v, other.state[k]):
            raise CheckpointError(
                other.path,
                k,
                f"observation normalizer differs from {ref.path}; landscapes need checkpoints trained "
                "with the same normalizer (it is never averaged)",
            )


def _env_of(policies: Sequence[Policy], env: str | None) -> str:
    if env:
        return env
    first = policies[0]
    for p in policies:
        if not p.env_id:
            raise CheckpointError(p.path, "env_id", "checkpoint names no env; pass --env")
        if p.env_id != first.env_id:
            raise CheckpointError(p.path, "env_id", f"is '{p.env_id}' but {first.path} has '{first.env_id}'")
    return str(first.env_id)


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


def _stack(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([s[k] for s in states]) for k in states[0]}


def _mean_se(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    n = values.shape[axis]
    mean = values.mean(axis)
    se = values.std(axis, ddof=1) / math.sqrt(n) if n > 1 else np.zeros_like(mean)
    return mean, se


def _out_dir(out: str | os.PathLike) -> Path:
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise SmacrlError(path, "--out", "exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------------------- line (figure 4)
def line_thetas(a: Policy, b: Policy, ts: Sequence[float]) -> list[dict[str, torch.Tensor]]:
    """The actor states at ``theta(t) = (1 - t) theta_A + t theta_B`` (normalizer of A)."""
    ta, tb = a.flat(), b.flat()
    norm = a.norm_state()
    return [{**norm, **unflatten_actor((1.0 - t) * ta + t * tb, a.state)} for t in ts]


def _pair_label(a: Policy, b: Policy) -> str:
    return b.label if b.label.startswith(f"{a.label} → ") else f"{a.label} → {b.label}"


def line_landscape(
    pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    out: str | os.PathLike,
    *,
    points: int = 11,
    env: str | None = None,
    settings: EvalSettings | None = None,
    plot: bool = True,
) -> dict[str, Any]:
    """Evaluate the segment between each (pre-trained, fine-tuned) pair; write ``line.json`` and
    ``line.png`` (mean ± s.e. over the pairs of each ``A-algo -> B-algo`` group)."""
    settings = settings or EvalSettings()
    if not pairs:
        raise SmacrlError("--from/--to", "value", "need at least one pair")
    if points < 2:
        raise SmacrlError("--points", "value", f"must be at least 2, got {points}")
    out = _out_dir(out)
    loaded = []
    for pa, pb in pairs:
        a, b = load_policy(pa), load_policy(pb)
        check_compatible(a, b)
        loaded.append((a, b))
    task = _env_of([p for pair in loaded for p in pair], env)
    cache = ResultCache(out / CACHE_NAME)
    ts = np.linspace(0.0, 1.0, points)
    pair_rows = []
    ends = list({p.digest: p for pair in loaded for p in pair}.values())
    evaluate_checkpoints(ends, task, settings, cache, "line endpoints")
    for n, (a, b) in enumerate(loaded):

        def key(t: float, a=a, b=b) -> str:
            if t == 0.0:
                return point_key(a, task, settings.episodes, settings.seed)
            if t == 1.0:
                return point_key(b, task, settings.episodes, settings.seed)
            return cache_key("line", [a.digest, b.digest], [t], task, settings.episodes, settings.seed)

        def build(idx: Sequence[int], a=a, b=b) -> dict[str, torch.Tensor]:
            return _stack(line_thetas(a, b, [float(ts[i]) for i in idx]))

        returns = evaluate_cached(
            a.spec, [key(float(t)) for t in ts], build, task, settings, cache, f"line {n + 1}/{len(loaded)}"
        )
        pair_rows.append(
            {
                "from": str(a.path),
                "to": str(b.path),
                "label": _pair_label(a, b),
                "distance": float((b.flat() - a.flat()).norm()),
                "returns": returns.tolist(),
                "return_mean": returns.mean(axis=1).tolist(),
            }
        )
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in pair_rows:
        groups.setdefault(row["label"], []).append(row)
    summary = {"t": ts.tolist(), "env": task, "episodes": settings.episodes, "seed": settings.seed, "groups": {}}
    for label, rows in groups.items():
        mean, se = _mean_se(np.array([r["return_mean"] for r in rows]))
        summary["groups"][label] = {"mean": mean.tolist(), "se": se.tolist(), "pairs": len(rows)}
    summary["pairs"] = pair_rows
    atomic_write_json(out / "line.json", summary)
    if plot:
        plot_line(summary, out / "line.png")
    return summary


def plot_line(summary: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array(summary["t"])
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label, g in summary["groups"].items():
        mean, se = np.array(g["mean"]), np.array(g["se"])
        (line,) = ax.plot(t, mean, marker="o", ms=3, label=f"{label} (n={g['pairs']})")
        if g["pairs"] > 1:
            ax.fill_between(t, mean - se, mean + se, color=line.get_color(), alpha=0.25)
    ax.set_xlabel("t   (0 = pre-trained, 1 = fine-tuned)")
    ax.set_ylabel("return")
    ax.set_title(f"{summary['env']}: reward along the line")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- plane (figure 3, appendix M)
@dataclasses.dataclass
class PlaneBasis:
    """An orthonormal basis of the plane through ``base``, ``theta_1`` and ``theta_2`` (float64)."""

    base: torch.Tensor
    u_hat: torch.Tensor
    v_hat: torch.Tensor
    u_norm: float
    """``|u|``, ``u = theta_1 - theta``."""
    w_norm: float
    """``|w|``, ``w = v - (u.v / u.u) u``: the part of ``v = theta_2 - theta`` orthogonal to ``u``."""
    uv: float
    """``u.v``."""

    @classmethod
    def from_points(cls, base: torch.Tensor, theta1: torch.Tensor, theta2: torch.Tensor) -> PlaneBasis:
        base, theta1, theta2 = (x.to(torch.float64) for x in (base, theta1, theta2))
        u, v = theta1 - base, theta2 - base
        uu = float(u @ u)
        if uu == 0.0:
            raise ValueError("theta_1 equals theta: u = 0 spans no direction")
        uv = float(u @ v)
        w = v - (uv / uu) * u
        w_norm = float(w.norm())
        if w_norm <= 1e-9 * max(math.sqrt(uu), float(v.norm())):
            raise ValueError("theta_2 lies on the line through theta and theta_1: the three points span no plane")
        u_norm = math.sqrt(uu)
        return cls(base, u / u_norm, w / w_norm, u_norm, w_norm, uv)

    def anchors(self) -> dict[str, tuple[float, float]]:
        """Exact in-plane coordinates of the three checkpoints."""
        return {"base": (0.0, 0.0), "theta1": (self.u_norm, 0.0), "theta2": (self.uv / self.u_norm, self.w_norm)}

    def point(self, x: float, y: float) -> torch.Tensor:
        return self.base + x * self.u_hat + y * self.v_hat

    def coords(self, theta: torch.Tensor) -> tuple[float, float]:
        """Orthogonal projection of ``theta`` onto the plane, in in-plane coordinates."""
        d = theta.to(torch.float64) - self.base
        return float(d @ self.u_hat), float(d @ self.v_hat)

    def grid(self, n: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        """Grid axes over the anchors' bounding box stretched to ``[lo, hi]`` of its sides."""
        xs_a, ys_a = zip(*self.anchors().values())
        r = np.linspace(lo, hi, n)
        x0, x1, y0, y1 = min(xs_a), max(xs_a), min(ys_a), max(ys_a)
        return x0 + r * (x1 - x0), y0 + r * (y1 - y0)


def plane_landscape(
    base: str | os.PathLike,
    a: str | os.PathLike,
    b: str | os.PathLike,
    out: str | os.PathLike,
    *,
    grid: int = 15,
    lo: float = -0.2,
    hi: float = 1.2,
    env: str | None = None,
    settings: EvalSettings | None = None,
    labels: Sequence[str] | None = None,
    plot: bool = True,
) -> dict[str, Any]:
    """Evaluate a ``grid`` x ``grid`` plane through three checkpoints; write ``plane.json`` and
    ``plane.png``. The checkpoints themselves are evaluated too, at their exact coordinates."""
    settings = settings or EvalSettings()
    if grid < 2:
        raise SmacrlError("--grid", "value", f"must be at least 2, got {grid}")
    if not hi > lo:
        raise SmacrlError("--range", "value", f"needs LO < HI, got {lo} {hi}")
    out = _out_dir(out)
    p0, p1, p2 = load_policy(base), load_policy(a), load_policy(b)
    check_compatible(p0, p1)
    check_compatible(p0, p2)
    task = _env_of([p0, p1, p2], env)
    try:
        basis = PlaneBasis.from_points(p0.flat(), p1.flat(), p2.flat())
    except ValueError as e:
        raise CheckpointError(p2.path if "theta_2" in str(e) else p1.path, "parameters", str(e)) from e
    xs, ys = basis.grid(grid, lo, hi)
    coords = [(float(x), float(y)) for y in ys for x in xs]
    digests = [p0.digest, p1.digest, p2.digest]
    keys = [cache_key("plane", digests, c, task, settings.episodes, settings.seed) for c in coords]
    norm = p0.norm_state()

    def build(idx: Sequence[int]) -> dict[str, torch.Tensor]:
        return _stack([{**norm, **unflatten_actor(basis.point(*coords[i]), p0.state)} for i in idx])

    cache = ResultCache(out / CACHE_NAME)
    anchors = [p0, p1, p2]
    anchor_returns = evaluate_checkpoints(anchors, task, settings, cache, "plane checkpoints")
    returns = evaluate_cached(p0.spec, keys, build, task, settings, cache, f"plane {grid}x{grid}")
    names = list(labels) if labels else [p0.label, p1.label, p2.label]
    summary = {
        "env": task,
        "episodes": settings.episodes,
        "seed": settings.seed,
        "parametrization": "theta + x * u_hat + y * v_hat; u_hat = u/|u|, v_hat = w/|w|, w = v - (u.v/u.u) u",
        "x": xs.tolist(),
        "y": ys.tolist(),
        "return_mean": returns.mean(axis=1).reshape(grid, grid).tolist(),  # rows: y, columns: x
        "u_norm": basis.u_norm,
        "w_norm": basis.w_norm,
        "uv": basis.uv,
        "checkpoints": [
            {"name": names[i], "path": str(p.path), "coords": list(c), "return_mean": float(anchor_returns[i].mean())}
            for i, (p, c) in enumerate(zip(anchors, basis.anchors().values()))
        ],
    }
    atomic_write_json(out / "plane.json", summary)
    if plot:
        plot_plane(summary, out / "plane.png")
    return summary


def plot_plane(summary: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y, z = np.array(summary["x"]), np.array(summary["y"]), np.array(summary["return_mean"])
    fig, ax = plt.subplots(figsize=(6, 4.8))
    levels = 15 if np.ptp(z) > 0 else None
    filled = ax.contourf(x, y, z, levels=levels, cmap="viridis")
    if levels is not None:
        ax.contour(x, y, z, levels=filled.levels, colors="k", linewidths=0.3, alpha=0.5)
    fig.colorbar(filled, ax=ax, label="return")
    ck = summary["checkpoints"]
    base = ck[0]["coords"]
    for c, marker, colour in zip(ck, ("o", "*", "s"), ("white", "red", "orange")):
        cx, cy = c["coords"]
        if c is not ck[0]:
            ax.plot([base[0], cx], [base[1], cy], ls="--", lw=1, color=colour)
        ax.scatter([cx], [cy], marker=marker, s=140, c=colour, edgecolors="k", zorder=5)
        ax.annotate(
            f"{c['name']}\n{c['return_mean']:.0f}",
            (cx, cy),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=8,
            color="white",
            bbox=dict(boxstyle="round,pad=0.2", fc="black", alpha=0.5, lw=0),
        )
    ax.set_xlabel("x: distance along u = θ1 − θ")
    ax.set_ylabel("y: distance along w = v − (u·v/u·u) u")
    ax.set_title(f"{summary['env']}: reward on the plane ({summary['episodes']} episodes/point)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- t-SNE (figure 5)
@dataclasses.dataclass
class Trajectory:
    run_dir: Path
    label: str
    policies: list[Policy]


def collect_trajectories(run_dirs: Sequence[str | os.PathLike], include_parents: bool = True) -> list[Trajectory]:
    """The snapshot trajectories of ``run_dirs``; an online run's offline run (the parent of the
    checkpoint it started from) is added unless given or ``include_parents`` is off."""
    from smacrl.run import RunDir

    dirs: list[Path] = []

    def add(d: Path) -> None:
        if d.resolve() not in [x.resolve() for x in dirs]:
            dirs.append(d)

    for d in map(Path, run_dirs):
        if not d.is_dir():
            raise SmacrlError(d, "run directory", "does not exist or is not a directory")
        add(d)
    if include_parents:
        for d in list(dirs):
            cfg_path = d / "config.json"
            if not cfg_path.exists():
                continue
            src = RunDir(d).load_config().get("checkpoint")
            if src:
                # The recorded path is relative to wherever the run was started: try the run's ancestors too.
                for root in (Path("."), *d.resolve().parents):
                    parent = (root / src).parent.parent
                    if RunDir(parent).snapshots():
                        add(parent)
                        break
    trajectories = []
    for d in sorted(dirs, key=lambda p: _is_online(p)):
        snaps = RunDir(d).snapshots()
        if not snaps:
            raise SmacrlError(d, "trajectory", "holds no snapshots (the run had trajectory_points = 0?)")
        policies = sorted((load_policy(p) for p in snaps), key=lambda p: p.step)
        last = policies[-1]
        phase = "offline" if not _is_online(d) else "online"
        label = f"{last.label} ({phase})" if phase == "offline" else last.label
        trajectories.append(Trajectory(d, label, policies))
    return trajectories


def _is_online(d: Path) -> bool:
    try:
        return bool(json.loads((d / "config.json").read_text()).get("checkpoint"))
    except (OSError, json.JSONDecodeError):
        return False


def tsne_landscape(
    run_dirs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    env: str | None = None,
    settings: EvalSettings | None = None,
    perplexity: float = 30.0,
    include_parents: bool = True,
    plot: bool = True,
) -> dict[str, Any]:
    """Embed every snapshot of the runs' trajectories with t-SNE, evaluate each snapshot, and
    write ``tsne.json`` and ``tsne.png``."""
    try:
        from sklearn.manifold import TSNE
    except ImportError as e:
        raise ImportError("smacrl landscape tsne needs scikit-learn: pip install 'smacrl[landscape]'") from e

    settings = settings or EvalSettings(episodes=3)
    out = _out_dir(out)
    trajectories = collect_trajectories(run_dirs, include_parents)
    policies = [p for tr in trajectories for p in tr.policies]
    task = _env_of(policies, env)
    ref = policies[0]
    for p in policies[1:]:
        if p.flat().numel() != ref.flat().numel():
            raise CheckpointError(p.path, "nets", f"actor has a different size from {ref.path}'s: cannot share a map")
    if len(policies) < 4:
        raise SmacrlError(run_dirs[0], "trajectory", f"t-SNE needs at least 4 snapshots, found {len(policies)}")

    cache = ResultCache(out / CACHE_NAME)
    returns = evaluate_checkpoints(policies, task, settings, cache, "t-SNE snapshots").mean(axis=1)

    x = torch.stack([p.flat() for p in policies]).numpy().astype(np.float32)
    perp = float(min(perplexity, max(1.0, (len(policies) - 1) / 3)))
    emb = TSNE(n_components=2, perplexity=perp, init="pca", random_state=settings.seed).fit_transform(x)
    rows, i = [], 0
    for tr in trajectories:
        for p in tr.policies:
            rows.append(
                {"run": str(tr.run_dir), "label": tr.label, "step": p.step, "path": str(p.path),
                 "return_mean": float(returns[i]), "x": float(emb[i, 0]), "y": float(emb[i, 1])}
            )  # fmt: skip
            i += 1
    summary = {"env": task, "episodes": settings.episodes, "seed": settings.seed, "perplexity": perp, "points": rows}
    atomic_write_json(out / "tsne.json", summary)
    if plot:
        plot_tsne(summary, out / "tsne.png")
    return summary


def plot_tsne(summary: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["points"]
    x = np.array([r["x"] for r in rows])
    y = np.array([r["y"] for r in rows])
    z = np.array([r["return_mean"] for r in rows])
    fig, ax = plt.subplots(figsize=(6.5, 5))
    vmin, vmax = float(z.min()), float(z.max()) if z.max() > z.min() else float(z.min()) + 1.0
    colours = plt.get_cmap("tab10")
    runs = list(dict.fromkeys(r["run"] for r in rows))
    for n, run in enumerate(runs):
        idx = [i for i, r in enumerate(rows) if r["run"] == run]
        colour = colours(n % 10)
        ax.plot(x[idx], y[idx], color=colour, lw=1.2, label=rows[idx[0]]["label"])
        for i, j in zip(idx[:-1], idx[1:]):
            if (x[j], y[j]) != (x[i], y[i]):
                ax.annotate(
                    "",
                    xy=(x[j], y[j]),
                    xytext=(x[i], y[i]),
                    arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.2, shrinkA=3, shrinkB=3),
                )
        ax.scatter([x[idx[0]]], [y[idx[0]]], marker="D", s=50, facecolors="none", edgecolors=colour, zorder=4)
    points = ax.scatter(x, y, c=z, cmap="viridis", vmin=vmin, vmax=vmax, s=28, edgecolors="k", lw=0.4, zorder=5)
    fig.colorbar(points, ax=ax, label="return")
    ax.margins(0.06)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{summary['env']}: t-SNE of actor checkpoints (◇ = start)", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

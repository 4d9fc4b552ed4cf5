"""The in-memory offline dataset every algorithm trains from, and its derived fields.

:func:`build_dataset` takes validated raw arrays (actions in env units) and derives:

* episode segmentation: an episode ends at a terminal, a timeout, or the last row;
* ``traj_returns``: the undiscounted return of the episode each transition belongs to;
* ``w``: the RvS condition, min-max normalized over the dataset's episodes to [0, 1] (all ones when
  every episode has the same value): the episode return (``return``), whether the episode reached the
  task's success reward (``success``), or the number of kitchen tasks completed, which is the episode
  return of the kitchen reward (``tasks_completed``);
* ``mc_returns``: discounted returns-to-go within each episode, for Cal-QL. None where the task says
  Monte-Carlo returns do not exist (truncated infinite-horizon sets, paper appendix N.3), or, for
  data of no registered task, where some episode was cut by a timeout;
* ``obs_mean`` / ``obs_std`` (std floored at 1e-3) for observation normalization;
* actions normalized to [-1, 1] with the action bounds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

ARRAY_FIELDS = (
    "observations",
    "actions",
    "rewards",
    "terminals",
    "timeouts",
    "next_observations",
    "episode_ids",
    "traj_returns",
    "w",
    "mc_returns",
)
OBS_STD_FLOOR = 1e-3


@dataclass(eq=False)
class Dataset:
    observations: np.ndarray  # [N, obs_dim] float32
    actions: np.ndarray  # [N, act_dim] float32, normalized to [-1, 1]
    rewards: np.ndarray  # [N] float32
    terminals: np.ndarray  # [N] bool
    timeouts: np.ndarray  # [N] bool
    next_observations: np.ndarray  # [N, obs_dim] float32
    episode_ids: np.ndarray  # [N] int64, 0..n_episodes-1
    traj_returns: np.ndarray  # [N] float32
    w: np.ndarray  # [N] float32 in [0, 1]
    mc_returns: np.ndarray | None  # [N] float32 or None
    action_low: np.ndarray  # [act_dim] float64, env units
    action_high: np.ndarray
    obs_mean: np.ndarray  # [obs_dim] float32
    obs_std: np.ndarray  # [obs_dim] float32
    info: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    task: str | None = None

    def __len__(self) -> int:
        return int(self.observations.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def n_episodes(self) -> int:
        return int(self.episode_ids[-1]) + 1 if len(self) else 0

    @cached_property
    def sha256(self) -> str:
        """Content hash of the arrays (and action bounds): equal data give equal hashes, whatever the file."""
        h = hashlib.sha256()
        for name in ARRAY_FIELDS + ("action_low", "action_high"):
            a = getattr(self, name)
            if a is None:
                h.update(f"{name}:none;".encode())
                continue
            a = np.ascontiguousarray(a)
            h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of each episode, in episode order."""
        starts = np.flatnonzero(np.r_[True, self.episode_ids[1:] != self.episode_ids[:-1]])
        return self.traj_returns[starts].astype(np.float64)

    def episode_lengths(self) -> np.ndarray:
        return np.bincount(self.episode_ids)

    def unnormalize_actions(self, actions: np.ndarray) -> np.ndarray:
        """Map [-1, 1] actions back to env units."""
        return self.action_low + (np.asarray(actions, dtype=np.float64) + 1.0) * 0.5 * (
            self.action_high - self.action_low
        )


def normalize_actions(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Env-unit actions to [-1, 1] (clipped, so tolerated overshoot lands on the bound)."""
    scaled = 2.0 * (np.asarray(actions, dtype=np.float64) - low) / (high - low) - 1.0
    return np.clip(scaled, -1.0, 1.0).astype(np.float32)


def episode_ids_from_ends(ends: np.ndarray) -> np.ndarray:
    """Episode index of each row given a bool array marking each episode's last row."""
    ids = np.zeros(len(ends), dtype=np.int64)
    if len(ends) > 1:
        ids[1:] = np.cumsum(ends[:-1])
    return ids


def discounted_returns_to_go(rewards: np.ndarray, episode_ids: np.ndarray, gamma: float) -> np.ndarray:
    """sum_k gamma^k r_{t+k} within each episode (one backward pass, float64 accumulation)."""
    out = np.empty(len(rewards), dtype=np.float64)
    r = rewards.astype(np.float64).tolist()
    ids = episode_ids.tolist()
    g = 0.0
    nxt = None
    for i in range(len(r) - 1, -1, -1):
        if ids[i] != nxt:
            g = 0.0
            nxt = ids[i]
        g = r[i] + gamma * g
        out[i] = g
    return out.astype(np.float32)


def _minmax(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if hi - lo <= 1e-12:
        return np.ones_like(values, dtype=np.float64)
    return (values - lo) / (hi - lo)


def build_dataset(
    *,
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    terminals: np.ndarray,
    timeouts: np.ndarray,
    next_observations: np.ndarray,
    episode_ids: np.ndarray,
    action_low: np.ndarray,
    action_high: np.ndarray,
    keep: np.ndarray | None = None,
    condition: str = "return",
    success_reward: float | None = None,
    mc_available: bool | None = None,
    gamma: float = 0.99,
    info: dict[str, Any] | None = None,
    source: str = "",
    task: str | None = None,
) -> Dataset:
    """Assemble a :class:`Dataset` from validated arrays, one row per env step; ``actions`` in env units.

    ``keep`` (bool per row, default all) selects the rows that become transitions. Rows left out (a
    timed-out episode's last step with no next observation) still count in their episode's return,
    condition and returns-to-go.
    """
    info = dict(info or {})
    rewards64 = np.asarray(rewards, dtype=np.float64)
    episode_ids = np.asarray(episode_ids, dtype=np.int64)
    n_ep = int(episode_ids.max()) + 1
    ep_return = np.bincount(episode_ids, weights=rewards64, minlength=n_ep)
    if condition == "success":
        if success_reward is None:
            raise ValueError("condition 'success' needs success_reward")
        ep_max = np.full(n_ep, -np.inf)
        np.maximum.at(ep_max, episode_ids, rewards64)
        ep_cond = (ep_max >= success_reward - 1e-6).astype(np.float64)
        info["episode_success_rate"] = float(ep_cond.mean())
    else:
        ep_cond = ep_return
    ep_w = _minmax(ep_cond)

    if mc_available is None:
        mc_available = not bool(np.asarray(timeouts).any())
        if not mc_available:
            info["mc_returns_note"] = "unavailable: some episodes end in a timeout and no task says otherwise"
    mc = discounted_returns_to_go(rewards64, episode_ids, gamma) if mc_available else None
    if mc is not None:
        info["mc_gamma"] = gamma

    sel = slice(None) if keep is None else np.asarray(keep, dtype=bool)
    ids = episode_ids[sel]
    obs = np.asarray(observations, dtype=np.float32)[sel]
    mean = obs.mean(axis=0, dtype=np.float64)
    std = np.maximum(obs.std(axis=0, dtype=np.float64), OBS_STD_FLOOR)
    info.setdefault("condition", condition)
    return Dataset(
        observations=obs,
        actions=normalize_actions(np.asarray(actions)[sel], action_low, action_high),
        rewards=rewards64[sel].astype(np.float32),
        terminals=np.asarray(terminals, dtype=bool)[sel],
        timeouts=np.asarray(timeouts, dtype=bool)[sel],
        next_observations=np.asarray(next_observations, dtype=np.float32)[sel],
        episode_ids=_renumber(ids),
        traj_returns=ep_return[ids].astype(np.float32),
        w=ep_w[ids].astype(np.float32),
        mc_returns=None if mc is None else mc[sel],
        action_low=np.asarray(action_low, dtype=np.float64),
        action_high=np.asarray(action_high, dtype=np.float64),
        obs_mean=mean.astype(np.float32),
        obs_std=std.astype(np.float32),
        info=info,
        source=source,
        task=task,
    )


def _renumber(ids: np.ndarray) -> np.ndarray:
    """Consecutive ids 0..k-1 (an episode all of whose rows were kept out leaves no gap)."""
    _, inverse = np.unique(ids, return_inverse=True)
    return inverse.astype(np.int64)

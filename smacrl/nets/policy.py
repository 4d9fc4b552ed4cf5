"""The Gaussian actor shared by every algorithm, and the observation normalizer.

Actions live in the normalized box ``[-1, 1]^act_dim`` everywhere inside smacrl; the env wrapper and
the dataset loader map to and from the env's own bounds (see :class:`smacrl.nets.ActorCritic`).

The actor is ``u ~ N(mean(s), std(s))`` followed, when ``tanh_squash`` is on, by ``a = tanh(u)``:

- ``std_transform``: ``exp`` (``std = exp(clamp(x, log_std_min, log_std_max))``) or ``softplus``
  (``std = softplus(x) + min_std``);
- ``state_dependent_std``: the std is a head of the network; otherwise one learned vector shared by
  all states (what IQL's tables call the "uniform" parameterization);
- ``log_prob`` includes the tanh change-of-variables term ``-sum log(1 - tanh(u)^2)``, computed in
  the stable form ``2 * (log 2 - u - softplus(-2u))``;
- ``deterministic(s)`` is ``tanh(mean)`` (``clamp(mean, -1, 1)`` without squashing), the action that
  TD3-style algorithms and evaluation use.

Without ``tanh_squash`` (IQL's actor in table 8) samples are unbounded Gaussians; algorithms clip
them to ``[-1, 1]`` before they reach an env or a critic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from smacrl.nets.mlp import MLP

StdTransform = Literal["exp", "softplus"]
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_LOG2 = math.log(2.0)


class ObsNormalizer(nn.Module):
    """``(obs - mean) / std`` with stats held as buffers, so they travel in the checkpoint."""

    def __init__(self, obs_dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(obs_dim))
        self.register_buffer("std", torch.ones(obs_dim))

    @torch.no_grad()
    def set_stats(self, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-3) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype))
        self.std.copy_(torch.as_tensor(std, dtype=self.std.dtype).clamp_min(eps))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.mean) / self.std


def tanh_log_det(u: torch.Tensor) -> torch.Tensor:
    """``sum log(1 - tanh(u)^2)`` over the last axis, without cancellation for large ``|u|``."""
    return (2.0 * (_LOG2 - u - F.softplus(-2.0 * u))).sum(-1)


class GaussianActor(nn.Module):
    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int],
        activation: str = "relu",
        std_transform: StdTransform = "exp",
        tanh_squash: bool = True,
        state_dependent_std: bool = True,
        log_std_min: float = -5.0,
        log_std_max: float = 2.0,
        min_std: float = 1e-3,
    ):
        super().__init__()
        if std_transform not in ("exp", "softplus"):
            raise ValueError(f"std_transform must be 'exp' or 'softplus', got '{std_transform}'")
        self.act_dim = act_dim
        self.std_transform = std_transform
        self.tanh_squash = tanh_squash
        self.state_dependent_std = state_dependent_std
        self.log_std_min, self.log_std_max, self.min_std = log_std_min, log_std_max, min_std
        self.trunk = MLP(obs_dim, hidden, None, activation)
        width = self.trunk.out_dim
        self.head = nn.Linear(width, 2 * act_dim if state_dependent_std else act_dim)
        if not state_dependent_std:
            self.std_param = nn.Parameter(torch.zeros(act_dim))

    def _std(self, x: torch.Tensor) -> torch.Tensor:
        if self.std_transform == "exp":
            return x.clamp(self.log_std_min, self.log_std_max).exp()
        return F.softplus(x) + self.min_std

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of the pre-squash Gaussian."""
        h = self.head(self.trunk(obs))
        if self.state_dependent_std:
            mean, pre_std = h.chunk(2, dim=-1)
        else:
            mean, pre_std = h, self.std_param.expand_as(h)
        return mean, self._std(pre_std)

    @staticmethod
    def _normal_log_prob(u: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        z = (u - mean) / std
        return (-0.5 * z.square() - std.log() - _HALF_LOG_2PI).sum(-1)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterized sample and its log-probability (with the tanh correction)."""
        mean, std = self(obs)
        if generator is None:
            eps = torch.randn_like(mean)
        else:
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        u = mean + std * eps
        logp = self._normal_log_prob(u, mean, std)
        if self.tanh_squash:
            return torch.tanh(u), logp - tanh_log_det(u)
        return u, logp

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        """Log-density of given actions (e.g. dataset actions for AWR); tanh actions are clipped
        into ``(-1 + eps, 1 - eps)`` before ``atanh``."""
        mean, std = self(obs)
        if self.tanh_squash:
            u = torch.atanh(action.clamp(-1.0 + eps, 1.0 - eps))
            return self._normal_log_prob(u, mean, std) - tanh_log_det(u)
        return self._normal_log_prob(action, mean, std)

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        mean = self.head(self.trunk(obs))[..., : self.act_dim]
        return torch.tanh(mean) if self.tanh_squash else mean.clamp(-1.0, 1.0)

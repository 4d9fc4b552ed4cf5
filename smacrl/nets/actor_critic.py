"""The common actor-critic: the contract between every offline and every online algorithm.

An :class:`ActorCritic` bundles an observation normalizer, a :class:`GaussianActor`, a
:class:`CriticEnsemble` and its target copy. Its shapes are fully described by an
:class:`ActorCriticSpec`, which the checkpoint stores as JSON so any algorithm can rebuild the
network before loading weights (see :mod:`smacrl.checkpoint`).

Actions inside the module are in ``[-1, 1]``; :meth:`ActorCritic.to_env_action` and
:meth:`ActorCritic.from_env_action` map to and from the env's box ``[action_low, action_high]``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from smacrl.nets.ensemble import CriticEnsemble, polyak_update
from smacrl.nets.policy import GaussianActor, ObsNormalizer


@dataclasses.dataclass(frozen=True)
class ActorCriticSpec:
    obs_dim: int
    act_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    actor_hidden: tuple[int, ...] = (256, 256)
    actor_activation: str = "relu"
    std_transform: str = "exp"
    tanh_squash: bool = True
    state_dependent_std: bool = True
    critic_hidden: tuple[int, ...] = (256, 256)
    critic_activation: str = "relu"
    ensemble_size: int = 2
    critic_layer_norm: bool = False

    def __post_init__(self) -> None:
        for name in ("action_low", "action_high", "actor_hidden", "critic_hidden"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(self.action_low) != self.act_dim or len(self.action_high) != self.act_dim:
            raise ValueError("action bounds must have act_dim entries")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActorCriticSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise KeyError(f"unknown spec fields {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def from_config(
        cls, cfg: Any, obs_dim: int, action_low: Sequence[float], action_high: Sequence[float]
    ) -> ActorCriticSpec:
        """Build a spec from any algorithm config that carries the network fields."""
        return cls(
            obs_dim=int(obs_dim),
            act_dim=len(action_low),
            action_low=tuple(float(x) for x in action_low),
            action_high=tuple(float(x) for x in action_high),
            actor_hidden=tuple(cfg.actor_hidden),
            actor_activation=cfg.actor_activation,
            std_transform=cfg.std_transform,
            tanh_squash=cfg.tanh_squash,
            state_dependent_std=cfg.state_dependent_std,
            critic_hidden=tuple(cfg.critic_hidden),
            critic_activation=cfg.critic_activation,
            ensemble_size=cfg.ensemble_size,
            critic_layer_norm=cfg.critic_layer_norm,
        )


class ActorCritic(nn.Module):
    def __init__(self, spec: ActorCriticSpec):
        super().__init__()
        self.spec = spec
        self.obs_norm = ObsNormalizer(spec.obs_dim)
        self.actor = GaussianActor(
            spec.obs_dim,
            spec.act_dim,
            spec.actor_hidden,
            spec.actor_activation,
            spec.std_transform,  # type: ignore[arg-type]
            spec.tanh_squash,
            spec.state_dependent_std,
        )
        self.critic = CriticEnsemble(
            spec.obs_dim,
            spec.act_dim,
            spec.critic_hidden,
            spec.ensemble_size,
            spec.critic_activation,
            spec.critic_layer_norm,
        )
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        low = torch.tensor(spec.action_low, dtype=torch.float32)
        high = torch.tensor(spec.action_high, dtype=torch.float32)
        # Derived from the spec, so not persisted: the spec is the single source of the bounds.
        self.register_buffer("_act_scale", (high - low) / 2, persistent=False)
        self.register_buffer("_act_center", (high + low) / 2, persistent=False)

    # -- the policy, on raw env observations -------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Actions in ``[-1, 1]`` for raw (unnormalized) observations."""
        x = self.obs_norm(obs)
        if deterministic:
            return self.actor.deterministic(x)
        a, _ = self.actor.sample(x)
        return a.clamp(-1.0, 1.0)

    def to_env_action(self, a: torch.Tensor) -> torch.Tensor:
        return self._act_center + self._act_scale * a

    def from_env_action(self, a: torch.Tensor) -> torch.Tensor:
        return (a - self._act_center) / self._act_scale

    def update_target(self, tau: float) -> None:
        polyak_update(self.critic_target, self.critic, tau)

    def actor_state(self) -> dict[str, torch.Tensor]:
        """The tensors a rollout depends on: the normalizer and the actor (for landscapes)."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(("actor.", "obs_norm."))}

"""TD3 fine-tuning (Fujimoto et al. 2018), continuing from any offline checkpoint.

- Deterministic actor ``mu(s) = tanh(mean(s))`` (the Gaussian actor's deterministic mode).
- Critic: TD toward ``r + gamma (1 - d) reduce_e Q_target(s', clip(mu'(s') + clip(eps, -c, c), -1, 1))``
  (target-policy smoothing, ``eps ~ N(0, policy_noise^2)``) with a target actor ``mu'`` kept here as
  a Polyak copy of the loaded actor.
- Delayed actor updates: every ``cfg.policy_delay`` critic updates, the actor maximizes
  ``min_e Q_e(s, mu(s))`` (the ensemble mean when ``target_reduction`` is ``mean``/``redq``) and both
  targets move by ``cfg.tau``.
- Exploration: ``clip(mu(s) + N(0, exploration_noise^2), -1, 1)``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from smacrl.configs import TD3Config
from smacrl.configs.presets import online_presets
from smacrl.losses import actor_q_reduction, ensemble_td_loss, td3_target
from smacrl.nets.actor_critic import ActorCritic
from smacrl.nets.counter import StepCounter
from smacrl.nets.ensemble import polyak_update, reduce_ensemble
from smacrl.optim import build_optimizer
from smacrl.registry import Algorithm


class TD3:
    name = "td3"

    def __init__(self, ac: ActorCritic, cfg: TD3Config):
        self.ac, self.cfg = ac, cfg
        self.actor_target = copy.deepcopy(ac.actor).requires_grad_(False)
        self.critic_opt = build_optimizer(ac.critic, cfg.critic_lr, cfg.optimizer)
        self.actor_opt = build_optimizer(ac.actor, cfg.actor_lr, cfg.optimizer)
        self._actor_params = [p for p in ac.actor.parameters() if p.requires_grad]
        self.updates = StepCounter()
        self._last_actor_loss = torch.zeros((), device=next(ac.parameters()).device)

    @torch.no_grad()
    def explore(self, obs_n: torch.Tensor) -> torch.Tensor:
        a = self.ac.actor.deterministic(obs_n)
        return (a + self.cfg.exploration_noise * torch.randn_like(a)).clamp(-1.0, 1.0)

    def extras(self) -> dict[str, nn.Module]:
        return {"actor_target": self.actor_target, "updates": self.updates}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**self.critic_opt.named("critic"), **self.actor_opt.named("actor")}

    def q_pi(self, obs_n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Q(s, mu(s)) [B], mu(s))`` with the ensemble reduced as every actor in smacrl does
        (:func:`smacrl.losses.actor_q_reduction`: the minimum under ``min``, else the mean)."""
        pi = self.ac.actor.deterministic(obs_n)
        q = reduce_ensemble(self.ac.critic(obs_n, pi), actor_q_reduction(self.cfg.target_reduction))
        return q, pi

    def actor_loss(self, obs_n: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``-mean Q(s, mu(s))``."""
        return -self.q_pi(obs_n)[0].mean()

    def update(self, batch: dict[str, torch.Tensor], diagnostics: bool = False) -> dict[str, torch.Tensor]:
        ac, cfg = self.ac, self.cfg
        obs_n, next_n = ac.obs_norm(batch["obs"]), ac.obs_norm(batch["next_obs"])
        target = td3_target(
            ac,
            next_n,
            batch["rewards"],
            batch["terminals"],
            cfg.gamma,
            cfg.policy_noise,
            cfg.noise_clip,
            cfg.target_reduction,
            actor=self.actor_target,
        )
        q = ac.critic(obs_n, batch["actions"])
        critic_loss = ensemble_td_loss(q, target)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()

        if self.updates.increment() % cfg.policy_delay == 0:
            actor_loss = self.actor_loss(obs_n, batch)
            self.actor_opt.zero_grad()
            # gradients for the actor only: the critic's weight gradients would be discarded by its
            # next zero_grad, and skipping them saves one of the two backward matmuls per critic layer
            actor_loss.backward(inputs=self._actor_params)
            self.actor_opt.step()
            polyak_update(self.actor_target, ac.actor, cfg.tau)
            ac.update_target(cfg.tau)
            self._last_actor_loss = actor_loss.detach()
        return {"loss_td": critic_loss.detach(), "loss_actor": self._last_actor_loss, "q_mean": q.detach().mean()}


ALGORITHMS = (
    Algorithm(
        "td3", "online", TD3Config, online_presets(), lambda ac, cfg, **_: TD3(ac, cfg), summary="TD3 fine-tuning"
    ),
)

"""TD3+BC (Fujimoto & Gu 2021), the baseline of the paper's appendix L.3.

TD3 with a behaviour-cloning term in the actor loss and nothing else changed:

- Critic: every member regresses on TD3's target with target-policy smoothing::

      y = r + gamma (1 - d) min_e Qbar_e(s', clip(mu(s') + clip(eps, -c, c), -1, 1)),   eps ~ N(0, sigma^2)

  (:func:`smacrl.losses.td3_target`; ``sigma = cfg.policy_noise``, ``c = cfg.noise_clip``, the
  reduction ``cfg.target_reduction`` over the ensemble of 10 of table 10).
- Actor, every ``cfg.policy_delay`` critic steps, on the deterministic policy ``mu(s) = tanh(mean(s))``::

      L(theta) = -mean_b Q(s_b, mu(s_b)) / sg(mean_b |Q(s_b, mu(s_b))|) + beta * mean_b ||mu(s_b) - a_b||^2 / |A|

  with ``beta = cfg.bc_weight`` (table 10: 2 locomotion, 15 adroit, 5 kitchen) and ``Q`` the minimum
  over the ensemble (the mean under ``target_reduction`` ``mean``/``redq``), see
  :func:`smacrl.losses.td3bc_actor_loss`. The target critic takes its Polyak step on the same delayed
  schedule, as in TD3.

The Gaussian actor's std head gets no gradient here (only ``mu`` is used); an online SAC continues
from its initial std.

Differences from the paper's appendix L.3 and from Fujimoto & Gu:

- L.3 writes the actor loss as ``-E[-Q/sg(|Q|) + beta ||a' - a||^2]``; the outer minus is a typo (it
  would push the policy away from the data). We minimize ``-Q/sg(mean|Q|) + beta * BC``.
- Fujimoto & Gu weigh the Q term by ``alpha / mean|Q|`` (``alpha = 2.5``) and the BC term by 1; the
  table's form is the same loss divided by ``alpha``, with ``beta = 1 / alpha``. The BC error is
  averaged over action dimensions as in their code.
- Fujimoto & Gu keep a target *actor* for the smoothed next action; the common actor-critic holds a
  target critic only, so the smoothing is applied to the current actor (as L.3's ``a' ~ pi_theta``).
- Their ensemble has two critics and the actor maximizes the first; ours has ``ensemble_size``
  members and the actor maximizes the same reduction SAC uses.
"""

from __future__ import annotations

import torch
from torch import nn

from smacrl.configs import TD3BCConfig
from smacrl.configs.presets import cpu, laptop
from smacrl.errors import ConfigError
from smacrl.losses import actor_q_reduction, ensemble_td_loss, td3_target, td3bc_actor_loss
from smacrl.nets.actor_critic import ActorCritic
from smacrl.nets.counter import StepCounter
from smacrl.nets.ensemble import reduce_ensemble
from smacrl.optim import build_optimizer
from smacrl.registry import Algorithm


class TD3BC:
    """One TD3+BC learner. ``update(batch)`` does a critic step and, every ``policy_delay`` steps, an
    actor step and a target update; it returns metric tensors."""

    name = "td3bc"

    def __init__(self, ac: ActorCritic, cfg: TD3BCConfig):
        if cfg.policy_delay < 1:
            raise ConfigError("config", "policy_delay", f"must be at least 1, got {cfg.policy_delay}")
        self.ac, self.cfg = ac, cfg
        self.critic_opt = build_optimizer(ac.critic, cfg.critic_lr, cfg.optimizer)
        self.actor_opt = build_optimizer(ac.actor, cfg.actor_lr, cfg.optimizer)
        self._actor_params = [p for p in ac.actor.parameters() if p.requires_grad]
        self.updates = StepCounter()
        """Critic steps taken by this learner (a Python int: the delay never reads the device)."""

    # -- checkpoint contents -------------------------------------------------------------------
    def extras(self) -> dict[str, nn.Module]:
        return {"updates": self.updates}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**self.critic_opt.named("critic"), **self.actor_opt.named("actor")}

    # -- one step ------------------------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor], diagnostics: bool = False) -> dict[str, torch.Tensor]:
        ac, cfg = self.ac, self.cfg
        obs_n, next_n = ac.obs_norm(batch["obs"]), ac.obs_norm(batch["next_obs"])
        self.updates.increment()

        # critic: TD3 target with target-policy smoothing
        target = td3_target(
            ac,
            next_n,
            batch["rewards"],
            batch["terminals"],
            cfg.gamma,
            cfg.policy_noise,
            cfg.noise_clip,
            cfg.target_reduction,
        )
        q_data = ac.critic(obs_n, batch["actions"])
        q_loss = ensemble_td_loss(q_data, target)
        self.critic_opt.zero_grad()
        q_loss.backward()
        self.critic_opt.step()
        metrics = {"loss_td": q_loss.detach(), "q_mean": q_data.detach().mean()}

        # delayed actor: -Q / sg(mean|Q|) + beta * BC, then the target critic
        if self.updates.value % cfg.policy_delay == 0:
            pi = ac.actor.deterministic(obs_n)
            q_pi = reduce_ensemble(ac.critic(obs_n, pi), actor_q_reduction(cfg.target_reduction))
            actor_loss, bc = td3bc_actor_loss(q_pi, pi, batch["actions"], cfg.bc_weight)
            self.actor_opt.zero_grad()
            # gradients for the actor only: the critic's weight gradients would be discarded by its
            # next zero_grad, and skipping them saves one of the two backward matmuls per critic layer
            actor_loss.backward(inputs=self._actor_params)
            self.actor_opt.step()
            ac.update_target(cfg.tau)
            metrics.update(loss_actor=actor_loss.detach(), bc_mse=bc.detach(), q_pi_mean=q_pi.detach().mean())
        return metrics


ALGORITHMS = (
    Algorithm(
        "td3bc",
        "offline",
        TD3BCConfig,
        {
            "locomotion": {},
            "adroit": dict(critic_hidden=(512, 512), actor_hidden=(512, 512), bc_weight=15.0, steps=200_000),
            "kitchen": dict(critic_hidden=(512,) * 3, actor_hidden=(512,) * 3, bc_weight=5.0, steps=400_000),
            "laptop": laptop(),
            "cpu": cpu(),
        },
        lambda ac, cfg, **_: TD3BC(ac, cfg),
        online_defaults={
            "locomotion": dict(batch_size=1024, awr_temperature=1.0, bc_weight=2.0, target_entropy_scale=-1.0),
            "adroit": dict(batch_size=1024, awr_temperature=1.0, bc_weight=15.0, target_entropy_scale=-1.0),
            "kitchen": dict(batch_size=1024, awr_temperature=1.0, bc_weight=5.0, target_entropy_scale=-1.0),
        },
        summary="TD3 with a behaviour-cloning term (appendix L.3)",
    ),
)

"""AWR fine-tuning: advantage-weighted regression of the actor on replayed actions (Peng et al. 2019;
the off-policy form used for offline-to-online fine-tuning, as in AWAC / IQL's extraction).

Critic: the ensemble is trained by TD toward ``y = r + gamma (1 - d) reduce_e Q_target(s', a')`` with
``a' ~ pi(.|s')`` (no entropy term: AWR has none).

Advantage, formed from the critic: ``A(s, a) = Q(s, a) - V(s)``, where ``Q`` is the ensemble
minimum (``cfg.target_reduction``; the mean for ``mean``/``redq``) and
``V(s) = (1/K) sum_k Q(s, a_k)``, ``a_k ~ pi(.|s)``, ``K = cfg.value_samples``.

Actor: ``-E[min(exp(A / cfg.awr_temperature), cfg.max_weight) log pi(a|s)]`` over the batch's own actions
(half dataset, half online replay), with the weights held constant.
"""

from __future__ import annotations

import torch
from torch import nn

from smacrl.configs import AWRConfig
from smacrl.configs.presets import online_presets
from smacrl.losses import actor_q_reduction, ensemble_td_loss, td_target
from smacrl.nets.actor_critic import ActorCritic
from smacrl.nets.ensemble import reduce_ensemble
from smacrl.optim import build_optimizer
from smacrl.registry import Algorithm


@torch.no_grad()
def advantage(ac: ActorCritic, obs_n: torch.Tensor, actions: torch.Tensor, samples: int, reduction) -> torch.Tensor:
    """``Q(s, a) - mean_k Q(s, a_k)``, ``a_k ~ pi(.|s)``: ``[B]``."""
    red = actor_q_reduction(reduction)
    q = reduce_ensemble(ac.critic(obs_n, actions), red)
    obs_k = obs_n.repeat(samples, 1)
    a_k, _ = ac.actor.sample(obs_k)
    v = reduce_ensemble(ac.critic(obs_k, a_k.clamp(-1.0, 1.0)), red).view(samples, -1).mean(0)
    return q - v


def awr_actor_loss(
    log_prob: torch.Tensor, adv: torch.Tensor, temperature: float, max_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``-mean(min(exp(A / T), max_weight) * log pi(a|s))``; returns (loss, weights)."""
    weights = torch.exp(adv / temperature).clamp(max=max_weight).detach()
    return -(weights * log_prob).mean(), weights


class AWR:
    name = "awr"

    def __init__(self, ac: ActorCritic, cfg: AWRConfig):
        self.ac, self.cfg = ac, cfg
        self.critic_opt = build_optimizer(ac.critic, cfg.critic_lr, cfg.optimizer)
        self.actor_opt = build_optimizer(ac.actor, cfg.actor_lr, cfg.optimizer)

    @torch.no_grad()
    def explore(self, obs_n: torch.Tensor) -> torch.Tensor:
        a, _ = self.ac.actor.sample(obs_n)
        return a.clamp(-1.0, 1.0)

    def extras(self) -> dict[str, nn.Module]:
        return {}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**self.critic_opt.named("critic"), **self.actor_opt.named("actor")}

    def update(self, batch: dict[str, torch.Tensor], diagnostics: bool = False) -> dict[str, torch.Tensor]:
        ac, cfg = self.ac, self.cfg
        obs_n, next_n = ac.obs_norm(batch["obs"]), ac.obs_norm(batch["next_obs"])
        target = td_target(ac, next_n, batch["rewards"], batch["terminals"], cfg.gamma, cfg.target_reduction)
        q = ac.critic(obs_n, batch["actions"])
        critic_loss = ensemble_td_loss(q, target)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()

        adv = advantage(ac, obs_n, batch["actions"], cfg.value_samples, cfg.target_reduction)
        actor_loss, weights = awr_actor_loss(
            ac.actor.log_prob(obs_n, batch["actions"]), adv, cfg.awr_temperature, cfg.max_weight
        )
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        ac.update_target(cfg.tau)
        return {
            "loss_td": critic_loss.detach(),
            "loss_actor": actor_loss.detach(),
            "q_mean": q.detach().mean(),
            "advantage_mean": adv.mean(),
            "weight_mean": weights.mean(),
        }


ALGORITHMS = (
    Algorithm(
        "awr",
        "online",
        AWRConfig,
        online_presets(),
        lambda ac, cfg, **_: AWR(ac, cfg),
        legacy_fields={"temperature": "awr_temperature"},
        summary="advantage-weighted regression fine-tuning",
    ),
)

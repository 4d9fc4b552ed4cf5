"""SAC fine-tuning (Haarnoja et al. 2018), continuing from any offline checkpoint.

Critic: ``sum_e mean (Q_e(s,a) - y)^2`` with the soft target
``y = r + gamma (1 - d) [reduce_e Q_target(s', a') - alpha_ent log pi(a'|s')]``, ``a' ~ pi(.|s')``.
Actor: ``E[alpha_ent log pi(a|s) - Q(s, a)]``. Entropy coefficient ``alpha_ent``: tuned toward
``cfg.target_entropy_scale * |A|``; it starts from the checkpoint's own coefficient when the offline
algorithm had one (SMAC, CQL), else (or with ``ent_coef_from_checkpoint=False``, the
matched-temperature control) from ``cfg.init_ent_coef``.

Exploration samples the stochastic policy. An untransformed Gaussian actor (IQL's) works too: its
samples are clipped into the action box before they reach the env or a critic.
"""

from __future__ import annotations

import torch
from torch import nn

from smacrl.configs import SACConfig
from smacrl.configs.presets import online_presets
from smacrl.losses import EntropyCoef, ensemble_td_loss, sac_policy_step, td_target
from smacrl.nets.actor_critic import ActorCritic
from smacrl.optim import build_optimizer
from smacrl.registry import Algorithm


class SAC:
    name = "sac"

    def __init__(self, ac: ActorCritic, cfg: SACConfig, ent_coef: EntropyCoef | None = None):
        self.ac, self.cfg = ac, cfg
        device = next(ac.parameters()).device
        self.ent_coef = (ent_coef or EntropyCoef(cfg.init_ent_coef)).to(device)
        self.target_entropy = cfg.target_entropy_scale * ac.spec.act_dim
        self.critic_opt = build_optimizer(ac.critic, cfg.critic_lr, cfg.optimizer)
        self.actor_opt = build_optimizer(ac.actor, cfg.actor_lr, cfg.optimizer)
        self.ent_coef_opt = torch.optim.Adam(self.ent_coef.parameters(), lr=cfg.ent_coef_lr)

    @torch.no_grad()
    def explore(self, obs_n: torch.Tensor) -> torch.Tensor:
        a, _ = self.ac.actor.sample(obs_n)
        return a.clamp(-1.0, 1.0)

    def extras(self) -> dict[str, nn.Module]:
        return {"ent_coef": self.ent_coef}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**self.critic_opt.named("critic"), **self.actor_opt.named("actor"), "ent_coef": self.ent_coef_opt}

    def update(self, batch: dict[str, torch.Tensor], diagnostics: bool = False) -> dict[str, torch.Tensor]:
        ac, cfg = self.ac, self.cfg
        obs_n, next_n = ac.obs_norm(batch["obs"]), ac.obs_norm(batch["next_obs"])
        ent_coef = self.ent_coef().detach()

        target = td_target(
            ac, next_n, batch["rewards"], batch["terminals"], cfg.gamma, cfg.target_reduction, ent_coef=ent_coef
        )
        q = ac.critic(obs_n, batch["actions"])
        critic_loss = ensemble_td_loss(q, target)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()

        actor_loss, logp = sac_policy_step(
            ac, obs_n, self.ent_coef, self.actor_opt, self.ent_coef_opt, self.target_entropy, cfg.target_reduction
        )
        ac.update_target(cfg.tau)
        return {
            "loss_td": critic_loss.detach(),
            "loss_actor": actor_loss.detach(),
            "q_mean": q.detach().mean(),
            "entropy": -logp.detach().mean(),
            "ent_coef": ent_coef,
        }


def build(ac: ActorCritic, cfg: SACConfig, *, checkpoint=None, **_) -> SAC:
    """SAC around the loaded actor-critic; it keeps the checkpoint's entropy coefficient if it has one,
    unless the config asks every run to start from ``init_ent_coef``."""
    ent_coef = None
    if cfg.ent_coef_from_checkpoint and checkpoint is not None and "ent_coef" in checkpoint.extras:
        ent_coef = EntropyCoef()
        ent_coef.load_state_dict(checkpoint.extras["ent_coef"])
    return SAC(ac, cfg, ent_coef=ent_coef)


ALGORITHMS = (Algorithm("sac", "online", SACConfig, online_presets(), build, summary="soft actor-critic fine-tuning"),)

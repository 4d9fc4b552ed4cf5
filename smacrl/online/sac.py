"""SAC fine-tuning (Haarnoja et al. 2018), continuing from any offline checkpoint.

Critic: ``sum_e mean (Q_e(s,a) - y)^2`` with the soft target
``y = r + gamma (1 - d) [reduce_e Q_target(s', a') - alpha_ent log pi(a'|s')]``, ``a' ~ pi(.|s')``;
``cfg.td_entropy=False`` drops the ``- alpha_ent log pi`` term (the plain target).
Actor: ``E[alpha_ent log pi(a|s) - Q(s, a)]``. Entropy coefficient ``alpha_ent``: tuned toward
``cfg.target_entropy_scale * |A|``; it starts from the checkpoint's own coefficient when the offline
algorithm had one (SMAC, CQL), else (or with ``ent_coef_from_checkpoint=False``, the
matched-temperature control) from ``cfg.init_ent_coef``.

``cfg.score_matching_kappa > 0`` (not the paper's SAC, which drops it) keeps SMAC's critic regularizer
online: ``+ kappa * L_SM`` in the critic loss, over the states of both halves of each batch (dataset and
replay), with B(A)'s policy and uniform actions split evenly between them, and ``alpha_psi`` frozen at the
SMAC checkpoint's. The score model is the one the checkpoint's config names (:func:`dataset_score_fn`).
``cfg.score_matching_alpha = "zero"`` keeps only ``kappa * sum_e ||grad_a Q_e||^2``, from any checkpoint.

Exploration samples the stochastic policy. An untransformed Gaussian actor (IQL's) works too: its
samples are clipped into the action box before they reach the env or a critic.
"""

from __future__ import annotations

import torch
from torch import nn

from smacrl.configs import SACConfig, config_from_dict
from smacrl.configs.presets import online_presets
from smacrl.errors import ConfigError
from smacrl.losses import EntropyCoef, ensemble_td_loss, sac_policy_step, td_target
from smacrl.nets.actor_critic import ActorCritic
from smacrl.offline.smac import ScoreFn, dataset_score_fn, frozen_alpha, mean_cosine, score_matching_term
from smacrl.optim import build_optimizer
from smacrl.registry import Algorithm


class FrozenScoreMatching:
    """SMAC's ``L_SM`` with ``alpha_psi`` fixed, for the online critic. ``score_fn=None`` is the score-free
    checkpoint's (alpha = 0): a pure action-gradient penalty."""

    def __init__(self, alpha_net: nn.Module | None, score_fn: ScoreFn | None):
        self.alpha_net, self.score_fn = alpha_net, score_fn
        self.order = torch.empty(0, dtype=torch.long)
        if alpha_net is not None:
            alpha_net.requires_grad_(False)

    def __call__(self, ac: ActorCritic, obs: torch.Tensor, obs_n: torch.Tensor):
        """``(L_SM, cos_policy, cos_uniform, alpha)``. Rows are taken even first, then odd, so that both
        B(A) halves hold dataset and replay states alike (a mixed batch puts the dataset's rows first)."""
        n = obs.shape[0]
        if self.order.shape[0] != n or self.order.device != obs.device:
            self.order = torch.cat([torch.arange(0, n, 2), torch.arange(1, n, 2)]).to(obs.device)
        obs, obs_n = obs[self.order], obs_n[self.order]
        with torch.no_grad():
            alpha = self.alpha_net(obs_n) if self.score_fn is not None else torch.zeros_like(obs_n[:, 0])
        score_fn = self.score_fn or (lambda _o, a: torch.zeros_like(a))
        l_sm, grad_q, score = score_matching_term(ac, obs, obs_n, alpha, score_fn)
        n_pi, grad_q = obs.shape[0] // 2, grad_q.detach()
        return l_sm, mean_cosine(grad_q[:, :n_pi], score[:n_pi]), mean_cosine(grad_q[:, n_pi:], score[n_pi:]), alpha


class SAC:
    name = "sac"

    def __init__(
        self,
        ac: ActorCritic,
        cfg: SACConfig,
        ent_coef: EntropyCoef | None = None,
        score_matching: FrozenScoreMatching | None = None,
    ):
        if cfg.score_matching_kappa > 0 and score_matching is None:
            raise ValueError("score_matching_kappa > 0 needs the SMAC checkpoint's score matching term")
        self.ac, self.cfg, self.score_matching = ac, cfg, score_matching
        self.second_order = score_matching is not None
        """L_SM differentiates grad_a Q: a double backward (no torch.compile)."""
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
        sm = self.score_matching
        alpha = {"alpha_net": sm.alpha_net} if sm is not None and sm.alpha_net is not None else {}
        return {"ent_coef": self.ent_coef, **alpha}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**self.critic_opt.named("critic"), **self.actor_opt.named("actor"), "ent_coef": self.ent_coef_opt}

    def update(self, batch: dict[str, torch.Tensor], diagnostics: bool = False) -> dict[str, torch.Tensor]:
        ac, cfg = self.ac, self.cfg
        obs_n, next_n = ac.obs_norm(batch["obs"]), ac.obs_norm(batch["next_obs"])
        ent_coef = self.ent_coef().detach()
        backup = ent_coef if cfg.td_entropy else None  # None: the plain target

        target = td_target(ac, next_n, batch["rewards"], batch["terminals"], cfg.gamma, cfg.target_reduction, backup)
        q = ac.critic(obs_n, batch["actions"])
        critic_loss = ensemble_td_loss(q, target)
        sm_metrics = {}
        if self.score_matching is not None:
            l_sm, cos_policy, cos_uniform, alpha = self.score_matching(ac, batch["obs"], obs_n)
            sm_metrics = {"loss_sm": l_sm.detach(), "cos_policy": cos_policy, "cos_uniform": cos_uniform,
                          "alpha_mean": alpha.mean()}  # fmt: skip
            critic_loss = critic_loss + cfg.score_matching_kappa * l_sm
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
            **sm_metrics,
        }


def build(ac: ActorCritic, cfg: SACConfig, *, checkpoint=None, dataset=None, preset=None, **_) -> SAC:
    """SAC around the loaded actor-critic; it keeps the checkpoint's entropy coefficient if it has one,
    unless the config asks every run to start from ``init_ent_coef``. With ``score_matching_kappa > 0``
    it also takes the SMAC checkpoint's alpha_psi and score model."""
    ent_coef = None
    if cfg.ent_coef_from_checkpoint and checkpoint is not None and "ent_coef" in checkpoint.extras:
        ent_coef = EntropyCoef()
        ent_coef.load_state_dict(checkpoint.extras["ent_coef"])
    sm = None
    if cfg.score_matching_kappa > 0:
        zero = cfg.score_matching_alpha == "zero"
        sm = FrozenScoreMatching(None, None) if zero else frozen_score_matching(ac, checkpoint, dataset, preset)
    return SAC(ac, cfg, ent_coef=ent_coef, score_matching=sm)


def frozen_score_matching(ac: ActorCritic, checkpoint, dataset, preset: str | None) -> FrozenScoreMatching:
    """The SMAC checkpoint's L_SM: its alpha_psi and the score model its config names (the cache's model
    of ``dataset`` under the checkpoint's own preset, unless the config names a file)."""
    flag = "--score-matching-kappa"
    if checkpoint is None or checkpoint.algo != "smac" or "alpha_net" not in checkpoint.extras:
        what = f"{checkpoint.path} is a {checkpoint.algo} checkpoint" if checkpoint is not None else "no checkpoint"
        raise ConfigError(flag, "score_matching_kappa", f"needs a SMAC checkpoint (its alpha_psi); {what}")
    smac_cfg = config_from_dict(checkpoint.algo, checkpoint.config, source=str(checkpoint.path), phase="offline")
    if smac_cfg.score_free:
        return FrozenScoreMatching(None, None)
    if dataset is None and not smac_cfg.score_model:
        raise ConfigError(flag, "score_matching_kappa", "needs the offline dataset for the score model: pass --dataset")
    device = next(ac.parameters()).device
    alpha_net = frozen_alpha(smac_cfg, checkpoint.extras, ac.spec.obs_dim).to(device)
    offline_preset = (checkpoint.meta.get("info") or {}).get("preset") or preset
    return FrozenScoreMatching(alpha_net, dataset_score_fn(smac_cfg, dataset, offline_preset, device))


ALGORITHMS = (Algorithm("sac", "online", SACConfig, online_presets(), build, summary="soft actor-critic fine-tuning"),)

"""CQL(H) (Kumar et al. 2020) and Cal-QL (Nakamoto et al. 2023), the baselines of appendix L.2.

Both are SAC with one more critic term that pushes Q down on actions the policy or a uniform
proposal would pick and up on the dataset's actions. For every ensemble member ``e``::

    L(phi) = sum_e E_D (Q_e(s, a) - y)^2  +  alpha * sum_e E_{s,a ~ D} [ R_e(s) - Q_e(s, a) ]

    R_e(s) = T * log sum_j exp( (Q_e(s, a_j) - log rho_j(a_j)) / T )

- The ``3N`` proposals ``a_j`` per state: ``N`` uniform on ``[-1, 1]^|A|`` (density
  ``rho = 0.5^|A|``), ``N`` from ``pi(.|s)`` and ``N`` from ``pi(.|s')``, each with the log-density it
  was drawn with subtracted: with ``T = 1`` this is, up to the constant ``log 3N`` (no gradient), the
  importance-sampled estimate of ``log int exp Q(s, a) da`` of CQL's appendix F. ``N = cfg.n_actions``,
  ``T = cfg.cql_temperature``; every proposal is scored at ``s``.
  ``alpha = cfg.cql_alpha`` (table 9: 5.0), the critic ensemble has 10 members (table 9).
- Cal-QL: before the logsumexp, the Q values of the *policy* proposals (from ``pi(s)`` and
  ``pi(s')``) are lower-bounded by the Monte-Carlo return-to-go of the state,
  ``max(Q_e(s, a_j), V^MC(s))``, so the regularizer stops pushing Q below the behaviour policy's
  return. Uniform proposals are not bounded (as in the Cal-QL authors' code).
- TD target: ``y = r + gamma (1 - d) min_e Qbar_e(s', a')``, ``a' ~ pi(.|s')``, without the entropy
  bonus (CQL's and Cal-QL's default, ``backup_entropy=False``).
- Policy and temperature: SAC's, ``E[alpha_ent log pi(a|s) - min_e Q_e(s, a)]`` with ``alpha_ent``
  tuned toward ``cfg.target_entropy_scale * |A|`` (``-|A|`` offline, as published; table 9's
  ``-10 |A|`` is the online SAC's, see ``online_defaults`` in the registration below).

Differences from the paper's appendix L.2, which writes a simplified form:

- L.2 uses a plain mean of Q over ``a ~ B(s)`` (SMAC's half-policy, half-uniform mixture) for the
  pushed-down term; published CQL(H) uses the soft maximum above (logsumexp with importance
  weights over uniform, ``pi(s)`` and ``pi(s')`` proposals). We implement the published one.
- L.2 writes ``min(V^MC(s), Q(s, a))`` for Cal-QL; the method bounds Q *from below* by V^MC, i.e.
  ``max``. We use ``max``.
- L.2's TD target bootstraps from the online critic; we use the Polyak target critic.
- L.2's actor loss has no entropy temperature; published CQL tunes one (as here).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from smacrl.configs import CQLConfig
from smacrl.configs.presets import cpu, laptop
from smacrl.errors import ConfigError
from smacrl.losses import EntropyCoef, ensemble_td_loss, sac_policy_step, td_target
from smacrl.nets.actor_critic import ActorCritic
from smacrl.optim import build_optimizer
from smacrl.registry import Algorithm


def repeat_states(obs_n: torch.Tensor, n: int) -> torch.Tensor:
    """``[B, obs] -> [B * n, obs]``, each state repeated ``n`` times in a row."""
    return obs_n.repeat_interleave(n, dim=0)


@torch.no_grad()
def cql_proposals(
    ac: ActorCritic, obs_n: torch.Tensor, next_obs_n: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``3N`` proposal actions per state and the log-density each was drawn with.

    Returns ``(actions [B * 3n, A], log_density [B, 3n], is_policy [3n] bool)``, laid out per state as
    ``n`` uniform, ``n`` from ``pi(.|s)``, ``n`` from ``pi(.|s')``. No gradient reaches the actor.
    """
    b, act_dim = obs_n.shape[0], ac.spec.act_dim
    a_unif = torch.rand(b, n, act_dim, device=obs_n.device, dtype=obs_n.dtype) * 2 - 1
    logp_unif = torch.full((b, n), act_dim * math.log(0.5), device=obs_n.device, dtype=obs_n.dtype)
    a_cur, logp_cur = ac.actor.sample(repeat_states(obs_n, n))
    a_next, logp_next = ac.actor.sample(repeat_states(next_obs_n, n))
    actions = torch.cat(
        [a_unif, a_cur.clamp(-1.0, 1.0).view(b, n, act_dim), a_next.clamp(-1.0, 1.0).view(b, n, act_dim)], dim=1
    )
    log_density = torch.cat([logp_unif, logp_cur.view(b, n), logp_next.view(b, n)], dim=1)
    is_policy = torch.arange(3 * n, device=obs_n.device) >= n
    return actions.reshape(b * 3 * n, act_dim), log_density, is_policy


def cql_gap(
    q_proposals: torch.Tensor,
    log_density: torch.Tensor,
    q_data: torch.Tensor,
    temperature: float = 1.0,
    mc_returns: torch.Tensor | None = None,
    is_policy: torch.Tensor | None = None,
) -> torch.Tensor:
    """CQL(H)'s regularizer ``sum_e mean_b [T logsumexp_j((Q_e(s_b, a_j) - log rho_j) / T) - Q_e(s_b, a_b)]``.

    ``q_proposals [E, B, M]`` are the critic's values of the ``M`` proposals, ``log_density [B, M]``
    their log-densities, ``q_data [E, B]`` the values of the dataset actions. With ``mc_returns [B]``
    (Cal-QL) the proposals flagged by ``is_policy [M]`` are first raised to at least ``V^MC(s)``.
    """
    if mc_returns is not None:
        bound = mc_returns.view(1, -1, 1)
        raised = torch.maximum(q_proposals, bound)
        q_proposals = raised if is_policy is None else torch.where(is_policy.view(1, 1, -1), raised, q_proposals)
    logits = (q_proposals - log_density.detach().unsqueeze(0)) / temperature
    pushed_down = temperature * torch.logsumexp(logits, dim=-1)
    return (pushed_down - q_data).mean(dim=1).sum()


class CQL:
    """One CQL (``cfg.calibrated=False``) or Cal-QL learner; ``update(batch)`` returns metric tensors."""

    def __init__(self, ac: ActorCritic, cfg: CQLConfig, name: str | None = None):
        self.ac, self.cfg = ac, cfg
        self.name = name or ("calql" if cfg.calibrated else "cql")
        if cfg.n_actions < 1:
            raise ConfigError("config", "n_actions", f"must be at least 1, got {cfg.n_actions}")
        if cfg.cql_temperature <= 0:
            raise ConfigError("config", "cql_temperature", f"must be positive, got {cfg.cql_temperature}")
        device = next(ac.parameters()).device
        self.ent_coef = EntropyCoef(cfg.init_ent_coef).to(device)
        self.target_entropy = cfg.target_entropy_scale * ac.spec.act_dim
        self.critic_opt = build_optimizer(ac.critic, cfg.critic_lr, cfg.optimizer)
        self.actor_opt = build_optimizer(ac.actor, cfg.actor_lr, cfg.optimizer)
        self.ent_coef_opt = torch.optim.Adam(self.ent_coef.parameters(), lr=cfg.ent_coef_lr)

    # -- checkpoint contents -------------------------------------------------------------------
    def extras(self) -> dict[str, nn.Module]:
        return {"ent_coef": self.ent_coef}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**self.critic_opt.named("critic"), **self.actor_opt.named("actor"), "ent_coef": self.ent_coef_opt}

    # -- one step ------------------------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor], diagnostics: bool = False) -> dict[str, torch.Tensor]:
        ac, cfg = self.ac, self.cfg
        mc_returns = None
        if cfg.calibrated:
            if "mc_returns" not in batch:
                raise ConfigError(
                    "batch", "mc_returns", "Cal-QL needs Monte-Carlo returns; this dataset has none (run cql)"
                )
            mc_returns = batch["mc_returns"]
        obs_n, next_n = ac.obs_norm(batch["obs"]), ac.obs_norm(batch["next_obs"])
        ent_coef = self.ent_coef().detach()
        b, n = obs_n.shape[0], cfg.n_actions

        # critic: TD loss (no entropy in the backup) + alpha * CQL(H) gap, all members at once
        target = td_target(ac, next_n, batch["rewards"], batch["terminals"], cfg.gamma, cfg.target_reduction)
        q_data = ac.critic(obs_n, batch["actions"])
        td_loss = ensemble_td_loss(q_data, target)
        actions, log_density, is_policy = cql_proposals(ac, obs_n, next_n, n)
        q_prop = ac.critic(repeat_states(obs_n, 3 * n), actions).view(-1, b, 3 * n)
        gap = cql_gap(q_prop, log_density, q_data, cfg.cql_temperature, mc_returns, is_policy)
        self.critic_opt.zero_grad()
        (td_loss + cfg.cql_alpha * gap).backward()
        self.critic_opt.step()

        # policy and entropy coefficient: SAC's
        actor_loss, logp = sac_policy_step(
            ac, obs_n, self.ent_coef, self.actor_opt, self.ent_coef_opt, self.target_entropy, cfg.target_reduction
        )
        ac.update_target(cfg.tau)

        q_prop = q_prop.detach()
        metrics = {
            "loss_td": td_loss.detach(),
            "cql_gap": gap.detach() / ac.spec.ensemble_size,
            "loss_actor": actor_loss.detach(),
            "q_mean": q_data.detach().mean(),
            "q_uniform_mean": q_prop[..., :n].mean(),
            "q_policy_mean": q_prop[..., n : 2 * n].mean(),
            "entropy": -logp.detach().mean(),
            "ent_coef": ent_coef,
        }
        if mc_returns is not None:
            metrics["mc_return_mean"] = mc_returns.mean()
            metrics["calql_bound_frac"] = (q_prop[..., n:] < mc_returns.view(1, -1, 1)).float().mean()
        return metrics


# ----------------------------------------------------------------------------- registration
def calibration_fallback(cfg: CQLConfig, dataset) -> tuple[CQLConfig, dict[str, str]]:
    """Cal-QL needs Monte-Carlo returns; a dataset of truncated infinite-horizon episodes has none, and
    then CQL runs instead (the paper's N.3). Returns the config to run and what the checkpoint records."""
    if cfg.calibrated and dataset.mc_returns is None:
        print("calql: the dataset has no Monte-Carlo returns (truncated episodes); running CQL instead of Cal-QL")
        cfg = dataclasses.replace(cfg, calibrated=False)
    return cfg, {"ran": "calql" if cfg.calibrated else "cql"}


_PRESETS = {
    "locomotion": {},
    "adroit": dict(critic_hidden=(512,) * 4, actor_hidden=(256,) * 3, steps=200_000, calibrated=True),
    "kitchen": dict(critic_hidden=(512,) * 3, actor_hidden=(512,) * 3, steps=400_000, calibrated=True),
    "laptop": laptop(),
    "cpu": cpu(),
}
_ONLINE = {
    "locomotion": dict(batch_size=512, awr_temperature=1.0, bc_weight=2.5, target_entropy_scale=-10.0),
    "adroit": dict(batch_size=512, awr_temperature=0.5, bc_weight=2.5, target_entropy_scale=-10.0),
    "kitchen": dict(batch_size=512, awr_temperature=1.0, bc_weight=5.0, target_entropy_scale=-10.0),
}
ALGORITHMS = (
    Algorithm(
        "cql",
        "offline",
        CQLConfig,
        _PRESETS,
        lambda ac, cfg, **_: CQL(ac, cfg, name="cql"),
        online_defaults=_ONLINE,
        prepare=calibration_fallback,
        summary="conservative Q-learning (Cal-QL on the adroit and kitchen presets)",
    ),
    # one learner and one config class; the calql presets switch ``calibrated`` on
    Algorithm(
        "calql",
        "offline",
        CQLConfig,
        {k: {**v, "calibrated": True} for k, v in _PRESETS.items()},
        lambda ac, cfg, **_: CQL(ac, cfg, name="calql"),
        online_defaults=_ONLINE,
        prepare=calibration_fallback,
        summary="calibrated CQL: the pushed-down Q is bounded by the Monte-Carlo return",
    ),
)

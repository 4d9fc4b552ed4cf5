"""Loss pieces shared by the SAC family (SAC online, SMAC and CQL offline) and the TD3 family
(TD3 online, TD3+BC offline and online).

Conventions:

- observations reaching a network are already normalized (``ac.obs_norm(obs)``);
- actions are in ``[-1, 1]``;
- a critic ensemble returns ``[E, B]``;
- actions sampled from an untransformed Gaussian actor (IQL's, ``tanh_squash=False``) are clipped
  into the box before they reach a critic, so the critic is never queried outside ``[-1, 1]``;
- a TD loss is the mean squared error of each member, summed over members, so each member's
  gradient does not depend on the ensemble size.
"""

from __future__ import annotations

import torch
from torch import nn

from smacrl.nets.actor_critic import ActorCritic
from smacrl.nets.ensemble import Reduction, reduce_ensemble


class EntropyCoef(nn.Module):
    """SAC's entropy coefficient ``alpha_ent = exp(log_alpha)`` (often called its temperature), tuned
    toward a target entropy."""

    def __init__(self, init: float = 1.0):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(float(init)).log())

    def forward(self) -> torch.Tensor:
        return self.log_alpha.exp()


def ensemble_td_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``sum_e mean_b (Q_e(s_b, a_b) - y_b)^2`` for ``q [E, B]`` and a fixed target ``y [B]``."""
    return (q - target.detach().unsqueeze(0)).square().mean(dim=1).sum()


@torch.no_grad()
def td_target(
    ac: ActorCritic,
    next_obs_n: torch.Tensor,
    rewards: torch.Tensor,
    terminals: torch.Tensor,
    gamma: float,
    reduction: Reduction = "min",
    ent_coef: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The TD target ``r + gamma (1 - d) reduce_e Q_target_e(s', a')``, ``a' ~ pi(.|s')``; with an
    ``ent_coef`` it is SAC's soft target, ``- alpha_ent log pi(a'|s')`` inside the bracket. A terminal
    stops the bootstrap; a timeout is not a terminal."""
    next_a, next_logp = ac.actor.sample(next_obs_n)
    next_q = reduce_ensemble(ac.critic_target(next_obs_n, next_a.clamp(-1.0, 1.0)), reduction, generator)
    if ent_coef is not None:
        next_q = next_q - ent_coef * next_logp
    return rewards + gamma * (1.0 - terminals) * next_q


def actor_q_reduction(reduction: Reduction) -> Reduction:
    """The ensemble reduction the actor maximizes: the minimum under ``min``, else the mean (REDQ)."""
    return "min" if reduction == "min" else "mean"


def sac_actor_loss(
    ac: ActorCritic, obs_n: torch.Tensor, ent_coef: torch.Tensor, reduction: Reduction = "min"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``E[alpha_ent log pi(a|s) - Q(s, a)]``, ``a ~ pi(.|s)`` reparameterized. Returns (loss, log pi)."""
    a, logp = ac.actor.sample(obs_n)
    q = reduce_ensemble(ac.critic(obs_n, a.clamp(-1.0, 1.0)), actor_q_reduction(reduction))
    return (ent_coef.detach() * logp - q).mean(), logp


def ent_coef_loss(ent_coef: EntropyCoef, logp: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """Tune ``alpha_ent`` so the policy's entropy ``-E[log pi]`` tracks ``target_entropy``."""
    return -(ent_coef.log_alpha * (logp.detach() + target_entropy)).mean()


def sac_policy_step(
    ac: ActorCritic,
    obs_n: torch.Tensor,
    ent_coef: EntropyCoef,
    actor_opt,
    ent_coef_opt: torch.optim.Optimizer,
    target_entropy: float,
    reduction: Reduction = "min",
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAC's policy step then its entropy-coefficient step (SAC, SMAC and CQL share it). Returns
    ``(actor loss, log pi)``, detached."""
    actor_loss, logp = sac_actor_loss(ac, obs_n, ent_coef().detach(), reduction)
    actor_opt.zero_grad()
    # gradients for the actor only: the critic's would be discarded before its next step anyway
    actor_loss.backward(inputs=list(ac.actor.parameters()))
    actor_opt.step()
    t_loss = ent_coef_loss(ent_coef, logp, target_entropy)
    ent_coef_opt.zero_grad()
    t_loss.backward()
    ent_coef_opt.step()
    return actor_loss.detach(), logp.detach()


# ----------------------------------------------------------------------------- TD3 family
def smoothed_target_action(
    actor: nn.Module,
    next_obs_n: torch.Tensor,
    noise: float,
    noise_clip: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """TD3's target-policy smoothing: ``clip(mu(s') + clip(eps, -c, c), -1, 1)``, ``eps ~ N(0, noise^2)``,
    with ``mu = actor.deterministic`` (``tanh(mean)``, or ``clamp(mean, -1, 1)`` without squashing)."""
    a = actor.deterministic(next_obs_n)
    if generator is None:
        eps = torch.randn_like(a)
    else:
        eps = torch.randn(a.shape, generator=generator, device=a.device, dtype=a.dtype)
    return (a + (eps * noise).clamp(-noise_clip, noise_clip)).clamp(-1.0, 1.0)


@torch.no_grad()
def td3_target(
    ac: ActorCritic,
    next_obs_n: torch.Tensor,
    rewards: torch.Tensor,
    terminals: torch.Tensor,
    gamma: float,
    policy_noise: float = 0.2,
    noise_clip: float = 0.5,
    reduction: Reduction = "min",
    actor: nn.Module | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """TD3's target ``r + gamma (1 - d) reduce_e Q_target_e(s', a~')`` with ``a~'`` the smoothed
    deterministic action of :func:`smoothed_target_action`.

    ``actor`` defaults to ``ac.actor``: the common actor-critic keeps a target copy of the critic only,
    so the smoothing is applied to the online policy unless a caller passes its own target actor.
    With ``reduction="min"`` and two members this is TD3's clipped double-Q.
    """
    a_next = smoothed_target_action(actor or ac.actor, next_obs_n, policy_noise, noise_clip, generator)
    next_q = reduce_ensemble(ac.critic_target(next_obs_n, a_next), reduction, generator)
    return rewards + gamma * (1.0 - terminals) * next_q


def td3bc_actor_loss(
    q_pi: torch.Tensor, pi_actions: torch.Tensor, data_actions: torch.Tensor, bc_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """TD3+BC's actor loss in the form of the paper's table 10, for ``q_pi = Q(s, pi(s)) [B]``::

        -mean_b Q(s_b, pi(s_b)) / sg(mean_b |Q|)  +  bc_weight * mean_b mean_j (pi(s_b)_j - a_bj)^2

    Fujimoto & Gu write ``-lambda Q + (pi(s) - a)^2`` with ``lambda = alpha / mean|Q|`` (``alpha`` 2.5):
    dividing by ``lambda`` gives this form with ``bc_weight = 1 / alpha``. The squared error is averaged
    over action dimensions, as in Fujimoto & Gu's reference code (``||.||^2`` summed over dims would be
    ``|A|`` times larger). Returns (loss, the BC term).
    """
    q_scale = q_pi.abs().mean().detach().clamp_min(1e-6)
    bc = (pi_actions - data_actions).square().mean()
    return -q_pi.mean() / q_scale + bc_weight * bc, bc

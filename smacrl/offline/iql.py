"""IQL: Implicit Q-Learning (Kostrikov et al. 2022), the baseline of the paper's appendix L.1.

IQL never queries the critic on an action outside the dataset. It fits three networks, in this order
each step (as in the authors' learner):

1. the state value ``V_psi`` toward an upper expectile of the target critic on dataset actions::

       L_V(psi) = E_{(s,a) ~ D} L2_tau(min_e Qbar_e(s, a) - V_psi(s)),   L2_tau(u) = |tau - 1(u < 0)| u^2

   so a residual with ``Q > V`` weighs ``tau`` and one with ``Q < V`` weighs ``1 - tau``; with
   ``tau > 0.5`` (table 8: 0.9 locomotion, 0.7 adroit/kitchen) V approaches the best in-data action's
   value instead of the behaviour policy's mean;
2. the policy by advantage-weighted regression on dataset actions::

       L_pi(theta) = -E_{(s,a) ~ D} [min(exp(beta (min_e Qbar_e(s, a) - V_psi(s))), max_weight) log pi_theta(a|s)]

   with ``beta`` the "AWR temperature" of table 8 (an inverse temperature: larger is greedier);
3. every critic member by regression on the value of the next state::

       L_Q(phi) = sum_e E_D (Q_phi_e(s, a) - r - gamma (1 - d) V_psi(s'))^2

   followed by a Polyak step of the target critic.

Differences from the paper's appendix L.1, which abbreviates the method:

- L.1 writes the residual as ``V - Q`` inside the indicator ``1(V - Q < 0)``, which would weigh
  ``Q > V`` by ``1 - tau`` and make V a *lower* expectile, against its own remark that ``tau > 0.5``
  predicts above the mean. We use the published sign, ``u = Q - V``.
- L.1 draws ``a' ~ pi_theta`` in the value loss; published IQL (and its point: no out-of-data action)
  uses the dataset action. We use the dataset action.
- L.1's Q target has no ``(1 - d)``; we stop the bootstrap at terminals (timeouts are not terminals).
- The value target is the minimum over the *target* critic ensemble (both members in table 8), as
  published; the policy extraction (AWR) is not written in L.1 at all.
- The authors decay the actor's learning rate with a cosine schedule; table 8 lists one rate and we
  keep it constant.
- The authors' untransformed Gaussian passes its mean through ``tanh`` (only the distribution is
  left unsquashed); the common :class:`~smacrl.nets.GaussianActor` without ``tanh_squash`` has a
  linear mean, and its deterministic action is ``clamp(mean, -1, 1)``.

The actor (table 8) is an untransformed Gaussian: ``tanh_squash=False`` and one state-independent
log-std vector (``state_dependent_std=False``), so ``log pi(a|s)`` of a dataset action in ``[-1, 1]``
is a plain Gaussian density. It travels in the common checkpoint with those two spec flags. What the
online algorithms do with it: every sample ``a ~ N(mean(s), std)`` is clipped to ``[-1, 1]`` before
it reaches the env or a critic (``ActorCritic.act`` and the shared losses in :mod:`smacrl.losses`);
SAC keeps the Gaussian log-density of the unclipped sample in its entropy terms; TD3-style algorithms
and evaluation use ``deterministic(s) = clamp(mean(s), -1, 1)``. V is saved as the checkpoint extra
``value`` so an online algorithm (e.g. AWR) may reuse it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from smacrl.configs import IQLConfig
from smacrl.configs.presets import cpu, laptop
from smacrl.losses import ensemble_td_loss
from smacrl.nets.actor_critic import ActorCritic
from smacrl.nets.ensemble import reduce_ensemble
from smacrl.nets.mlp import MLP
from smacrl.optim import build_optimizer
from smacrl.registry import Algorithm


class ValueNet(nn.Module):
    """``V_psi(s)``: an MLP from the normalized observation to one number, returned as ``[B]``."""

    def __init__(self, obs_dim: int, hidden: tuple[int, ...], activation: str = "relu"):
        super().__init__()
        self.net = MLP(obs_dim, hidden, 1, activation)

    def forward(self, obs_n: torch.Tensor) -> torch.Tensor:
        return self.net(obs_n).squeeze(-1)


def expectile_loss(q: torch.Tensor, v: torch.Tensor, expectile: float) -> torch.Tensor:
    """``mean_b |tau - 1(u_b < 0)| u_b^2`` with ``u = q - v`` (``q`` fixed): V's regression toward the
    ``tau``-expectile of Q."""
    u = q.detach() - v
    weight = torch.where(u < 0, 1.0 - expectile, expectile)
    return (weight * u.square()).mean()


def awr_weights(advantage: torch.Tensor, beta: float, max_weight: float) -> torch.Tensor:
    """``min(exp(beta * A), max_weight)``, no gradient. The exponent is clamped first so a large
    advantage gives ``max_weight`` instead of ``inf``."""
    return (beta * advantage.detach()).clamp(max=math.log(max_weight)).exp()


def awr_policy_loss(log_prob: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``-mean_b w_b log pi(a_b | s_b)``: weighted maximum likelihood of the dataset actions."""
    return -(weights.detach() * log_prob).mean()


class IQL:
    """One IQL learner. ``update(batch)`` fits V, then the policy, then the critic, and returns metric tensors."""

    name = "iql"

    def __init__(self, ac: ActorCritic, cfg: IQLConfig):
        self.ac, self.cfg = ac, cfg
        device = next(ac.parameters()).device
        self.value = ValueNet(ac.spec.obs_dim, tuple(cfg.value_hidden)).to(device)
        self.value_opt = build_optimizer(self.value, cfg.value_lr, cfg.optimizer)
        self.critic_opt = build_optimizer(ac.critic, cfg.critic_lr, cfg.optimizer)
        self.actor_opt = build_optimizer(ac.actor, cfg.actor_lr, cfg.optimizer)

    # -- checkpoint contents -------------------------------------------------------------------
    def extras(self) -> dict[str, nn.Module]:
        return {"value": self.value}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {
            **self.value_opt.named("value"),
            **self.critic_opt.named("critic"),
            **self.actor_opt.named("actor"),
        }

    # -- one step ------------------------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor], diagnostics: bool = False) -> dict[str, torch.Tensor]:
        ac, cfg = self.ac, self.cfg
        obs_n, next_n = ac.obs_norm(batch["obs"]), ac.obs_norm(batch["next_obs"])
        actions = batch["actions"]

        # 1. V toward the tau-expectile of the target critic on dataset actions
        with torch.no_grad():
            q_target = reduce_ensemble(ac.critic_target(obs_n, actions), "min")
        v = self.value(obs_n)
        v_loss = expectile_loss(q_target, v, cfg.expectile)
        self.value_opt.zero_grad()
        v_loss.backward()
        self.value_opt.step()

        # 2. policy: advantage-weighted regression with the updated V. The critic's target V(s') of
        # step 3 comes from the same updated V (the policy step does not touch V), so both are read
        # in one forward pass over [s; s'].
        b = obs_n.shape[0]
        with torch.no_grad():
            v_new = self.value(torch.cat([obs_n, next_n]))
            advantage = q_target - v_new[:b]
            target = batch["rewards"] + cfg.gamma * (1.0 - batch["terminals"]) * v_new[b:]
        weights = awr_weights(advantage, cfg.beta, cfg.max_weight)
        log_prob = ac.actor.log_prob(obs_n, actions)
        actor_loss = awr_policy_loss(log_prob, weights)
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()

        # 3. critic: regression on r + gamma (1 - d) V(s')
        q_data = ac.critic(obs_n, actions)
        q_loss = ensemble_td_loss(q_data, target)
        self.critic_opt.zero_grad()
        q_loss.backward()
        self.critic_opt.step()
        ac.update_target(cfg.tau)

        metrics = {
            "loss_td": q_loss.detach(),
            "loss_value": v_loss.detach(),
            "loss_actor": actor_loss.detach(),
            "q_mean": q_data.detach().mean(),
            "v_mean": v.detach().mean(),
            "advantage_mean": advantage.mean(),
            "awr_weight_mean": weights.mean(),
            "log_prob_mean": log_prob.detach().mean(),
        }
        if diagnostics:
            metrics["awr_weight_clipped"] = (weights >= cfg.max_weight * (1 - 1e-6)).float().mean()
        return metrics


ALGORITHMS = (
    Algorithm(
        "iql",
        "offline",
        IQLConfig,
        {
            "locomotion": {},
            "adroit": dict(
                critic_hidden=(256,) * 3,
                value_hidden=(256,) * 3,
                actor_hidden=(512,) * 3,
                expectile=0.7,
                beta=0.5,
                steps=200_000,
            ),
            "kitchen": dict(
                critic_hidden=(512,) * 3,
                value_hidden=(512,) * 3,
                actor_hidden=(512,) * 3,
                expectile=0.7,
                beta=0.5,
                steps=400_000,
            ),
            "laptop": laptop(value_hidden=(256, 256)),
            "cpu": cpu(value_hidden=(64, 64)),
        },
        lambda ac, cfg, **_: IQL(ac, cfg),
        # table 8 gives no online batch size for IQL checkpoints; CQL's 512 is used
        online_defaults={
            "locomotion": dict(batch_size=512, awr_temperature=1.0, bc_weight=1.0, target_entropy_scale=-1.0),
            "adroit": dict(batch_size=512, awr_temperature=0.5, bc_weight=5.0, target_entropy_scale=-1.0),
            "kitchen": dict(batch_size=512, awr_temperature=0.5, bc_weight=2.5, target_entropy_scale=-1.0),
        },
        summary="implicit Q-learning (expectile V, advantage-weighted policy extraction)",
    ),
)

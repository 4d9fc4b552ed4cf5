"""SMAC: Score-Matched Actor-Critic, the offline phase (paper section 6, appendix K, Algorithm 1).

SMAC is SAC with one extra critic regularizer. With ``psi_D(s, a) = grad_a log pi_D(a | s, w=1)``
the dataset's action score (from the RvS diffusion model, :mod:`smacrl.score`)::

    L_SMAC(theta, psi) = L_AC(theta) + kappa * L_SM(theta, psi)
    L_SM(theta, psi)   = E_{s ~ D, a ~ B(A)} sum_e || grad_a Q_theta_e(s, a) - alpha_psi(s) psi_D(s, a) ||^2

- ``L_AC`` is the TD loss against ``r + gamma (1 - d) reduce_e Q_target(s', a')``, ``a' ~ pi(.|s')``,
  as the paper's L^AC (section 6.2) is written; ``cfg.td_entropy=True`` subtracts
  ``alpha_ent log pi(a'|s')`` inside the bracket (SAC's soft backup). The ensemble
  reduction of the target is ``cfg.target_reduction``: ``min`` over all members (default, as in
  SAC-N), ``mean``, or ``redq`` (min over a random pair). The actor maximizes the min (``min``) or the
  mean (otherwise) of the ensemble.
- ``B(A)``: half the states get an action sampled from the current policy, the other half an action
  uniform over the action box ``[-1, 1]^|A|``. Every ensemble member is regularized.
- ``grad_a Q`` is taken with ``create_graph=True`` so ``L_SM`` trains theta (a double backward).
- ``alpha_psi(s) = softplus(MLP(s)) > 0`` (``cfg.alpha_param="linear"``: the plain output, as in the
  paper; ``cfg.alpha_init`` sets its starting value; ``cfg.alpha_min`` adds a floor, so that the
  trivial minimum of L_SM, alpha = 0 with a flat critic, is out of reach). The score convention of
  :mod:`smacrl.score` is ``score = -eps_hat / sigma_k`` (pointing toward the data), so a positive ``alpha`` makes
  ``grad_a Q`` point toward the data too: out-of-data actions are valued less, in proportion to how
  far out they are. ``cfg.score_free`` is the ablation ``alpha = 0``: a pure action-gradient penalty.
- Policy and temperature: SAC's, ``E[alpha_ent log pi(a|s) - Q(s,a)]`` with ``alpha_ent`` tuned toward
  the target entropy ``cfg.target_entropy_scale * |A|`` (``-|A|``; table 7's ``-10 |A|`` is read as the
  online SAC's, as for CQL).
- Optimizers: Muon on hidden weight matrices of the critic, alpha net and policy; AdamW on the rest
  (:mod:`smacrl.optim`); ``cfg.optimizer = "adam"`` is the appendix I ablation.

Besides the losses, ``update`` logs what explains a run: the cosine between ``grad_a Q`` and the score
on each half of B(A) every step; every ``log_every`` steps also ``|grad_a Q|``, ``alpha |score|`` and
the L_SM share on each half, the spread of Q over the action box at data states (a flat critic reads
near 0) and the entropy of the uniform policy, the most the policy can have.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from smacrl.configs import SMACConfig
from smacrl.configs.presets import cpu, laptop
from smacrl.losses import EntropyCoef, ensemble_td_loss, sac_policy_step, td_target
from smacrl.nets.actor_critic import ActorCritic
from smacrl.nets.mlp import MLP
from smacrl.optim import build_optimizer, step_together
from smacrl.registry import Algorithm

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``score_fn(raw_obs [B, obs], actions [B, A]) -> grad_a log pi_D(a|s, w) [B, A]``, no gradient."""


def make_score_fn(model, cfg: SMACConfig) -> ScoreFn:
    """``psi_D(s, a)`` from a :class:`~smacrl.score.ScoreModel` at ``cfg.score_w`` and step ``cfg.score_k``:
    the score itself, or (``cfg.score_target="eps"``) the score times ``sigma_k``, which is ``-eps_hat``."""
    scale = float(model.sigma[cfg.score_k]) if cfg.score_target == "eps" else 1.0

    def score_fn(obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        score = model.score(obs, actions, w=cfg.score_w, k=cfg.score_k)
        return score if scale == 1.0 else score * scale

    return score_fn


class AlphaNet(nn.Module):
    """``alpha_psi(s)``: the state-dependent scale between ``grad_a Q`` and the score.

    ``param="softplus"`` reads ``softplus(MLP(s)) > 0``; ``"linear"`` the plain output, as the paper
    writes it. ``floor`` is added to either, so alpha never falls below it under softplus. ``init``
    sets the output bias so that alpha (floor included) starts near that value.
    """

    def __init__(
        self,
        obs_dim: int,
        hidden: tuple[int, ...],
        activation: str = "relu",
        param: str = "softplus",
        init: float | None = None,
        floor: float = 0.0,
    ):
        super().__init__()
        if param not in ("softplus", "linear"):
            raise ValueError(f"unknown alpha_param '{param}' (softplus or linear)")
        if param == "softplus" and init is not None and init <= floor:
            raise ValueError(f"alpha_init must be > alpha_min ({floor}) under softplus, got {init}")
        self.param, self.floor = param, floor
        self.net = MLP(obs_dim, hidden, 1, activation)
        if init is not None:
            out = self.net.net[-1]
            bias = math.log(math.expm1(init - floor)) if param == "softplus" else init - floor
            with torch.no_grad():
                out.bias.fill_(bias)

    @classmethod
    def from_config(cls, cfg: SMACConfig, obs_dim: int) -> AlphaNet:
        hidden = tuple(cfg.alpha_hidden)
        param = "softplus" if cfg.alpha_param == "temperature" else cfg.alpha_param  # the net is unused then
        return cls(obs_dim, hidden, cfg.alpha_activation, param, cfg.alpha_init, cfg.alpha_min)

    def forward(self, obs_n: torch.Tensor) -> torch.Tensor:
        x = self.net(obs_n).squeeze(-1)
        x = F.softplus(x) if self.param == "softplus" else x
        return x + self.floor if self.floor else x


class ConstantAlpha(nn.Module):
    """``alpha_psi(s) = value`` at every state: a temperature-read checkpoint's alpha_psi, frozen at the
    handover's entropy coefficient (the online critic's ``L_SM``, :mod:`smacrl.online.sac`)."""

    def __init__(self, value: float):
        super().__init__()
        self.register_buffer("value", torch.tensor(float(value)))

    def forward(self, obs_n: torch.Tensor) -> torch.Tensor:
        return self.value.to(obs_n.dtype).expand(obs_n.shape[0])


def frozen_alpha(cfg: SMACConfig, extras: dict, obs_dim: int) -> nn.Module:
    """A SMAC checkpoint's alpha_psi(s) from its ``extras``: the trained alpha net, or, where ``cfg.alpha_param``
    is "temperature", the entropy coefficient it was read from (its net was never trained)."""
    if cfg.alpha_param == "temperature":
        coef = EntropyCoef()
        coef.load_state_dict(extras["ent_coef"])
        return ConstantAlpha(coef().item() + cfg.alpha_min)
    alpha_net = AlphaNet.from_config(cfg, obs_dim)
    alpha_net.load_state_dict(extras["alpha_net"])
    return alpha_net


def score_matching_actions(ac: ActorCritic, obs_n: torch.Tensor) -> torch.Tensor:
    """Actions from B(A): policy samples for the first half of the batch, uniform for the rest."""
    n_pi = obs_n.shape[0] // 2
    with torch.no_grad():
        a_pi, _ = ac.actor.sample(obs_n[:n_pi])
        a_pi = a_pi.clamp(-1.0, 1.0)
    a_unif = torch.rand(obs_n.shape[0] - n_pi, a_pi.shape[-1], device=obs_n.device, dtype=obs_n.dtype) * 2 - 1
    return torch.cat([a_pi, a_unif])


def action_gradient(critic: nn.Module, obs_n: torch.Tensor, actions: torch.Tensor, ensemble_size: int):
    """``(grad_a Q_e(s, a) [E, B, A], Q [E, B])``, differentiable w.r.t. the critic (create_graph)."""
    a = actions.detach().unsqueeze(0).expand(ensemble_size, -1, -1).clone().requires_grad_(True)
    q = critic(obs_n, a)
    (grad,) = torch.autograd.grad(q.sum(), a, create_graph=True)
    return grad, q


def score_matching_loss(grad_q: torch.Tensor, alpha: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """``L_SM = sum_e mean_b || grad_a Q_e - alpha(s_b) score_b ||^2`` for ``grad_q [E,B,A]``,
    ``alpha [B]``, ``score [B, A]``."""
    residual = grad_q - alpha[None, :, None] * score.detach()[None]
    return residual.square().sum(-1).mean(-1).sum()


def score_matching_term(
    ac: ActorCritic, obs: torch.Tensor, obs_n: torch.Tensor, alpha: torch.Tensor, score_fn: ScoreFn
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``L_SM`` at the batch's states with actions from B(A) (policy half first): ``(L_SM, grad_a Q [E,B,A],
    score [B, A])``. ``obs`` are raw states (the score model's input), ``obs_n`` normalized (the nets')."""
    a_sm = score_matching_actions(ac, obs_n)
    score = score_fn(obs, a_sm)
    grad_q, _ = action_gradient(ac.critic, obs_n, a_sm, ac.spec.ensemble_size)
    return score_matching_loss(grad_q, alpha, score), grad_q, score


def mean_cosine(grad_q: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """Mean cosine between each member's ``grad_a Q`` and the score (the appendix F identity, as a number)."""
    return F.cosine_similarity(grad_q, score.unsqueeze(0).expand_as(grad_q), dim=-1).mean()


@torch.no_grad()
def q_spread(critic: nn.Module, obs_n: torch.Tensor, act_dim: int, n_actions: int = 16) -> torch.Tensor:
    """How much Q varies over the action box at data states: the standard deviation of the ensemble-mean
    Q over ``n_actions`` uniform actions per state, averaged over states. Near 0, the critic is flat."""
    b = obs_n.shape[0]
    # its own fixed generator: the same probe actions at every call, and the training's random stream is
    # untouched, so logging diagnostics more or less often does not change the run
    g = torch.Generator(device=obs_n.device).manual_seed(0)
    a = torch.rand(n_actions * b, act_dim, device=obs_n.device, dtype=obs_n.dtype, generator=g) * 2 - 1
    q = critic(obs_n.repeat(n_actions, 1), a).mean(0).reshape(n_actions, b)
    return q.std(0).mean()


def half_metrics(grad_q: torch.Tensor, alpha: torch.Tensor, score: torch.Tensor, n_pi: int) -> dict[str, torch.Tensor]:
    """The terms of L_SM on the policy half (``_policy``) and the uniform half (``_uniform``) of B(A):
    ``|grad_a Q|``, ``alpha |score|`` and the L_SM share (logged on diagnostic steps only)."""
    grad_q, alpha, score = grad_q.detach(), alpha.detach(), score.detach()
    grad_norm = grad_q.norm(dim=-1).mean(0)  # [B]
    alpha_score = alpha * score.norm(dim=-1)  # [B]
    l_sm = (grad_q - alpha[None, :, None] * score[None]).square().sum(-1).sum(0)  # [B], summed over members
    out = {}
    for half, sl in (("policy", slice(0, n_pi)), ("uniform", slice(n_pi, None))):
        out[f"grad_q_norm_{half}"] = grad_norm[sl].mean()
        out[f"alpha_score_norm_{half}"] = alpha_score[sl].mean()
        out[f"loss_sm_{half}"] = l_sm[sl].mean()
    return out


class SMAC:
    """One SMAC learner. ``update(batch)`` does one step of Algorithm 1 and returns metric tensors."""

    name = "smac"
    second_order = True
    """The score-matching term differentiates grad_a Q: a double backward (no torch.compile)."""

    def __init__(self, ac: ActorCritic, cfg: SMACConfig, score_fn: ScoreFn | None):
        if score_fn is None and not cfg.score_free:
            raise ValueError("SMAC needs a score_fn unless cfg.score_free")
        self.ac, self.cfg, self.score_fn = ac, cfg, score_fn
        device = next(ac.parameters()).device
        self.alpha_net = AlphaNet.from_config(cfg, ac.spec.obs_dim).to(device)
        self.ent_coef = EntropyCoef(cfg.init_ent_coef).to(device)
        self.target_entropy = cfg.target_entropy_scale * ac.spec.act_dim
        self.max_entropy = ac.spec.act_dim * math.log(2.0)
        """The entropy of the uniform policy on [-1, 1]^|A|, the most a tanh-squashed policy can have."""
        self.critic_opt = build_optimizer(ac.critic, cfg.critic_lr, cfg.optimizer)
        self.alpha_opt = build_optimizer(self.alpha_net, cfg.alpha_lr, cfg.optimizer)
        self.actor_opt = build_optimizer(ac.actor, cfg.actor_lr, cfg.optimizer)
        self.ent_coef_opt = torch.optim.Adam(self.ent_coef.parameters(), lr=cfg.ent_coef_lr)

    def dataset_score(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``psi_D(s, a)``, or zeros for the score-free ablation."""
        if self.cfg.score_free:
            return torch.zeros_like(actions)
        return self.score_fn(obs, actions)

    def alpha(self, obs_n: torch.Tensor) -> torch.Tensor:
        """``alpha_psi(s)``: identically 0 for the score-free ablation, SAC's entropy coefficient (detached)
        under ``alpha_param="temperature"``, else the alpha net's output."""
        if self.cfg.score_free:
            return torch.zeros(obs_n.shape[0], device=obs_n.device, dtype=obs_n.dtype)
        if self.cfg.alpha_param == "temperature":
            return self.ent_coef().detach().to(obs_n.dtype).expand(obs_n.shape[0]) + self.cfg.alpha_min
        return self.alpha_net(obs_n)

    # -- checkpoint contents -------------------------------------------------------------------
    def extras(self) -> dict[str, nn.Module]:
        return {"alpha_net": self.alpha_net, "ent_coef": self.ent_coef}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {
            **self.critic_opt.named("critic"),
            **self.alpha_opt.named("alpha"),
            **self.actor_opt.named("actor"),
            "ent_coef": self.ent_coef_opt,
        }

    # -- one step ------------------------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor], diagnostics: bool = False) -> dict[str, torch.Tensor]:
        ac, cfg = self.ac, self.cfg
        obs_n, next_n = ac.obs_norm(batch["obs"]), ac.obs_norm(batch["next_obs"])
        ent_coef = self.ent_coef().detach()

        # critic and alpha_psi: L_AC + kappa * L_SM
        target = td_target(
            ac,
            next_n,
            batch["rewards"],
            batch["terminals"],
            cfg.gamma,
            cfg.target_reduction,
            ent_coef=ent_coef if cfg.td_entropy else None,
        )
        q_data = ac.critic(obs_n, batch["actions"])
        l_ac = ensemble_td_loss(q_data, target)
        alpha = self.alpha(obs_n)
        l_sm, grad_q, score = score_matching_term(ac, batch["obs"], obs_n, alpha, self.dataset_score)
        self.critic_opt.zero_grad()
        self.alpha_opt.zero_grad()
        (l_ac + cfg.kappa * l_sm).backward()
        step_together(self.critic_opt, self.alpha_opt)  # one Newton-Schulz call per matrix shape

        # policy and entropy coefficient: SAC's
        actor_loss, logp = sac_policy_step(
            ac, obs_n, self.ent_coef, self.actor_opt, self.ent_coef_opt, self.target_entropy, cfg.target_reduction
        )
        ac.update_target(cfg.tau)

        n_pi = obs_n.shape[0] // 2  # the policy half of B(A)
        metrics = {
            "loss_td": l_ac.detach(),
            "loss_sm": l_sm.detach(),
            "loss_actor": actor_loss.detach(),
            "q_mean": q_data.detach().mean(),
            "alpha_mean": alpha.detach().mean(),
            "alpha_std": alpha.detach().std(),
            "entropy": -logp.detach().mean(),
            "ent_coef": ent_coef,
            "cos_policy": mean_cosine(grad_q.detach()[:, :n_pi], score[:n_pi]),
            "cos_uniform": mean_cosine(grad_q.detach()[:, n_pi:], score[n_pi:]),
        }
        if diagnostics:
            metrics.update(half_metrics(grad_q, alpha, score, n_pi))
            metrics["entropy_max"] = torch.tensor(self.max_entropy)
            metrics["q_spread"] = q_spread(ac.critic, obs_n, ac.spec.act_dim)
            if not cfg.score_free:
                metrics["cos_data"] = self.data_cosine(batch)
        return metrics

    def data_cosine(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cosine between ``grad_a Q`` and the score on the dataset's own actions."""
        obs_n = self.ac.obs_norm(batch["obs"])
        with torch.enable_grad():
            a = batch["actions"].detach().unsqueeze(0).expand(self.ac.spec.ensemble_size, -1, -1).clone()
            a.requires_grad_(True)
            (grad,) = torch.autograd.grad(self.ac.critic(obs_n, a).sum(), a)
        return mean_cosine(grad, self.score_fn(batch["obs"], batch["actions"]))


# ----------------------------------------------------------------------------- registration
def build(
    ac: ActorCritic,
    cfg: SMACConfig,
    *,
    dataset=None,
    preset: str | None = None,
    score_fn: ScoreFn | None = None,
    **_,
) -> SMAC:
    """SMAC with the dataset's score model: ``cfg.score_model`` if given, else the cache's model of this
    dataset under ``preset`` (trained here when there is none); no model for the score-free ablation.
    A ``score_fn`` given by the caller replaces the model (bench's analytic stand-in)."""
    if cfg.score_free or score_fn is not None:
        return SMAC(ac, cfg, None if cfg.score_free else score_fn)
    if dataset is None:
        raise ValueError("SMAC's score model is trained on the dataset: pass dataset=")
    return SMAC(ac, cfg, dataset_score_fn(cfg, dataset, preset, next(ac.parameters()).device))


def score_condition(cfg: SMACConfig, dataset) -> float:
    """The RvS condition w the score is evaluated at: ``cfg.score_w``, or with ``cfg.score_w_quantile`` that
    quantile of ``dataset.w`` over the dataset's transitions."""
    if cfg.score_w_quantile is None:
        return cfg.score_w
    if dataset is None:
        raise ValueError("--score-w-quantile reads the dataset's w: pass dataset=")
    return float(np.quantile(np.asarray(dataset.w, dtype=np.float64), cfg.score_w_quantile))


def dataset_score_fn(cfg: SMACConfig, dataset, preset: str | None, device: torch.device) -> ScoreFn:
    """The score function a SMAC config names: ``cfg.score_model`` if given (checked against ``dataset``'s
    dimensions when there is one), else the cache's model of ``dataset`` under ``preset`` (trained when
    there is none)."""
    from smacrl.data.tasks import task_preset
    from smacrl.score import load_score_model
    from smacrl.score.cache import ensure_score_model

    # Loading and training draw from torch's global RNG in different amounts; isolating them keeps the
    # learner's own initialisation (alpha_psi) the same whether the score model was cached or not.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if cfg.score_model:
            dims = {"obs_dim": dataset.obs_dim, "act_dim": dataset.act_dim} if dataset is not None else {}
            model = load_score_model(cfg.score_model, device=device, **dims)
        else:
            model, _ = ensure_score_model(
                dataset,
                preset or task_preset(dataset.task),
                rvs=cfg.rvs,
                seed=cfg.seed,
                device=device,
                progress=cfg.progress,
                steps=cfg.score_steps,
            )
    if cfg.score_w_quantile is not None:
        w = score_condition(cfg, dataset)
        print(
            f"smacrl: score: w = {w:.4f}, the data's {cfg.score_w_quantile:g} quantile of w",
            file=sys.stderr,
            flush=True,
        )
        cfg = dataclasses.replace(cfg, score_w=w)
    return make_score_fn(model, cfg)


ALGORITHMS = (
    Algorithm(
        "smac",
        "offline",
        SMACConfig,
        {
            "locomotion": {},
            "adroit": dict(critic_hidden=(512,) * 4, actor_hidden=(256,) * 3, steps=200_000),
            "kitchen": dict(critic_hidden=(512,) * 4, actor_hidden=(512,) * 3, kappa=50.0, steps=400_000),
            "laptop": laptop(alpha_hidden=(128, 128)),
            "cpu": cpu(alpha_hidden=(64, 64)),
        },
        build,
        # table 7 lists the online SAC's target entropy as -10 |A| for SMAC checkpoints
        online_defaults={
            "locomotion": dict(batch_size=1024, awr_temperature=0.4, bc_weight=5.0, target_entropy_scale=-10.0),
            "adroit": dict(batch_size=1024, awr_temperature=20.0, bc_weight=0.2, target_entropy_scale=-10.0),
            "kitchen": dict(batch_size=1024, awr_temperature=5.0, bc_weight=2.0, target_entropy_scale=-10.0),
        },
        summary="score-matched actor-critic (SAC + kappa ||grad_a Q - alpha_psi score||^2)",
    ),
)

"""Deliberately plain reference updates for ``smacrl bench``: the *slow baseline*.

Each class here does the same arithmetic as one of smacrl's learners (same layer sizes, same batch,
same forward/backward passes, same losses up to details that do not change the cost), but written
the way a first eager implementation usually is:

- the critic ensemble is a ``nn.ModuleList`` of separate ``nn.Linear`` MLPs, evaluated by a Python
  loop over members (one small matmul per member and layer, instead of one batched matmul);
- SMAC's action gradient is taken member by member, each with its own ``autograd.grad`` call;
- every optimizer is ``torch.optim.Adam(..., foreach=False)``: one Python-level update per tensor;
  where the learner uses Muon, the hidden weights of every member get ``torch.optim.Muon`` instead,
  one Newton-Schulz iteration per matrix;
- the target network moves by a Python loop over parameters;
- every step ends with ``.item()`` on its losses, a host sync (as a logger that prints each step would).

Nothing in smacrl imports this module for training; ``smacrl bench`` imports it only to time it next to
the real learners in the same process, so every speed figure has an in-run reference. It lives in the
package (it was ``benchmarks/reference.py``) so that an installed ``smacrl bench`` needs no source checkout.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_ACT = {"relu": nn.ReLU, "tanh": nn.Tanh, "mish": nn.Mish, "gelu": nn.GELU, "silu": nn.SiLU, "elu": nn.ELU}


def plain_mlp(sizes: list[int], activation: str = "relu") -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(_ACT[activation]())
    return nn.Sequential(*layers)


class LoopCritic(nn.Module):
    """``E`` independent critics, looped over in Python; returns ``[E, B]``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden, ensemble: int, activation: str):
        super().__init__()
        self.members = nn.ModuleList(plain_mlp([obs_dim + act_dim, *hidden, 1], activation) for _ in range(ensemble))

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, act], dim=-1)
        return torch.stack([m(x).squeeze(-1) for m in self.members])


class PlainActor(nn.Module):
    """Tanh-squashed Gaussian policy (or an unsquashed one for IQL's actor)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden, activation: str = "relu", squash: bool = True):
        super().__init__()
        self.act_dim, self.squash = act_dim, squash
        self.net = plain_mlp([obs_dim, *hidden, 2 * act_dim], activation)

    def dist(self, obs):
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        return mean, log_std.clamp(-5.0, 2.0).exp()

    def sample(self, obs):
        mean, std = self.dist(obs)
        u = mean + std * torch.randn_like(mean)
        logp = (-0.5 * ((u - mean) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        if not self.squash:
            return u, logp
        a = torch.tanh(u)
        return a, logp - torch.log(1 - a.pow(2) + 1e-6).sum(-1)

    def log_prob(self, obs, act):
        mean, std = self.dist(obs)
        u = torch.atanh(act.clamp(-0.999999, 0.999999)) if self.squash else act
        logp = (-0.5 * ((u - mean) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        return logp - torch.log(1 - torch.tanh(u).pow(2) + 1e-6).sum(-1) if self.squash else logp

    def deterministic(self, obs):
        return torch.tanh(self.dist(obs)[0])


def _optimizer(module_or_params, lr: float, muon: bool = False):
    """Unfused Adam on every parameter, or (``muon``) torch's Muon on the hidden ``nn.Linear`` weights of
    each MLP inside ``module`` and unfused Adam on the rest."""
    if not muon or not isinstance(module_or_params, nn.Module):
        params = module_or_params.parameters() if isinstance(module_or_params, nn.Module) else module_or_params
        return torch.optim.Adam(params, lr=lr, foreach=False)
    mlps = [m for m in module_or_params.modules() if isinstance(m, nn.Sequential)]
    hidden = [lin.weight for m in mlps for lin in [x for x in m if isinstance(x, nn.Linear)][1:-1]]
    taken = {id(p) for p in hidden}
    rest = [p for p in module_or_params.parameters() if id(p) not in taken]
    muon_opt = torch.optim.Muon(hidden, lr=lr, adjust_lr_fn="match_rms_adamw")
    return _Pair(muon_opt, torch.optim.Adam(rest, lr=lr, foreach=False))


class _Pair:
    def __init__(self, *opts):
        self.opts = opts

    def zero_grad(self):
        for o in self.opts:
            o.zero_grad()

    def step(self):
        for o in self.opts:
            o.step()


def _soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters(), strict=True):
            t.data.mul_(1 - tau).add_(tau * s.data)


class _Base:
    def __init__(
        self, obs_dim, act_dim, actor_hidden, critic_hidden, ensemble, critic_act="relu", squash=True, muon=False
    ):
        self.muon = muon
        self.actor = PlainActor(obs_dim, act_dim, actor_hidden, "relu", squash)
        self.critic = LoopCritic(obs_dim, act_dim, critic_hidden, ensemble, critic_act)
        self.critic_target = copy.deepcopy(self.critic)
        self.actor_opt = _optimizer(self.actor, 1e-4, self.muon)
        self.critic_opt = _optimizer(self.critic, 3e-4, self.muon)
        self.gamma, self.tau = 0.99, 0.005

    def to(self, device):
        for value in vars(self).values():
            if isinstance(value, nn.Module):
                value.to(device)
        return self


class RefSAC(_Base):
    """SAC, and with ``kappa > 0`` SMAC (the score-matching penalty with its double backward), and with
    ``cql_actions > 0`` CQL (the logsumexp gap over uniform and policy proposals)."""

    def __init__(
        self,
        obs_dim,
        act_dim,
        actor_hidden,
        critic_hidden,
        ensemble,
        critic_act="relu",
        score_fn=None,
        kappa: float = 0.0,
        alpha_hidden=(256, 256),
        cql_actions: int = 0,
        muon: bool = False,
    ):
        super().__init__(obs_dim, act_dim, actor_hidden, critic_hidden, ensemble, critic_act, muon=muon)
        self.log_alpha = torch.zeros((), requires_grad=True)
        self.temp_opt = _optimizer([self.log_alpha], 3e-4)
        self.kappa, self.score_fn, self.cql_actions = kappa, score_fn, cql_actions
        self.target_entropy = -float(act_dim)
        if kappa > 0:
            self.alpha_net = plain_mlp([obs_dim, *alpha_hidden, 1])
            self.alpha_opt = _optimizer(self.alpha_net, 1e-4, self.muon)

    def to(self, device):
        super().to(device)
        self.log_alpha = self.log_alpha.detach().to(device).requires_grad_(True)
        self.temp_opt = _optimizer([self.log_alpha], 3e-4)
        return self

    def update(self, batch):
        obs, act, next_obs = batch["obs"], batch["actions"], batch["next_obs"]
        temp = self.log_alpha.exp().detach()
        with torch.no_grad():
            a2, logp2 = self.actor.sample(next_obs)
            q2 = self.critic_target(next_obs, a2).min(0).values
            y = batch["rewards"] + self.gamma * (1 - batch["terminals"]) * (q2 - temp * logp2)
        q = self.critic(obs, act)
        loss = sum(F.mse_loss(q[e], y) for e in range(q.shape[0]))
        if self.kappa > 0:
            n_pi = obs.shape[0] // 2
            with torch.no_grad():
                a_pi, _ = self.actor.sample(obs[:n_pi])
            a_sm = torch.cat([a_pi, torch.rand(obs.shape[0] - n_pi, act.shape[1], device=obs.device) * 2 - 1])
            score = self.score_fn(obs, a_sm)
            alpha = F.softplus(self.alpha_net(obs)).squeeze(-1)
            sm = 0.0
            for member in self.critic.members:
                a = a_sm.clone().requires_grad_(True)
                qe = member(torch.cat([obs, a], -1)).sum()
                (g,) = torch.autograd.grad(qe, a, create_graph=True)
                sm = sm + (g - alpha[:, None] * score).pow(2).sum(-1).mean()
            loss = loss + self.kappa * sm
            self.alpha_opt.zero_grad()
        if self.cql_actions > 0:
            n, b = self.cql_actions, obs.shape[0]
            rep = obs.repeat_interleave(3 * n, 0)
            with torch.no_grad():
                a_u = torch.rand(b * n, act.shape[1], device=obs.device) * 2 - 1
                a_c, _ = self.actor.sample(obs.repeat_interleave(n, 0))
                a_n, _ = self.actor.sample(next_obs.repeat_interleave(n, 0))
            props = torch.cat([a_u.view(b, n, -1), a_c.view(b, n, -1), a_n.view(b, n, -1)], 1).view(b * 3 * n, -1)
            q_prop = self.critic(rep, props).view(-1, b, 3 * n)
            loss = loss + 5.0 * (torch.logsumexp(q_prop, -1) - q).mean(1).sum()
        self.critic_opt.zero_grad()
        loss.backward()
        self.critic_opt.step()
        if self.kappa > 0:
            self.alpha_opt.step()
        a, logp = self.actor.sample(obs)
        actor_loss = (temp * logp - self.critic(obs, a).min(0).values).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        t_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.temp_opt.zero_grad()
        t_loss.backward()
        self.temp_opt.step()
        _soft_update(self.critic_target, self.critic, self.tau)
        return {"loss_critic": loss.item(), "loss_actor": actor_loss.item()}  # host sync every step


class RefTD3BC(_Base):
    """TD3 (``bc_weight=0``) and TD3+BC: smoothed target, delayed actor, a target actor copy."""

    def __init__(
        self,
        obs_dim,
        act_dim,
        actor_hidden,
        critic_hidden,
        ensemble,
        critic_act="relu",
        bc_weight: float = 2.0,
        policy_delay: int = 2,
        muon: bool = False,
    ):
        super().__init__(obs_dim, act_dim, actor_hidden, critic_hidden, ensemble, critic_act, muon=muon)
        self.actor_target = copy.deepcopy(self.actor)
        self.bc_weight, self.policy_delay, self.steps = bc_weight, policy_delay, 0

    def update(self, batch):
        obs, act, next_obs = batch["obs"], batch["actions"], batch["next_obs"]
        with torch.no_grad():
            a2 = self.actor_target.deterministic(next_obs)
            a2 = (a2 + (0.2 * torch.randn_like(a2)).clamp(-0.5, 0.5)).clamp(-1, 1)
            q2 = self.critic_target(next_obs, a2).min(0).values
            y = batch["rewards"] + self.gamma * (1 - batch["terminals"]) * q2
        q = self.critic(obs, act)
        loss = sum(F.mse_loss(q[e], y) for e in range(q.shape[0]))
        self.critic_opt.zero_grad()
        loss.backward()
        self.critic_opt.step()
        self.steps += 1
        out = {"loss_critic": loss.item()}
        if self.steps % self.policy_delay == 0:
            pi = self.actor.deterministic(obs)
            q_pi = self.critic(obs, pi).min(0).values
            actor_loss = -q_pi.mean() / q_pi.abs().mean().detach() + self.bc_weight * (pi - act).pow(2).mean()
            self.actor_opt.zero_grad()
            actor_loss.backward()
            self.actor_opt.step()
            _soft_update(self.critic_target, self.critic, self.tau)
            _soft_update(self.actor_target, self.actor, self.tau)
            out["loss_actor"] = actor_loss.item()
        return out


class RefIQL(_Base):
    """IQL: expectile value, advantage-weighted actor, critic toward ``r + gamma V(s')``."""

    def __init__(
        self, obs_dim, act_dim, actor_hidden, critic_hidden, ensemble, value_hidden, expectile=0.9, muon=False
    ):
        super().__init__(obs_dim, act_dim, actor_hidden, critic_hidden, ensemble, "relu", squash=False, muon=muon)
        self.value = plain_mlp([obs_dim, *value_hidden, 1])
        self.value_opt = _optimizer(self.value, 3e-4, self.muon)
        self.expectile = expectile

    def update(self, batch):
        obs, act = batch["obs"], batch["actions"]
        with torch.no_grad():
            qt = self.critic_target(obs, act).min(0).values
        v = self.value(obs).squeeze(-1)
        diff = qt - v
        v_loss = (torch.abs(self.expectile - (diff < 0).float()) * diff.pow(2)).mean()
        self.value_opt.zero_grad()
        v_loss.backward()
        self.value_opt.step()
        with torch.no_grad():
            w = torch.exp(qt - self.value(obs).squeeze(-1)).clamp(max=100.0)
        actor_loss = -(w * self.actor.log_prob(obs, act)).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        with torch.no_grad():
            y = batch["rewards"] + self.gamma * (1 - batch["terminals"]) * self.value(batch["next_obs"]).squeeze(-1)
        q = self.critic(obs, act)
        loss = sum(F.mse_loss(q[e], y) for e in range(q.shape[0]))
        self.critic_opt.zero_grad()
        loss.backward()
        self.critic_opt.step()
        _soft_update(self.critic_target, self.critic, self.tau)
        return {"loss_critic": loss.item(), "loss_value": v_loss.item(), "loss_actor": actor_loss.item()}


class RefAWR(_Base):
    """AWR fine-tuning: TD critic, advantage against ``K`` policy samples, weighted log-likelihood."""

    def __init__(
        self, obs_dim, act_dim, actor_hidden, critic_hidden, ensemble, critic_act="relu", samples=4, muon=False
    ):
        super().__init__(obs_dim, act_dim, actor_hidden, critic_hidden, ensemble, critic_act, muon=muon)
        self.samples = samples

    def update(self, batch):
        obs, act, next_obs = batch["obs"], batch["actions"], batch["next_obs"]
        with torch.no_grad():
            a2, _ = self.actor.sample(next_obs)
            q2 = self.critic_target(next_obs, a2).min(0).values
            y = batch["rewards"] + self.gamma * (1 - batch["terminals"]) * q2
        q = self.critic(obs, act)
        loss = sum(F.mse_loss(q[e], y) for e in range(q.shape[0]))
        self.critic_opt.zero_grad()
        loss.backward()
        self.critic_opt.step()
        with torch.no_grad():
            ok = obs.repeat(self.samples, 1)
            ak, _ = self.actor.sample(ok)
            v = self.critic(ok, ak).min(0).values.view(self.samples, -1).mean(0)
            w = torch.exp((self.critic(obs, act).min(0).values - v) / 0.4).clamp(max=100.0)
        actor_loss = -(w * self.actor.log_prob(obs, act)).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        _soft_update(self.critic_target, self.critic, self.tau)
        return {"loss_critic": loss.item(), "loss_actor": actor_loss.item()}


# ----------------------------------------------------------------------------- data and evaluation
class ListReplay:
    """A replay buffer as a Python list of per-transition tuples, sampled one transition at a time."""

    def __init__(self, storage: dict[str, torch.Tensor], seed: int = 0):
        arrays = {k: v.cpu().numpy() for k, v in storage.items()}
        self.keys = list(arrays)
        self.rows = [tuple(arrays[k][i] for k in self.keys) for i in range(len(arrays["obs"]))]
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        picks = [self.rows[int(self.rng.integers(len(self.rows)))] for _ in range(batch_size)]
        return {k: torch.as_tensor(np.stack([p[j] for p in picks])) for j, k in enumerate(self.keys)}


@torch.no_grad()
def sequential_evaluate(ac, make_env, episodes: int, seed: int = 0) -> int:
    """One env, one episode after another, one single-observation policy call per step (with a host
    round trip per action). Returns the number of env steps taken."""
    env = make_env()
    steps = 0
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            done = False
            while not done:
                x = torch.tensor(obs, dtype=torch.float32).unsqueeze(0)
                a = ac.to_env_action(ac.act(x))[0]
                obs, _, term, trunc, _ = env.step(np.array([v.item() for v in a], dtype=np.float32))
                done = term or trunc
                steps += 1
    finally:
        env.close()
    return steps

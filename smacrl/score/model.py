"""The dataset score model: a state- and return-conditioned DDPM over normalized actions.

Forward (noising) process over ``K`` steps with the cosine schedule (Nichol & Dhariwal 2021)::

    a_k = sqrt(alpha_bar_k) * a_0 + sigma_k * eps,   sigma_k = sqrt(1 - alpha_bar_k),   eps ~ N(0, I)

with ``alpha_bar_0 = 1`` (clean actions) and ``k = 1 .. K``. The network ``eps_hat(a_k, k, s, w)``
predicts ``eps``; its minimizer is ``E[eps | a_k] = -sigma_k * grad log p_k(a_k | s, w)``, where
``p_k`` is the action density convolved with step ``k``'s noise. Hence the score convention used by
:meth:`ScoreModel.score` and by SMAC's critic regularizer:

    **score(s, a, w, k) = -eps_hat(a, k, s, w) / sigma_k  ~  grad_a log p_k(a | s, w)**

It points *toward* the data (uphill in log-density) and is in units of 1/action (normalized action
space ``[-1, 1]``). At ``k = 1`` (the least noised step; ``sigma_1 ~ 0.06`` for K = 32) ``p_1`` is
the dataset's action density blurred very slightly, so this is the paper's estimate of
``grad_a log pi_D(a | s, w)``. Note the paper writes the regularizer with the raw ``eps`` output; that
differs from this score by the factor ``-sigma_1`` only, which SMAC's learned ``alpha(s)`` absorbs.

Network (IDQL-style residual MLP, Hansen-Estruch et al. 2023):

- step embedding: sinusoidal features of ``k`` taken as a float, then ``Linear -> Mish -> Linear``;
- condition network: an MLP on ``[normalized s, w]`` (just ``s`` when ``rvs`` is off) to
  ``obs_emb_dim``;
- trunk: ``Linear([a_k, k-emb, cond] -> hidden)``, ``n_blocks`` residual blocks
  ``x + Dropout(Linear(Mish(Linear(LayerNorm(x)))))`` with a 4x wide middle, then
  ``Mish -> Linear(hidden -> act_dim)``.

Observations are standardized inside the model with the dataset's mean/std (buffers that travel in
the checkpoint). ``w`` is the dataset's min-max normalized trajectory return in ``[0, 1]``; at
inference it defaults to ``cfg.rvs_w`` (1.0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from smacrl.configs import ScoreConfig
from smacrl.nets.mlp import MLP
from smacrl.nets.policy import ObsNormalizer


# ----------------------------------------------------------------------------- schedule
def cosine_alpha_bar(steps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """``alpha_bar_k`` for ``k = 0 .. steps`` (float64, ``alpha_bar_0 = 1``) of the cosine schedule.

    ``f(t) = cos^2(((t / K) + s) / (1 + s) * pi / 2)``, ``alpha_bar_k = f(k) / f(0)``; the per-step
    ``beta_k = 1 - alpha_bar_k / alpha_bar_{k-1}`` are clipped at ``max_beta`` (only the last step can
    hit it) and ``alpha_bar`` is rebuilt from the clipped betas so the two stay consistent.
    """
    if steps < 1:
        raise ValueError(f"diffusion steps must be >= 1, got {steps}")
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * (math.pi / 2)) ** 2
    ab = f / f[0]
    betas = (1 - ab[1:] / ab[:-1]).clamp(max=max_beta)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])


# ----------------------------------------------------------------------------- layers
class SinusoidalEmbedding(nn.Module):
    """``[sin(k * f_i), cos(k * f_i)]`` with ``f_i = max_period^(-i / half)``, ``i = 0 .. half-1``.

    ``k`` is converted to float *before* it meets the frequencies, and the frequencies are a float
    buffer: with integer arithmetic every frequency below 1 would round to 0 and the embedding would
    be constant across steps.
    """

    def __init__(self, dim: int, max_period: float = 10_000.0):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"sinusoidal embedding dim must be even and >= 2, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        x = k.to(self.freqs.dtype).reshape(-1, 1) * self.freqs
        return torch.cat([x.sin(), x.cos()], dim=-1)


class ResidualBlock(nn.Module):
    """``x + Dropout(Linear(Mish(Linear(LayerNorm(x)))))``, the middle layer 4x wider."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, 4 * dim),
            nn.Mish(),
            nn.Linear(4 * dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class NoiseNet(nn.Module):
    """``eps_hat(a_k, k, cond)``: the residual MLP on the noisy action, step embedding and condition."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: ScoreConfig):
        super().__init__()
        cond_in = obs_dim + (1 if cfg.rvs else 0)
        self.cond = MLP(cond_in, cfg.cond_hidden, cfg.obs_emb_dim, activation="mish")
        self.time = nn.Sequential(
            SinusoidalEmbedding(cfg.time_emb_dim),
            nn.Linear(cfg.time_emb_dim, 2 * cfg.time_emb_dim),
            nn.Mish(),
            nn.Linear(2 * cfg.time_emb_dim, cfg.time_emb_dim),
        )
        self.inp = nn.Linear(act_dim + cfg.time_emb_dim + cfg.obs_emb_dim, cfg.hidden_dim)
        self.blocks = nn.Sequential(*(ResidualBlock(cfg.hidden_dim, cfg.dropout) for _ in range(cfg.n_blocks)))
        self.out = nn.Sequential(nn.Mish(), nn.Linear(cfg.hidden_dim, act_dim))

    def forward(self, a_k: torch.Tensor, k: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = torch.cat([a_k, self.time(k), self.cond(cond)], dim=-1)
        return self.out(self.blocks(self.inp(h)))


# ----------------------------------------------------------------------------- the model
class ScoreModel(nn.Module):
    """DDPM noise predictor of ``p(a | s, w)`` with a score and a sampler on top.

    All actions are in the normalized box ``[-1, 1]^act_dim``; observations are raw (standardized
    inside with :attr:`obs_norm`). ``w`` may be ``None`` (use ``default_w``), a float, or a tensor of
    shape ``[B]`` or ``[B, 1]``; it is ignored when the model was built with ``rvs=False``.
    """

    def __init__(self, obs_dim: int, act_dim: int, cfg: ScoreConfig):
        super().__init__()
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.rvs = bool(cfg.rvs)
        self.default_w = float(cfg.rvs_w)
        self.n_steps = int(cfg.diffusion_steps)
        self.obs_norm = ObsNormalizer(obs_dim)
        self.net = NoiseNet(obs_dim, act_dim, cfg)
        ab = cosine_alpha_bar(self.n_steps, cfg.cosine_s)
        betas = torch.cat([torch.zeros(1, dtype=torch.float64), 1 - ab[1:] / ab[:-1]])
        # Posterior q(a_{k-1} | a_k, a_0) = N(c0 * a_0 + ck * a_k, var): the DDPM reverse step.
        ab_prev = torch.cat([ab[:1], ab[:-1]])
        post_var = betas * (1 - ab_prev) / (1 - ab).clamp_min(1e-20)
        c0 = betas * ab_prev.sqrt() / (1 - ab).clamp_min(1e-20)
        ck = (1 - ab_prev) * (1 - betas).sqrt() / (1 - ab).clamp_min(1e-20)
        # Derived from the config, so not persisted (the config in the checkpoint is their source).
        for name, value in dict(
            alpha_bar=ab,
            sqrt_alpha_bar=ab.sqrt(),
            sigma=(1 - ab).sqrt(),
            post_std=post_var.sqrt(),
            post_c0=c0,
            post_ck=ck,
        ).items():
            self.register_buffer(name, value.float(), persistent=False)

    # -- helpers -----------------------------------------------------------------------------
    @torch.no_grad()
    def set_obs_stats(self, mean, std) -> None:
        self.obs_norm.set_stats(torch.as_tensor(mean), torch.as_tensor(std))

    def _cond(self, s: torch.Tensor, w: float | torch.Tensor | None) -> torch.Tensor:
        x = self.obs_norm(s)
        if not self.rvs:
            return x
        if w is None:
            w = self.default_w
        w_col = torch.as_tensor(w, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(x.shape[0], 1)
        return torch.cat([x, w_col], dim=-1)

    def _steps(self, k: int | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
        return torch.as_tensor(k, dtype=torch.long, device=device).reshape(-1).expand(batch)

    # -- the network -------------------------------------------------------------------------
    def eps(
        self, a_k: torch.Tensor, k: int | torch.Tensor, s: torch.Tensor, w: float | torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predicted noise ``eps_hat(a_k, k, s, w)``, shape ``[B, act_dim]``."""
        return self.net(a_k, self._steps(k, a_k.shape[0], a_k.device), self._cond(s, w))

    def loss(
        self,
        s: torch.Tensor,
        a: torch.Tensor,
        w: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        k: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The denoising loss ``E_{k ~ U{1..K}, eps} ||eps - eps_hat(a_k, k, s, w)||^2`` (mean over dims).

        ``k`` and ``noise`` are drawn here unless given (the held-out loss fixes them once)."""
        b = a.shape[0]
        if k is None:
            k = torch.randint(1, self.n_steps + 1, (b,), device=a.device, generator=generator)
        if noise is None:
            noise = torch.randn(a.shape, device=a.device, dtype=a.dtype, generator=generator)
        a_k = self.sqrt_alpha_bar[k, None] * a + self.sigma[k, None] * noise
        return F.mse_loss(self.eps(a_k, k, s, w), noise)

    # -- score and sampling ------------------------------------------------------------------
    @torch.no_grad()
    def score(
        self,
        s: torch.Tensor,
        a: torch.Tensor,
        w: float | torch.Tensor | None = None,
        k: int | torch.Tensor = 1,
    ) -> torch.Tensor:
        """``grad_a log p_k(a | s, w)`` estimated as ``-eps_hat(a, k, s, w) / sigma_k``.

        Points toward higher dataset density; shape ``[B, act_dim]``; no gradient flows (it is a
        regression target). ``a`` may be any action, in or outside the data's support (it is not
        clipped). ``k = 1`` is the least noised step, the estimate SMAC uses.
        """
        if isinstance(k, int) and not 1 <= k <= self.n_steps:
            raise ValueError(f"score needs 1 <= k <= {self.n_steps} (sigma_0 = 0), got {k}")
        ks = self._steps(k, a.shape[0], a.device)
        return -self.eps(a, ks, s, w) / self.sigma[ks, None]

    @torch.no_grad()
    def sample(
        self,
        s: torch.Tensor,
        w: float | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw ``a ~ p(a | s, w)`` by the K-step DDPM reverse process; returns ``[B, act_dim]`` in ``[-1, 1]``.

        Each step predicts ``a_0`` from the noise estimate, clips it to the action box, and samples the
        Gaussian posterior ``q(a_{k-1} | a_k, a_0)`` (no noise on the last step).
        """
        b, dev = s.shape[0], s.device
        cond = self._cond(s, w)
        a = torch.randn((b, self.act_dim), device=dev, generator=generator)
        for k in range(self.n_steps, 0, -1):
            ks = torch.full((b,), k, dtype=torch.long, device=dev)
            eps = self.net(a, ks, cond)
            a0 = ((a - self.sigma[k] * eps) / self.sqrt_alpha_bar[k]).clamp(-1.0, 1.0)
            a = self.post_c0[k] * a0 + self.post_ck[k] * a
            if k > 1:
                a = a + self.post_std[k] * torch.randn(a.shape, device=dev, generator=generator)
        return a.clamp(-1.0, 1.0)


class DiffusionPolicy(nn.Module):
    """The score model as a BC/RvS policy for :func:`smacrl.eval.rollout.evaluate`.

    ``act(obs)`` samples the reverse process at a fixed ``w``; ``to_env_action`` maps ``[-1, 1]`` to
    the env's box ``[low, high]``.
    """

    def __init__(self, model: ScoreModel, action_low, action_high, w: float | None = None):
        super().__init__()
        self.model = model
        self.w = w
        low = torch.as_tensor(action_low, dtype=torch.float32)
        high = torch.as_tensor(action_high, dtype=torch.float32)
        if low.shape != (model.act_dim,) or high.shape != (model.act_dim,):
            raise ValueError(f"action bounds must have shape ({model.act_dim},), got {tuple(low.shape)}")
        self.register_buffer("_scale", (high - low) / 2, persistent=False)
        self.register_buffer("_center", (high + low) / 2, persistent=False)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        # A diffusion policy has no closed-form mode; evaluation samples it either way.
        return self.model.sample(obs, self.w)

    def to_env_action(self, a: torch.Tensor) -> torch.Tensor:
        return self._center + self._scale * a

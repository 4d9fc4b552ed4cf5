"""Muon for ensemble weights.

``torch.optim.Muon`` orthogonalizes the momentum of 2D matrices only. A critic ensemble stores its
hidden weights as ``[E, in, out]`` (see :class:`smacrl.nets.EnsembleLinear`), which torch's Muon
rejects. :class:`EnsembleMuon` applies the same update to every member at once: the quintic
Newton-Schulz iteration runs on the batch of E matrices with batched matmuls.

Member ``e`` of an ``[E, in, out]`` weight is the transpose of the ``[out, in]`` weight that an
``nn.Linear`` would hold. The update is defined to equal ``torch.optim.Muon`` applied to that
``nn.Linear`` weight: orthogonalization commutes with transposition, and the learning-rate
adjustment uses ``(out, in)`` as torch does for ``nn.Linear`` (``sqrt(max(1, out/in))`` for the
default "original" rule). A test checks the equality member by member.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.optim import Optimizer

# Keller Jordan's quintic coefficients, also torch.optim.Muon's defaults.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(g: Tensor, coefficients=NS_COEFFICIENTS, steps: int = 5, eps: float = 1e-7) -> Tensor:
    """Approximately orthogonalize each matrix of ``g`` (``[..., m, n]``), in bfloat16 like torch's Muon.

    Each matrix is scaled to unit Frobenius norm (so its spectral norm is at most 1), then the odd
    polynomial ``X <- a X + (b A + c A^2) X`` with ``A = X X^T`` is iterated on the wide orientation.
    """
    a, b, c = coefficients
    x = g.bfloat16()
    tall = g.size(-2) > g.size(-1)
    if tall:
        x = x.mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)
    batched = x.dim() == 3
    for _ in range(steps):
        gram = x @ x.mT
        if batched:
            poly = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)
            x = torch.baddbmm(x, poly, x, beta=a)
        else:
            poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)
            x = torch.addmm(x, poly, x, beta=a)
    return x.mT if tall else x


def _lr_ratio(adjust_lr_fn: str | None, fan_out: int, fan_in: int) -> float:
    if adjust_lr_fn in (None, "original"):
        return math.sqrt(max(1.0, fan_out / fan_in))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(fan_out, fan_in))
    raise ValueError(f"unknown adjust_lr_fn '{adjust_lr_fn}'")


class EnsembleMuon(Optimizer):
    """Muon for ``[E, in, out]`` ensemble weights (and ``[in, out]`` matrices in the same layout).

    Hyper-parameters and defaults follow ``torch.optim.Muon``: momentum 0.95 with Nesterov, five
    Newton-Schulz steps, decoupled weight decay ``p <- p * (1 - lr * wd)``.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = 1e-7,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = None,
    ):
        defaults = dict(
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            nesterov=nesterov,
            ns_coefficients=ns_coefficients,
            eps=eps,
            ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn,
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim not in (2, 3):
                    raise ValueError(f"EnsembleMuon takes [E, in, out] or [in, out] weights, got {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd, mom = group["lr"], group["weight_decay"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - mom)
                update = p.grad.lerp(buf, mom) if group["nesterov"] else buf
                # run NS on the [out, in] (nn.Linear) view, exactly as torch orients each member
                update = newton_schulz(update.mT, group["ns_coefficients"], group["ns_steps"], group["eps"]).mT
                fan_in, fan_out = p.shape[-2], p.shape[-1]
                p.mul_(1 - lr * wd)
                p.add_(update.to(p.dtype), alpha=-lr * _lr_ratio(group["adjust_lr_fn"], fan_out, fan_in))
        return loss

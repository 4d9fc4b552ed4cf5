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
    """Muon for ``[E, in, out]`` ensemble weights, and for 2D matrices.

    Hyper-parameters and defaults follow ``torch.optim.Muon``: momentum 0.95 with Nesterov, five
    Newton-Schulz steps, decoupled weight decay ``p <- p * (1 - lr * wd)``.

    ``layout`` says how a 2D parameter is stored: ``"in_out"`` (a single member of an ensemble
    weight) or ``"out_in"`` (an ``nn.Linear`` weight, the layout ``torch.optim.Muon`` takes). 3D
    parameters are always ``[E, in, out]``.

    One step runs one batched Newton-Schulz call per matrix shape: every member of every parameter
    with the same ``(out, in)`` shape is orthogonalized together (:func:`muon_step` extends this
    across optimizers stepped at the same time). Batching changes a member's result only through
    bf16 rounding (tests compare with unbatched steps to 2e-4 on steps of about 0.02).
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
        layout: str = "in_out",
    ):
        if layout not in ("in_out", "out_in"):
            raise ValueError(f"layout must be 'in_out' or 'out_in', got '{layout}'")
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
        self.layout = layout
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim not in (2, 3):
                    raise ValueError(f"EnsembleMuon takes [E, in, out] or 2D weights, got {tuple(p.shape)}")

    def _as_out_in(self, t: Tensor) -> Tensor:
        """``t`` (a parameter-shaped tensor) as a batch of ``[out, in]`` matrices, the orientation torch's
        Muon orthogonalizes an ``nn.Linear`` weight in."""
        if t.dim() == 2 and self.layout == "out_in":
            return t.unsqueeze(0)
        return (t if t.dim() == 3 else t.unsqueeze(0)).mT

    def _from_out_in(self, t: Tensor, like: Tensor) -> Tensor:
        if like.dim() == 2 and self.layout == "out_in":
            return t.squeeze(0)
        t = t.mT
        return t if like.dim() == 3 else t.squeeze(0)

    def _fans(self, p: Tensor) -> tuple[int, int]:
        """``(fan_out, fan_in)`` of a parameter."""
        if p.dim() == 2 and self.layout == "out_in":
            return p.shape[0], p.shape[1]
        return p.shape[-1], p.shape[-2]

    def _momentum_updates(self) -> list[tuple[dict, Tensor, Tensor]]:
        """Advance every momentum buffer; return ``(group, param, nesterov update)`` for each param."""
        out = []
        for group in self.param_groups:
            mom = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - mom)
                out.append((group, p, p.grad.lerp(buf, mom) if group["nesterov"] else buf))
        return out

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        muon_step([self])
        return loss


@torch.no_grad()
def muon_step(optimizers: list[EnsembleMuon]) -> None:
    """Step several :class:`EnsembleMuon` optimizers at once (e.g. a critic's and alpha_psi's, which
    the same loss updates), with one Newton-Schulz call per ``(out, in)`` shape and setting."""
    pending = [(opt, *item) for opt in optimizers for item in opt._momentum_updates()]
    batches: dict[tuple, list[int]] = {}
    mats = []
    for i, (opt, group, _, update) in enumerate(pending):
        m = opt._as_out_in(update)
        mats.append(m)
        key = (tuple(m.shape[1:]), m.dtype, m.device, tuple(group["ns_coefficients"]), group["ns_steps"], group["eps"])
        batches.setdefault(key, []).append(i)
    ortho: list[Tensor | None] = [None] * len(pending)
    for (_, _, _, coefficients, steps, eps), idx in batches.items():
        stacked = mats[idx[0]] if len(idx) == 1 else torch.cat([mats[i] for i in idx])
        result = newton_schulz(stacked, coefficients, steps, eps)
        for i, part in zip(idx, result.split([mats[i].shape[0] for i in idx]), strict=True):
            ortho[i] = part
    for (opt, group, p, _), o in zip(pending, ortho, strict=True):
        lr, wd = group["lr"], group["weight_decay"]
        fan_out, fan_in = opt._fans(p)
        p.mul_(1 - lr * wd)
        p.add_(opt._from_out_in(o, p).to(p.dtype), alpha=-lr * _lr_ratio(group["adjust_lr_fn"], fan_out, fan_in))

"""Vectorized ensembles: E members evaluated as one batched matmul.

An :class:`EnsembleLinear` holds weights of shape ``[E, in, out]`` and biases ``[E, 1, out]``; its
forward pass is a single ``torch.baddbmm`` (on CPU a multiply-and-sum when ``out`` is 1). There is never a
Python loop over members, so an ensemble of 10 critics costs one kernel launch per layer, not ten.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from smacrl.nets.mlp import activation_fn

Reduction = Literal["min", "mean", "redq"]


class EnsembleLinear(nn.Module):
    """E independent affine maps ``y_e = x_e @ W_e + b_e``.

    Input ``[B, in]`` is shared by every member; input ``[E, B, in]`` gives each member its own batch.
    Output is ``[E, B, out]``. Each member is initialised exactly as ``nn.Linear(in, out)`` would be.
    """

    def __init__(self, in_features: int, out_features: int, ensemble_size: int):
        super().__init__()
        self.in_features, self.out_features, self.ensemble_size = in_features, out_features, ensemble_size
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(ensemble_size, 1, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's default: kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(in), 1/sqrt(in)), bias likewise.
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.out_features == 1 and x.device.type == "cpu":
            # A critic's output layer. Batched GEMV (N=1) is the slowest shape CPU BLAS has, and this
            # multiply-and-sum ran its forward plus backward several times faster at critic sizes; it
            # also broadcasts a shared [B, in] input without expanding it. Measured on CPU only (figures
            # in benchmarks/NOTES.md); CUDA keeps the batched matmul. smacrl bench's FLOP counter sees a
            # mul and a sum here, not a matmul, so its counts leave this layer out.
            return (x * self.weight.transpose(1, 2)).sum(-1, keepdim=True) + self.bias
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.ensemble_size, -1, -1)
        return torch.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, ensemble={self.ensemble_size}"


class EnsembleMLP(nn.Module):
    """An MLP whose every layer is an :class:`EnsembleLinear`: ``[B|E,B, in] -> [E, B, out]``."""

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        ensemble_size: int,
        activation: str = "relu",
        layer_norm: bool = False,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers.append(EnsembleLinear(d, h, ensemble_size))
            if layer_norm:
                layers.append(nn.LayerNorm(h))
            layers.append(activation_fn(activation))
            d = h
        layers.append(EnsembleLinear(d, out_dim, ensemble_size))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CriticEnsemble(nn.Module):
    """E Q-functions ``Q_e(s, a)``, returned as ``[E, B]``.

    ``action`` may be ``[B, act]`` (the same actions for every member) or ``[E, B, act]``.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int],
        ensemble_size: int,
        activation: str = "relu",
        layer_norm: bool = False,
    ):
        super().__init__()
        self.ensemble_size = ensemble_size
        self.net = EnsembleMLP(obs_dim + act_dim, hidden, 1, ensemble_size, activation, layer_norm)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        if action.dim() == 3 and obs.dim() == 2:
            obs = obs.unsqueeze(0).expand(action.shape[0], -1, -1)
        return self.net(torch.cat([obs, action], dim=-1)).squeeze(-1)


def reduce_ensemble(
    q: torch.Tensor, mode: Reduction = "min", generator: torch.Generator | None = None, subset: int = 2
) -> torch.Tensor:
    """Reduce ``[E, B]`` ensemble values to ``[B]`` for a TD target.

    - ``min``: the minimum over all E members (SAC-N, clipped double-Q when E=2);
    - ``mean``: the ensemble mean;
    - ``redq``: the minimum over a random subset of ``subset`` members, one subset per call (REDQ).
    """
    if mode == "min":
        return q.min(dim=0).values
    if mode == "mean":
        return q.mean(dim=0)
    if mode == "redq":
        e = q.shape[0]
        idx = torch.randperm(e, generator=generator, device="cpu")[: min(subset, e)].to(q.device)
        return q.index_select(0, idx).min(dim=0).values
    raise ValueError(f"unknown ensemble reduction '{mode}' (min, mean or redq)")


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) * target + tau * source`` for every parameter, in one foreach call."""
    tgt = list(target.parameters())
    src = list(source.parameters())
    if tgt:
        torch._foreach_lerp_(tgt, src, tau)

"""A plain multi-layer perceptron."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class _SigmoidTanh(torch.autograd.Function):
    """``tanh(x) = 2 sigmoid(2x) - 1``, with tanh's own backward ``g (1 - y^2)``."""

    generate_vmap_rule = True  # usable under torch.func transforms (vmap, grad) as well

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x * 2).mul_(2).sub_(1)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # aten's tanh_backward has its own derivative, and y's graph leads back here, so a double
        # backward (SMAC's action-gradient penalty) differentiates through this as through torch.tanh
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


class Tanh(nn.Module):
    """``tanh``; on CPU tensors of at least ``min_numel`` elements computed as ``2 sigmoid(2x) - 1``,
    within 2e-7 of ``torch.tanh`` (tested), with tanh's own backward.

    torch's CPU ``tanh`` is its accurate-to-1-ulp vector routine, several times the cost of ``sigmoid``
    on a critic's hidden activations (figures in ``benchmarks/NOTES.md``), and SMAC's tanh critics are
    the nets every online algorithm fine-tunes. Below ``min_numel`` the Python-level backward of the
    custom autograd function costs more than it saves; on CUDA ``tanh`` is already one pass.
    """

    min_numel = 1 << 16
    min_numel_no_grad = 1 << 13
    """Without a graph to record (target critics, evaluation) there is no Python backward to pay for."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu":
            if not (x.requires_grad and torch.is_grad_enabled()):
                if x.numel() >= self.min_numel_no_grad:
                    return _SigmoidTanh.forward(x)  # the same arithmetic, no graph node
            elif x.numel() >= self.min_numel:
                return _SigmoidTanh.apply(x)
        return torch.tanh(x)


_ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": Tanh,
    "mish": nn.Mish,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
}


def activation_fn(name: str) -> nn.Module:
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation '{name}', expected one of {sorted(_ACTIVATIONS)}") from None


class MLP(nn.Module):
    """``in -> hidden... -> out`` with an activation after every hidden layer (not after the output).

    ``out_dim=None`` drops the output layer, so the module ends with the last hidden activation.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int | None,
        activation: str = "relu",
        layer_norm: bool = False,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers.append(nn.Linear(d, h))
            if layer_norm:
                layers.append(nn.LayerNorm(h))
            layers.append(activation_fn(activation))
            d = h
        if out_dim is not None:
            layers.append(nn.Linear(d, out_dim))
            d = out_dim
        self.net = nn.Sequential(*layers)
        self.out_dim = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

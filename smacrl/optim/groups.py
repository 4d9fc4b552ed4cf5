"""Which parameters Muon gets, and one object that steps a network's optimizers together.

Following the paper's Algorithm 1 and Muon's own guidance, Muon updates the *hidden* weight
matrices of a network; everything else goes to AdamW:

- 2D hidden ``nn.Linear`` weights                -> :class:`EnsembleMuon` in ``nn.Linear`` layout
  (the update of ``torch.optim.Muon``, equal up to bf16 rounding; tested)
- 3D hidden ``EnsembleLinear`` weights ``[E,in,out]`` -> :class:`EnsembleMuon` (same update per member)
- biases, norms, the input layer, the output layer, free vectors such as a state-independent log-std
  -> ``torch.optim.AdamW``

A network's layers are taken in registration order: the first linear layer is its input layer and
the last its output layer. Temperatures have their own optimizers in each algorithm.

Learning rates: the paper gives one rate per network (table 7). Muon's update is orthogonal, so its
scale differs from Adam's; we use torch's ``match_rms_adamw`` adjustment (update RMS ~ 0.2 lr, like
AdamW), which lets the AdamW rate be reused for the Muon matrices.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import nn

from smacrl.nets.ensemble import EnsembleLinear
from smacrl.optim.muon import EnsembleMuon, muon_step


def split_params(module: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter], list[nn.Parameter]]:
    """``(muon_2d, muon_3d, adamw)`` parameters of ``module`` (trainable ones only)."""
    layers = [m for m in module.modules() if isinstance(m, nn.Linear | EnsembleLinear)]
    hidden = layers[1:-1]
    muon_2d = [m.weight for m in hidden if isinstance(m, nn.Linear) and m.weight.requires_grad]
    muon_3d = [m.weight for m in hidden if isinstance(m, EnsembleLinear) and m.weight.requires_grad]
    taken = {id(p) for p in muon_2d + muon_3d}
    adamw = [p for p in module.parameters() if p.requires_grad and id(p) not in taken]
    return muon_2d, muon_3d, adamw


class OptimizerSet:
    """Several optimizers stepped as one; ``optimizers`` maps a name to each (for checkpoints)."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer]):
        self.optimizers = optimizers

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        step_together(self)

    def state_dict(self) -> dict[str, Any]:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])

    def named(self, prefix: str) -> dict[str, torch.optim.Optimizer]:
        """``{prefix_name: optimizer}``, the form :func:`smacrl.checkpoint.save_checkpoint` takes."""
        return {f"{prefix}_{name}": opt for name, opt in self.optimizers.items()}


def step_together(*sets: OptimizerSet) -> None:
    """Step optimizer sets that the same backward pass fed: their Muon matrices share one batched
    Newton-Schulz call per shape (:func:`smacrl.optim.muon.muon_step`); other optimizers step as usual."""
    muons = [o for s in sets for o in s.optimizers.values() if isinstance(o, EnsembleMuon)]
    if muons:
        muon_step(muons)
    for s in sets:
        for opt in s.optimizers.values():
            if not isinstance(opt, EnsembleMuon):
                opt.step()


def _adamw(params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)


def build_optimizer(
    module: nn.Module | Iterable[nn.Module],
    lr: float,
    kind: Literal["muon", "adam"] = "muon",
    weight_decay: float = 0.0,
    momentum: float = 0.95,
    adjust_lr_fn: str | None = "match_rms_adamw",
) -> OptimizerSet:
    """The optimizers of one network. ``kind="adam"`` puts every parameter in one AdamW (the paper's
    appendix I ablation); ``kind="muon"`` splits as described in the module docstring."""
    modules = [module] if isinstance(module, nn.Module) else list(module)
    if kind == "adam":
        params = [p for m in modules for p in m.parameters() if p.requires_grad]
        return OptimizerSet({"adamw": _adamw(params, lr, weight_decay)})
    if kind != "muon":
        raise ValueError(f"optimizer must be 'muon' or 'adam', got '{kind}'")
    m2, m3, rest = [], [], []
    for m in modules:
        a, b, c = split_params(m)
        m2 += a
        m3 += b
        rest += c
    opts: dict[str, torch.optim.Optimizer] = {}
    kw = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, adjust_lr_fn=adjust_lr_fn)
    if m2:
        opts["muon"] = EnsembleMuon(m2, layout="out_in", **kw)
    if m3:
        opts["ensemble_muon"] = EnsembleMuon(m3, **kw)
    if rest:
        opts["adamw"] = _adamw(rest, lr, weight_decay)
    return OptimizerSet(opts)

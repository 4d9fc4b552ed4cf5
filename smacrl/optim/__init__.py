"""Optimizers: Muon for hidden weight matrices (2D and ensemble 3D), AdamW for the rest."""

from smacrl.optim.groups import OptimizerSet, build_optimizer, split_params, step_together
from smacrl.optim.muon import EnsembleMuon, muon_step, newton_schulz

__all__ = [
    "EnsembleMuon",
    "OptimizerSet",
    "build_optimizer",
    "muon_step",
    "newton_schulz",
    "split_params",
    "step_together",
]

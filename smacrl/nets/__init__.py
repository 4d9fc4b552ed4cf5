"""Shared network pieces: MLPs, vectorized ensembles, the Gaussian actor and the actor-critic."""

from smacrl.nets.actor_critic import ActorCritic, ActorCriticSpec
from smacrl.nets.ensemble import CriticEnsemble, EnsembleLinear, EnsembleMLP, polyak_update, reduce_ensemble
from smacrl.nets.mlp import MLP, activation_fn
from smacrl.nets.policy import GaussianActor, ObsNormalizer

__all__ = [
    "MLP",
    "ActorCritic",
    "ActorCriticSpec",
    "CriticEnsemble",
    "EnsembleLinear",
    "EnsembleMLP",
    "GaussianActor",
    "ObsNormalizer",
    "activation_fn",
    "polyak_update",
    "reduce_ensemble",
]

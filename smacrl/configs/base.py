"""Config pieces shared by every algorithm.

Every algorithm config is a flat dataclass (so each field is one CLI flag, e.g. ``--kappa 40``)
built by inheritance from these parts. Class defaults are the paper's *locomotion* column; the
other families and the small ``cpu`` preset are overrides in :mod:`smacrl.configs.presets`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

Activation = Literal["relu", "tanh", "mish", "gelu", "silu", "elu"]
Reduction = Literal["min", "mean", "redq"]


@dataclasses.dataclass
class RunOptions:
    """Where a run writes, how it is seeded, and how it reports."""

    seed: int = 0
    """Seeds python, numpy, torch and the environments."""
    device: str = "auto"
    """cpu, cuda, cuda:N or auto."""
    out: str | None = None
    """Run directory; default runs/<algo>-<task>-s<seed>."""
    label: str | None = None
    """The name this run goes by in reports, when it is a variant of its algorithm (smac-score-free,
    sac-matched); default the algorithm's name. A fine-tuning reports its checkpoint's label too."""
    log_every: int = 1000
    """Steps between metric flushes (the only host syncs of the training loop)."""
    eval_every: int = 10_000
    """Steps between policy evaluations."""
    eval_episodes: int = 10
    """Episodes per evaluation, run on vectorized envs."""
    checkpoint_every: int = 50_000
    """Steps between checkpoints."""
    keep_checkpoints: int = 3
    """Retention: how many recent periodic checkpoints to keep (the final one is always kept)."""
    trajectory_points: int = 20
    """Actor-only snapshots kept per run (evenly spaced, plus step 0), for reward landscapes; 0 = none."""
    progress: bool = True
    """Show a progress bar with live loss and return."""
    tensorboard: bool = False
    """Also write TensorBoard events (needs the tensorboard extra)."""
    wandb: bool = False
    """Also log to Weights & Biases (needs wandb installed; never required)."""
    on_nonfinite: Literal["stop", "skip"] = "stop"
    """A NaN or infinite loss or parameter: stop the run (exit 3, the last good checkpoint kept), or
    skip: put back the state from before each update whose metrics are not finite (a host sync and a
    copy of the learner's state per update)."""


@dataclasses.dataclass
class NetsConfig:
    """Shapes of the common actor-critic."""

    actor_hidden: tuple[int, ...] = (256, 256)
    """Policy hidden widths."""
    actor_activation: Activation = "relu"
    """Policy hidden activation."""
    std_transform: Literal["exp", "softplus"] = "exp"
    """How the policy's std is made positive: exp of a clamped log-std, or softplus."""
    tanh_squash: bool = True
    """Squash the Gaussian policy with tanh into the action box."""
    state_dependent_std: bool = True
    """The std is a network output (else one free parameter per action dim)."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """Critic hidden widths."""
    critic_activation: Activation = "relu"
    """Critic hidden activation."""
    ensemble_size: int = 2
    """Critics in the ensemble."""
    critic_layer_norm: bool = False
    """LayerNorm after each critic hidden layer."""


@dataclasses.dataclass
class LearnerOptions:
    """How a learner's update runs."""

    compile: bool = False
    """torch.compile the critic ensembles; off by default because on a CPU it speeds some learners and
    sizes up and slows others down (measured in benchmarks/COMPILE.md); SMAC stays eager; falls back to
    eager if compilation fails (smacrl/nets/compile.py)."""


@dataclasses.dataclass
class OfflineConfig(NetsConfig, LearnerOptions, RunOptions):
    """Fields every offline algorithm has."""

    steps: int = 250_000
    """Offline gradient steps."""
    batch_size: int = 64
    """Offline transitions per update."""
    gamma: float = 0.99
    """Discount."""
    tau: float = 0.005
    """Polyak rate of the target critic."""
    actor_lr: float = 1e-4
    """Policy learning rate."""
    critic_lr: float = 3e-4
    """Critic learning rate."""
    optimizer: Literal["muon", "adam"] = "adam"
    """adam (AdamW) or muon (Muon on hidden matrices, AdamW on the rest)."""
    normalize_obs: bool = True
    """Standardize observations with the dataset's mean/std (stats travel in the checkpoint)."""


@dataclasses.dataclass
class OnlineConfig(LearnerOptions, RunOptions):
    """Fields every online fine-tuning algorithm has (paper section 4.2)."""

    steps: int = 200_000
    """Online env steps, one update each."""
    warmup_steps: int = 5_000
    """On-policy warm-start transitions collected before the first update."""
    batch_size: int = 1024
    """Transitions per online update (dataset and replay together)."""
    dataset_fraction: float = 0.5
    """Share of each batch drawn from the offline dataset; the rest from online replay."""
    updates_per_step: int = 1
    """Gradient updates per environment step."""
    gamma: float = 0.99
    """Discount."""
    tau: float = 0.005
    """Polyak rate of the target critic."""
    actor_lr: float = 1e-4
    """Policy learning rate."""
    critic_lr: float = 3e-4
    """Critic learning rate."""
    target_reduction: Reduction = "min"
    """How the TD target reduces the critic ensemble: min, mean or redq."""
    optimizer: Literal["muon", "adam"] = "adam"
    """adam (AdamW) or muon."""
    eval_every: int = 5_000
    """Online updates between evaluations."""
    eval_after_first: int = 1_000
    """Online updates after which the second evaluation runs: J(pi_1), right after the switch."""
    checkpoint_every: int = 20_000
    """Online updates between checkpoints."""


def config_to_dict(cfg: Any) -> dict[str, Any]:
    out = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

"""The algorithm registry and the learner contract.

Every algorithm smacrl can train declares itself at the end of its own module as an
:class:`Algorithm`: its name and phase, its config class and presets, how to build its learner, and,
for an offline algorithm, the online hyper-parameters the paper lists per offline algorithm and any
preparation of the config against the dataset (Cal-QL falls back to CQL without Monte-Carlo
returns). The CLI, the Python API, the configs, the training loops, bench, report, landscape and
sweeps all read names from here; :data:`MODULES` is the only list of where algorithms live.

Adding an algorithm: write its module (losses as functions, then a learner class with
``update(batch)``), end it with ``ALGORITHMS = (Algorithm(...),)``, and add the module to
:data:`MODULES`. The contract test (``tests/test_learner_contract.py``) then covers it.

One name may exist in both phases (``td3bc`` is an offline learner and an online fine-tuner). A lookup
without a phase takes the offline one; the online one is asked for with ``phase="online"``.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from smacrl.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from smacrl.nets.actor_critic import ActorCritic

Phase = Literal["score", "offline", "online"]
PHASES: tuple[Phase, ...] = ("score", "offline", "online")

MODULES: tuple[str, ...] = (
    "smacrl.score.train",
    "smacrl.offline.smac",
    "smacrl.offline.iql",
    "smacrl.offline.cql",
    "smacrl.offline.td3bc",
    "smacrl.online.sac",
    "smacrl.online.td3",
    "smacrl.online.td3bc",
    "smacrl.online.awr",
)
"""The modules that declare algorithms (each defines ``ALGORITHMS``), in the order they are listed."""


@runtime_checkable
class Learner(Protocol):
    """What the training loops, checkpoints and bench need from a learner.

    ``update`` takes one batch (``obs``, ``actions``, ``rewards``, ``next_obs``, ``terminals``, and
    offline also ``w`` and ``mc_returns``) and returns scalar metric tensors (no host sync);
    ``diagnostics=True`` asks for the costlier metrics, on logging steps only. ``extras`` and
    ``optimizers`` name everything besides the actor-critic that a resumed run must restore.
    """

    name: str
    ac: ActorCritic

    def update(self, batch: dict[str, torch.Tensor], diagnostics: bool = False) -> dict[str, torch.Tensor]: ...
    def extras(self) -> dict[str, nn.Module]: ...
    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...


@runtime_checkable
class OnlineLearner(Learner, Protocol):
    """An online learner also acts: ``explore(obs_n)`` returns actions in ``[-1, 1]`` for normalized
    observations ``[N, obs_dim]``, without gradients."""

    def explore(self, obs_n: torch.Tensor) -> torch.Tensor: ...


Build = Callable[..., Learner]
"""``build(ac, cfg, *, dataset=None, checkpoint=None, preset=None) -> Learner``: offline learners may use
the dataset (SMAC's score model) and the preset; online learners may reuse the loaded checkpoint's
extras (SAC keeps a temperature)."""

Prepare = Callable[[Any, Any], tuple[Any, dict[str, Any]]]
"""``prepare(cfg, dataset) -> (cfg to run, what the checkpoint records under info)``."""


@dataclasses.dataclass(frozen=True)
class Algorithm:
    name: str
    """The name on the command line, in config.json and in checkpoints."""
    phase: Phase
    config: type
    """The config dataclass; its defaults are the paper's locomotion column."""
    presets: Mapping[str, Mapping[str, Any]]
    """Preset name -> overrides of the config defaults (every name in ``PRESET_NAMES``)."""
    build: Build | None = None
    """How to build the learner; None for the score model, which has no learner."""
    online_defaults: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    """Offline algorithms: family -> the online fields the paper lists for this offline algorithm
    (online batch size, AWR temperature, TD3+BC weight, SAC target entropy; tables 7-10). Each online
    config takes the fields it has."""
    prepare: Prepare | None = None
    """Offline algorithms: adjust the config to the dataset before training (Cal-QL -> CQL)."""
    legacy_names: tuple[str, ...] = ()
    """Names older versions wrote into config.json and checkpoints, read as this algorithm."""
    legacy_fields: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Config fields renamed since older runs wrote their config.json: old name -> current name."""
    summary: str = ""
    """One line for ``--help``."""


_REGISTRY: dict[tuple[str, str], Algorithm] | None = None


def _load() -> dict[tuple[str, str], Algorithm]:
    global _REGISTRY
    if _REGISTRY is None:
        found: dict[tuple[str, str], Algorithm] = {}
        for module in MODULES:
            for algo in importlib.import_module(module).ALGORITHMS:
                key = (algo.phase, algo.name)
                if key in found:
                    raise RuntimeError(f"{module}: algorithm {key} is registered twice")
                found[key] = algo
        _REGISTRY = found
    return _REGISTRY


def algorithms(phase: Phase | None = None) -> tuple[Algorithm, ...]:
    """Every registered algorithm of ``phase`` (all phases when None), in :data:`MODULES` order."""
    return tuple(a for (p, _), a in _load().items() if phase is None or p == phase)


def names(phase: Phase | None = None) -> tuple[str, ...]:
    """Registered names of ``phase``; a name in two phases appears once."""
    return tuple(dict.fromkeys(a.name for a in algorithms(phase)))


def get(name: str, phase: Phase | None = None, *, source: str = "--algo") -> Algorithm:
    """The algorithm ``name`` (a legacy name is accepted); without a phase, the offline one if the
    name exists in several phases. An unknown name is a :class:`ConfigError` naming ``source``."""
    reg = _load()
    order = (phase,) if phase else ("offline", "online", "score")
    for p in order:
        if (p, name) in reg:
            return reg[(p, name)]
    for p in order:
        for algo in algorithms(p):
            if name in algo.legacy_names:
                return algo
    known = ", ".join(names(phase))
    where = f"{phase} algorithm" if phase else "algorithm"
    raise ConfigError(source, "algo", f"unknown {where} '{name}' (one of {known})")


def canonical(name: str, phase: Phase | None = None) -> str:
    """The current name of an algorithm named in a file, legacy names resolved; unknown names pass
    through unchanged (a file made by a newer or a third-party algorithm is still readable)."""
    try:
        return get(name, phase).name
    except ConfigError:
        return name

"""What ``smacrl bench`` times: each learner at a size set, beside its plain reference, with its FLOP count.

Updates are timed on synthetic Hopper-sized batches (obs 11, actions 3) with the real learners'
``update(batch)``. SMAC's score model is replaced by the analytic stand-in
``score(s, a) = -(a - tanh(s[:, :A])) / 0.04`` (the score of a Gaussian of std 0.2 around
``tanh(s[:A])``), which costs nothing next to the critic, so the figure is the actor-critic update alone.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

import torch

from smacrl import registry
from smacrl.bench.flops import update_flops

OBS_DIM, ACT_DIM = 11, 3
"""Hopper's observation and action sizes."""


def label(algo: registry.Algorithm) -> str:
    """A bench row's name: the algorithm's name, qualified by the phase for online learners
    (``online:sac``), since one name may be both an offline and an online learner."""
    return algo.name if algo.phase == "offline" else f"{algo.phase}:{algo.name}"


VARIANTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "smac_adam": ("smac", {"optimizer": "adam"}, "SMAC with AdamW instead of Muon (appendix I ablation)"),
}
"""Bench-only rows: label -> (offline algorithm, config overrides, note)."""
ALGOS = tuple(
    row
    for a in (*registry.algorithms("offline"), *registry.algorithms("online"))
    for row in (label(a), *(v for v, (base, _, _) in VARIANTS.items() if base == a.name and a.phase == "offline"))
)
"""Every row ``smacrl bench`` can time: each registered learner, each followed by its variants."""
QUICK_PAPER_ALGOS = ("smac", "smac_adam", "td3bc")
"""The paper-size rows that ``--quick`` measures (the rest take minutes at paper sizes on a CPU)."""
CORL = "corl"
"""A bench-only size set: issue 10's CORL comparison, i.e. the paper's 512x3 networks at batch 64 with
CORL's 2 critics (and a 512x3 value net for IQL), on the locomotion preset's other settings."""
CORL_UPDATES_PER_S = {"td3bc": 53.0, "iql": 42.0, "cql": 8.3, "calql": 8.2, "online:sac": 9.4}
"""CORL's updates/s at those sizes on the issue author's 2-core machine (issue 10's table); ``online:sac``
is CORL's SAC-N, whose ensemble of 10 is kept."""
CORL_SIZES = dict(ensemble_size=2, batch_size=64, critic_hidden=(512,) * 3, actor_hidden=(512,) * 3, optimizer="adam")


def resolve(row: str) -> tuple[registry.Algorithm, dict[str, Any], str]:
    """A row label -> (registered algorithm, config overrides, note)."""
    if row in VARIANTS:
        name, overrides, note = VARIANTS[row]
        return registry.get(name, "offline"), overrides, note
    phase, _, name = row.rpartition(":")
    return registry.get(name, phase or "offline", source="--algos"), {}, ""  # type: ignore[arg-type]


def analytic_score(obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Stand-in for the diffusion score: the score of ``N(tanh(s[:A]), 0.2^2)`` at ``a``."""
    return -(actions - torch.tanh(obs[:, : actions.shape[1]])) / 0.04


def load_reference() -> ModuleType:
    """The slow-baseline module :mod:`smacrl.bench.reference` (installed with the package)."""
    from smacrl.bench import reference

    return reference


@dataclasses.dataclass
class Case:
    algo: str
    preset: str
    learner: Any
    reference: Any
    batch_size: int
    flops: float
    """Matmul FLOPs of one ``learner.update`` as counted by ``FlopCounterMode`` (:mod:`smacrl.bench.flops`)."""
    note: str = ""
    ns_flops: float = 0.0
    """The part of ``flops`` that is Muon's Newton-Schulz iteration (run in bfloat16)."""


def synthetic_batch(batch_size: int, device: torch.device, gen: torch.Generator) -> dict[str, torch.Tensor]:
    def randn(*shape):
        return torch.randn(*shape, generator=gen).to(device)

    def rand(*shape):
        return torch.rand(*shape, generator=gen).to(device)

    return {
        "obs": randn(batch_size, OBS_DIM),
        "actions": (rand(batch_size, ACT_DIM) * 2 - 1) * 0.99,
        "rewards": randn(batch_size),
        "next_obs": randn(batch_size, OBS_DIM),
        "terminals": (rand(batch_size) < 0.05).float(),
        "w": torch.ones(batch_size, device=device),
        "mc_returns": randn(batch_size) * 10,
    }


def build_case(
    algo: str, preset: str, device: torch.device, ref_mod: ModuleType | None = None, count_flops: bool = True
) -> Case:
    """The real learner of ``algo`` at ``preset``'s sizes, its plain reference, and its FLOP count.

    Online learners take their network sizes from the offline config that produced the checkpoint;
    here SMAC's at the same preset, with the online batch size the paper lists for SMAC checkpoints.
    The FLOPs are counted on a second case built alike (``count_flops=False``: ``flops`` is NaN) by
    :func:`smacrl.bench.flops.update_flops`, so the returned learner has taken no step and the global
    random stream is where it was.
    """
    from smacrl.configs import make_config
    from smacrl.nets.actor_critic import ActorCritic, ActorCriticSpec

    if ref_mod is None:
        ref_mod = load_reference()
    spec_, overrides, note = resolve(algo)
    online = spec_.phase == "online"
    if preset == CORL:
        extra = {"value_hidden": (512,) * 3} if "value_hidden" in _fields(spec_) else {}
        if online:  # SAC-N: the online update on SMAC-sized nets with 10 critics
            nets = make_config("smac", "locomotion", **{**CORL_SIZES, "ensemble_size": 10})
            cfg = make_config(spec_.name, "locomotion", offline_algo="smac", batch_size=64)
        else:
            cfg = nets = make_config(spec_.name, "locomotion", **{**CORL_SIZES, **extra, **overrides})
        note = f"CORL's sizes ({nets.ensemble_size} critics, 512x3, B=64); CORL: {CORL_UPDATES_PER_S[algo]:g} updates/s"
    elif online:
        cfg = make_config(spec_.name, preset, offline_algo="smac")
        nets = make_config("smac", preset)
        note = "nets of smac, batch of smac's online table"
    else:
        cfg = nets = make_config(spec_.name, preset, **overrides)
    spec = ActorCriticSpec.from_config(nets, OBS_DIM, [-1.0] * ACT_DIM, [1.0] * ACT_DIM)
    ac = ActorCritic(spec).to(device)
    assert spec_.build is not None
    learner = spec_.build(ac, cfg, score_fn=analytic_score)  # SMAC: the analytic stand-in, no score model
    if getattr(learner, "score_fn", None) is analytic_score:
        note = (note + "; " if note else "") + "analytic score stand-in"
    ref = reference_for(ref_mod, learner, nets, cfg)
    ref.to(device)
    batch = cfg.batch_size
    if not count_flops:
        return Case(algo, preset, learner, ref, batch, float("nan"), note)
    count = update_flops(lambda: build_case(algo, preset, device, ref_mod, count_flops=False).learner,
                         synthetic_batch(batch, device, torch.Generator().manual_seed(0)))  # fmt: skip
    return Case(algo, preset, learner, ref, batch, count.total, note, count.newton_schulz)


def _fields(algo: registry.Algorithm) -> set[str]:
    return {f.name for f in dataclasses.fields(algo.config)}


def reference_for(ref_mod: ModuleType, learner: Any, nets: Any, cfg: Any) -> Any:
    """The eager reference that does the same arithmetic as ``learner``, chosen by the learner's class
    (a learner bench has no reference for raises, naming it)."""
    from smacrl.offline.cql import CQL
    from smacrl.offline.iql import IQL
    from smacrl.offline.smac import SMAC
    from smacrl.offline.td3bc import TD3BC
    from smacrl.online.awr import AWR
    from smacrl.online.sac import SAC
    from smacrl.online.td3 import TD3
    from smacrl.online.td3bc import TD3BC as TD3BCOnline

    args = (OBS_DIM, ACT_DIM, tuple(nets.actor_hidden), tuple(nets.critic_hidden), nets.ensemble_size)
    act = nets.critic_activation
    muon = getattr(cfg, "optimizer", "adam") == "muon"  # the reference steps the same optimizer, unfused
    if isinstance(learner, SMAC):
        return ref_mod.RefSAC(*args, act, score_fn=analytic_score, kappa=cfg.kappa, alpha_hidden=cfg.alpha_hidden,
                              muon=muon)  # fmt: skip
    if isinstance(learner, IQL):
        return ref_mod.RefIQL(*args, tuple(cfg.value_hidden), cfg.expectile, muon=muon)
    if isinstance(learner, CQL):
        return ref_mod.RefSAC(*args, act, cql_actions=cfg.n_actions, muon=muon)
    if isinstance(learner, SAC):
        return ref_mod.RefSAC(*args, act, muon=muon)
    if isinstance(learner, AWR):
        return ref_mod.RefAWR(*args, act, samples=cfg.value_samples, muon=muon)
    if isinstance(learner, TD3BC | TD3):
        bc = cfg.bc_weight if isinstance(learner, TD3BC | TD3BCOnline) else 0.0
        return ref_mod.RefTD3BC(*args, act, bc_weight=bc, policy_delay=cfg.policy_delay, muon=muon)
    raise ValueError(f"bench has no eager reference for {type(learner).__name__}")

"""``smacrl bench``: how fast the learners, the replay sampler and evaluation run on this machine.

Every figure is printed beside a reference measured in the same process (``benchmarks/reference.py``:
Python loops over ensemble members, a host sync per step, ``Adam(foreach=False)``), so the ratio
``ours / reference`` stays meaningful on a shared or noisy machine even when absolute rates drift.
Timed repeats of the learner and its reference are interleaved for the same reason.

Updates are timed on synthetic Hopper-sized batches (obs 11, actions 3) with the real learners'
``update(batch)``. SMAC's score model is replaced by the analytic stand-in
``score(s, a) = -(a - tanh(s[:, :A])) / 0.04`` (the score of a Gaussian of std 0.2 around
``tanh(s[:A])``), which costs nothing next to the critic, so the figure is the actor-critic update alone.

FLOP counting rule (matmuls only, ``2 * rows * in * out`` per linear layer; elementwise work, the
optimizers' Adam arithmetic and the score model are not counted):

- a forward pass without gradient counts ``1 F``; a forward pass followed by a backward pass through
  weights and inputs counts ``3 F`` (the backward is two matmuls per layer);
- SMAC's score-matching term counts ``6 F`` of the critic: forward, the input-gradient pass with
  ``create_graph`` (``1 F``), and the backward through both graphs (``2 x 2 F``);
- the actor's loss back-propagates through the critic, whose weight gradients autograd also forms:
  ``3 F`` of the critic and ``3 F`` of the actor;
- Muon's Newton-Schulz iteration is counted for every hidden matrix ``m x n`` (``m <= n``):
  ``ns_steps * (4 m^2 n + 2 m^3)`` per ensemble member;
- TD3's delayed actor step is averaged over ``policy_delay`` updates; it asks autograd for the actor's
  gradients only, so the critic counts ``2 F`` there (no weight gradients).

``% of matmul peak`` is the time the update's FLOPs would take at this machine's matmul rates,
divided by the time it takes: network FLOPs at the float32 2048x2048 matmul rate, Newton-Schulz FLOPs
at the bfloat16 ``[E, H, H]`` batched-matmul rate Muon runs them at (both measured in the same run).
100% would mean the update is nothing but large matmuls at full speed.

The ``matmul`` rows put that peak in context: the float32 rate of the critic's hidden layer at the
update's own batch size (its forward ``x W``, input gradient ``g W^T`` and weight gradient ``x^T g``
together). Small batches (TD3+BC's 32 rows per member) cannot reach the 2048x2048 rate on a CPU, so an
update cannot either; the ratio column gives the fraction of the large-matmul peak those GEMMs reach.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

OBS_DIM, ACT_DIM = 11, 3
"""Hopper's observation and action sizes."""
OFFLINE = ("smac", "smac_adam", "iql", "cql", "calql", "td3bc")
ONLINE = ("sac", "td3", "td3bc_online", "awr")
ALGOS = OFFLINE + ONLINE
QUICK_PAPER_ALGOS = ("smac", "smac_adam", "td3bc")
"""The paper-size learners that ``--quick`` measures (the rest take minutes at paper sizes on a CPU)."""
CORL = "corl"
"""A bench-only size set: issue 10's CORL comparison, i.e. the paper's 512x3 networks at batch 64 with
CORL's 2 critics (and a 512x3 value net for IQL), on the locomotion preset's other settings."""
CORL_UPDATES_PER_S = {"td3bc": 53.0, "iql": 42.0, "cql": 8.3, "calql": 8.2, "sac": 9.4}
"""CORL's updates/s at those sizes on the issue author's 2-core machine (issue 10's table); ``sac`` is
CORL's SAC-N, whose ensemble of 10 is kept."""
CORL_SIZES = dict(ensemble_size=2, batch_size=64, critic_hidden=(512,) * 3, actor_hidden=(512,) * 3, optimizer="adam")
REFERENCE_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "reference.py"


def analytic_score(obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Stand-in for the diffusion score: the score of ``N(tanh(s[:A]), 0.2^2)`` at ``a``."""
    return -(actions - torch.tanh(obs[:, : actions.shape[1]])) / 0.04


def load_reference():
    """The slow-baseline module ``benchmarks/reference.py`` (it is not part of the installed package)."""
    if not REFERENCE_PATH.exists():
        raise FileNotFoundError(f"{REFERENCE_PATH} not found: smacrl bench needs the source checkout")
    spec = importlib.util.spec_from_file_location("smacrl_bench_reference", REFERENCE_PATH)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- FLOP counting
def mlp_flops(rows: int, sizes: list[int], ensemble: int = 1) -> float:
    """Forward matmul FLOPs of an MLP with layer widths ``sizes`` on ``rows`` inputs."""
    return 2.0 * rows * ensemble * sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))


def muon_flops(sizes: list[int], ensemble: int = 1, ns_steps: int = 5) -> float:
    """Newton-Schulz FLOPs for the hidden matrices (all but the first and last layer)."""
    total = 0.0
    for a, b in list(zip(sizes[:-1], sizes[1:], strict=False))[1:-1]:
        m, n = min(a, b), max(a, b)
        total += ns_steps * (4.0 * m * m * n + 2.0 * m**3)
    return total * ensemble


def newton_schulz_flops(algo: str, nets: Any, cfg: Any) -> float:
    """The Newton-Schulz part of :func:`update_flops` (zero without Muon)."""
    if getattr(cfg, "optimizer", "adam") != "muon":
        return 0.0
    critic = [OBS_DIM + ACT_DIM, *nets.critic_hidden, 1]
    total = muon_flops(critic, nets.ensemble_size) + muon_flops([OBS_DIM, *nets.actor_hidden, 2 * ACT_DIM])
    if algo in ("smac", "smac_adam"):
        total += muon_flops([OBS_DIM, *cfg.alpha_hidden, 1])
    elif algo == "iql":
        total += muon_flops([OBS_DIM, *cfg.value_hidden, 1])
    return total


def update_flops(algo: str, nets: Any, cfg: Any, batch: int) -> float:
    """Matmul FLOPs of one ``update`` of ``algo`` (see the module docstring for the rule)."""
    e = nets.ensemble_size
    critic = [OBS_DIM + ACT_DIM, *nets.critic_hidden, 1]
    actor = [OBS_DIM, *nets.actor_hidden, 2 * ACT_DIM]

    def fc(rows: int) -> float:
        return mlp_flops(rows, critic, e)

    def fa(rows: int) -> float:
        return mlp_flops(rows, actor)

    opt = 0.0
    if getattr(cfg, "optimizer", "adam") == "muon":
        opt = muon_flops(critic, e) + muon_flops(actor)
    if algo in ("smac", "smac_adam"):
        alpha = [OBS_DIM, *cfg.alpha_hidden, 1]
        if cfg.optimizer == "muon":
            opt += muon_flops(alpha)
        return 13 * fc(batch) + fa(batch) + fa(batch // 2) + 3 * fa(batch) + 3 * mlp_flops(batch, alpha) + opt
    if algo == "sac":
        return 7 * fc(batch) + 4 * fa(batch) + opt
    if algo in ("cql", "calql"):
        n = cfg.n_actions
        return 7 * fc(batch) + 3 * fc(3 * n * batch) + 4 * fa(batch) + 2 * fa(n * batch) + opt
    if algo in ("td3bc", "td3", "td3bc_online"):
        d = cfg.policy_delay
        # the actor step back-propagates into the actor only: no critic weight gradients (2 F of the critic)
        return fa(batch) + 4 * fc(batch) + (2 * fc(batch) + 3 * fa(batch)) / d + opt
    if algo == "iql":
        value = [OBS_DIM, *cfg.value_hidden, 1]
        if cfg.optimizer == "muon":
            opt += muon_flops(value)
        return 4 * fc(batch) + 5 * mlp_flops(batch, value) + 3 * fa(batch) + opt
    if algo == "awr":
        k = cfg.value_samples
        return 5 * fc(batch) + fc(k * batch) + 4 * fa(batch) + fa(k * batch) + opt
    raise ValueError(f"no FLOP count for '{algo}'")


# ----------------------------------------------------------------------------- building the cases
@dataclasses.dataclass
class Case:
    algo: str
    preset: str
    learner: Any
    reference: Any
    batch_size: int
    flops: float
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


def build_case(algo: str, preset: str, device: torch.device, ref_mod) -> Case:
    """The real learner of ``algo`` at ``preset``'s sizes, its plain reference, and its FLOP count.

    Online learners take their network sizes from the offline config that produced the checkpoint;
    here SMAC's at the same preset, with the online batch size the paper lists for SMAC checkpoints.
    """
    from smacrl.configs import make_config
    from smacrl.nets.actor_critic import ActorCritic, ActorCriticSpec

    note = ""
    if preset == CORL:
        extra = {"value_hidden": (512,) * 3} if algo == "iql" else {"ensemble_size": 10} if algo == "sac" else {}
        if algo == "sac":  # SAC-N: the online SAC update on SMAC-sized nets with 10 critics
            nets = make_config("smac", "locomotion", **{**CORL_SIZES, **extra})
            cfg = make_config("sac", "locomotion", offline_algo="smac", batch_size=64)
        else:
            cfg = nets = make_config(algo, "locomotion", **{**CORL_SIZES, **extra})
        n_critics = nets.ensemble_size
        note = f"CORL's sizes ({n_critics} critics, 512x3, B=64); CORL: {CORL_UPDATES_PER_S[algo]:g} updates/s"
    elif algo in ONLINE:
        cfg = make_config(algo, preset, offline_algo="smac")
        nets = make_config("smac", preset)
        note = "nets of smac, batch of smac's online table"
    elif algo == "smac_adam":
        cfg = nets = make_config("smac", preset, optimizer="adam")
        note = "SMAC with AdamW instead of Muon (appendix I ablation)"
    else:
        cfg = nets = make_config(algo, preset)
    if algo.startswith("smac"):
        note = (note + "; " if note else "") + "analytic score stand-in"
    spec = ActorCriticSpec.from_config(nets, OBS_DIM, [-1.0] * ACT_DIM, [1.0] * ACT_DIM)
    ac = ActorCritic(spec).to(device)
    args = (OBS_DIM, ACT_DIM, tuple(nets.actor_hidden), tuple(nets.critic_hidden), nets.ensemble_size)
    act = nets.critic_activation
    muon = getattr(cfg, "optimizer", "adam") == "muon"  # the reference steps the same optimizer, unfused
    if algo in ("smac", "smac_adam"):
        from smacrl.offline.smac import SMAC

        learner = SMAC(ac, cfg, analytic_score)
        ref = ref_mod.RefSAC(*args, act, score_fn=analytic_score, kappa=cfg.kappa, alpha_hidden=cfg.alpha_hidden,
                             muon=muon)  # fmt: skip
    elif algo == "iql":
        from smacrl.offline.iql import IQL

        learner = IQL(ac, cfg)
        ref = ref_mod.RefIQL(*args, tuple(cfg.value_hidden), cfg.expectile, muon=muon)
    elif algo in ("cql", "calql"):
        from smacrl.offline.cql import CQL

        learner = CQL(ac, cfg, name=algo)
        ref = ref_mod.RefSAC(*args, act, cql_actions=cfg.n_actions, muon=muon)
    elif algo == "td3bc":
        from smacrl.offline.td3bc import TD3BC

        learner = TD3BC(ac, cfg)
        ref = ref_mod.RefTD3BC(*args, act, bc_weight=cfg.bc_weight, policy_delay=cfg.policy_delay, muon=muon)
    else:
        from smacrl.online.loop import make_online_learner

        learner = make_online_learner(algo, ac, cfg)
        if algo == "sac":
            ref = ref_mod.RefSAC(*args, act, muon=muon)
        elif algo == "awr":
            ref = ref_mod.RefAWR(*args, act, samples=cfg.value_samples, muon=muon)
        else:
            bc = cfg.bc_weight if algo == "td3bc_online" else 0.0
            ref = ref_mod.RefTD3BC(*args, act, bc_weight=bc, policy_delay=cfg.policy_delay, muon=muon)
    ref.to(device)
    batch = cfg.batch_size
    flops = update_flops(algo, nets, cfg, batch)
    return Case(algo, preset, learner, ref, batch, flops, note, newton_schulz_flops(algo, nets, cfg))


# ----------------------------------------------------------------------------- timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    fns: dict[str, Callable[[int], Any]], warmup: int, repeats: int, per_repeat: int, device: torch.device
) -> dict[str, list[float]]:
    """Calls per second of each ``fn(i)``, one figure per repeat; the functions take turns inside each
    repeat so a change of machine load affects all of them alike."""
    for fn in fns.values():
        for i in range(warmup):
            fn(i)
    _sync(device)
    rates: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for i in range(per_repeat):
                fn(r * per_repeat + i)
            _sync(device)
            rates[name].append(per_repeat / (time.perf_counter() - t0))
    return rates


def matmul_flops_per_s(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """Best float32 FLOP/s over repeats of an ``n x n`` by ``n x n`` matmul on ``device``."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    reps = repeats * (20 if device.type == "cuda" else 1)
    rates = time_interleaved({"mm": lambda i: a @ b}, 2, reps, 1, device)["mm"]
    return 2.0 * n**3 * max(rates)  # the best repeat: the rate the hardware reaches when the machine lets it


def bf16_bmm_flops_per_s(device: torch.device, e: int, n: int, repeats: int = 5) -> float:
    """Best bfloat16 FLOP/s of an ``[e, n, n] x [e, n, n]`` batched matmul (Muon's Newton-Schulz shape)."""
    a = torch.randn(e, n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(e, n, n, device=device, dtype=torch.bfloat16)
    reps = repeats * (20 if device.type == "cuda" else 1)
    rates = time_interleaved({"bmm": lambda i: torch.bmm(a, b)}, 2, reps, 1, device)["bmm"]
    return 2.0 * e * n**3 * max(rates)


def layer_gemm_flops_per_s(device: torch.device, e: int, rows: int, n: int, repeats: int = 5) -> float:
    """Best float32 FLOP/s of one ensemble hidden layer's three GEMMs at ``rows`` rows per member: the
    forward ``x W``, the input gradient ``g W^T`` and the weight gradient ``x^T g``."""
    x = torch.randn(e, rows, n, device=device)
    g = torch.randn(e, rows, n, device=device)
    w = torch.randn(e, n, n, device=device)

    def trio(i: int) -> None:
        torch.bmm(x, w)
        torch.bmm(g, w.mT)
        torch.bmm(x.mT, g)

    reps = repeats * (20 if device.type == "cuda" else 1)
    rates = time_interleaved({"trio": trio}, 2, reps, 1, device)["trio"]
    return 3 * 2.0 * e * rows * n * n * max(rates)


@dataclasses.dataclass
class Row:
    section: str
    name: str
    size: str
    unit: str
    median: float
    low: float
    high: float
    reference: float
    gflop: float = float("nan")
    peak_fraction: float = float("nan")
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.median / self.reference

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ratio": self.ratio}


def _row(section, name, size, unit, ours: list[float], ref: list[float], **kw) -> Row:
    return Row(section, name, size, unit, statistics.median(ours), min(ours), max(ours), statistics.median(ref), **kw)


def bench_updates(
    case: Case, device, warmup, repeats, per_repeat, peak, n_batches: int = 4, ns_peak: float | None = None
) -> Row:
    gen = torch.Generator().manual_seed(0)
    batches = [synthetic_batch(case.batch_size, device, gen) for _ in range(n_batches)]
    rates = time_interleaved(
        {
            "ours": lambda i: case.learner.update(batches[i % n_batches]),
            "ref": lambda i: case.reference.update(batches[i % n_batches]),
        },
        warmup,
        repeats,
        per_repeat,
        device,
    )
    med = statistics.median(rates["ours"])
    return _row(
        "update",
        case.algo,
        f"{case.preset} B={case.batch_size}",
        "updates/s",
        rates["ours"],
        rates["ref"],
        gflop=case.flops / 1e9,
        peak_fraction=med * ((case.flops - case.ns_flops) / peak + case.ns_flops / (ns_peak or peak)),
        note=case.note,
    )


def bench_replay(device, size: int, repeats: int, per_repeat: int, ref_mod) -> list[Row]:
    from smacrl.data.replay import MixedSampler, ReplayBuffer

    gen = torch.Generator().manual_seed(1)
    fields = synthetic_batch(size, torch.device("cpu"), gen)
    offline = ReplayBuffer(size, OBS_DIM, ACT_DIM, device, extra=("w", "mc_returns"))
    offline.add_batch(fields)
    online = ReplayBuffer(size, OBS_DIM, ACT_DIM, device)
    online.add_batch({k: v for k, v in fields.items() if k in online.storage})
    mixed = MixedSampler(offline, online, 0.5)
    ref_size = min(size, 100_000)  # building the list reference is slow; its sampling cost does not grow with size
    listed = ref_mod.ListReplay({k: v[:ref_size] for k, v in fields.items()})
    rows = []
    for name, fn, b in (("ReplayBuffer.sample", offline.sample, 256), ("MixedSampler.sample", mixed.sample, 1024)):
        rates = time_interleaved({"ours": lambda i, fn=fn, b=b: fn(b), "ref": lambda i, b=b: listed.sample(b)}, 2,
                                 repeats, per_repeat, device)  # fmt: skip
        rows.append(_row("replay", name, f"B={b} of {size:,}", "batches/s", rates["ours"], rates["ref"]))
    return rows


def bench_eval(env_id: str, preset: str, device, episodes: int, repeats: int, ref_mod) -> Row:
    from smacrl.configs import make_config
    from smacrl.data.tasks import env_factory
    from smacrl.eval.rollout import EnvPool, evaluate
    from smacrl.nets.actor_critic import ActorCritic, ActorCriticSpec

    factory = env_factory(env_id)
    env = factory()
    low, high = env.action_space.low.tolist(), env.action_space.high.tolist()
    obs_dim = env.observation_space.shape[0]
    env.close()
    torch.manual_seed(0)
    ac = ActorCritic(ActorCriticSpec.from_config(make_config("smac", preset), obs_dim, low, high)).to(device)
    pool = EnvPool(factory)  # kept alive across evaluations, as the training loops' periodic evals keep theirs
    evaluate(ac, make_env=pool, episodes=episodes, seed=0, max_envs=episodes)  # builds the envs (untimed)
    ours, ref = [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        res = evaluate(ac, make_env=pool, episodes=episodes, seed=r, max_envs=episodes)
        ours.append(float(res.lengths.sum()) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        steps = ref_mod.sequential_evaluate(ac, factory, episodes, seed=r)
        ref.append(steps / (time.perf_counter() - t0))
    note = f"untrained policy; {episodes} envs, {pool.workers} stepping thread(s), batched policy; ref: one env"
    pool.close()
    return _row("eval", env_id, f"{episodes} episodes, {preset} actor", "env-steps/s", ours, ref,
                note=note)  # fmt: skip


# ----------------------------------------------------------------------------- the run
def machine_info(device: torch.device) -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), model)
    except (OSError, subprocess.SubprocessError):
        pass
    info = {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "python": sys.version.split()[0],
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def run_bench(
    quick: bool = True,
    device: str = "cpu",
    presets: tuple[str, ...] = ("cpu", "locomotion", CORL),
    algos: tuple[str, ...] = ALGOS,
    warmup: int | None = None,
    repeats: int | None = None,
    updates: int | None = None,
    replay_size: int | None = None,
    eval_episodes: int | None = None,
    envs: tuple[str, ...] = ("Hopper-v5", "Pendulum-v1"),
    threads: int | None = None,
    emit: Callable[[str], None] = print,
    compile: bool = False,
) -> dict[str, Any]:
    """Measure everything and return ``{"machine", "load_before", "load_after", "matmul_gflops", "rows"}``;
    ``emit`` receives each printed line as soon as it is measured."""
    from smacrl.nets.compile import compile_learner
    from smacrl.runtime import resolve_device

    dev = resolve_device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    ref_mod = load_reference()
    warmup = (2 if quick else 5) if warmup is None else warmup
    repeats = (3 if quick else 5) if repeats is None else repeats
    updates = (5 if quick else 20) if updates is None else updates
    replay_size = (100_000 if quick else 1_000_000) if replay_size is None else replay_size
    eval_episodes = (8 if quick else 16) if eval_episodes is None else eval_episodes
    info = machine_info(dev)
    info["compile"] = compile
    result: dict[str, Any] = {"machine": info, "load_before": load_average(), "quick": quick, "rows": []}
    emit(" ".join(f"{k}={v}" for k, v in info.items()) + f" | load average {result['load_before']}")
    peak = matmul_flops_per_s(dev)
    result["matmul_gflops"] = peak / 1e9
    emit(f"float32 matmul 2048^3: {peak / 1e9:.1f} GFLOP/s (the peak the update rows are compared with)")
    emit(_header())

    def add(row: Row) -> None:
        result["rows"].append(row)
        emit(_format(row))

    bf16_rates: dict[tuple[int, int], float] = {}
    shapes: dict[tuple[int, int, int], str] = {}

    # (algo, size set, warm-up updates, updates per timed repeat); paper and CORL sizes are ~100x and
    # ~10x costlier per update than cpu sizes, so fewer updates per repeat keep the run bounded
    jobs = [
        (algo, preset, warmup if preset == "cpu" else 1, updates if preset == "cpu" else max(1, updates // 10))
        for preset in presets
        if preset != CORL
        for algo in algos
        if not (quick and preset != "cpu" and algo not in QUICK_PAPER_ALGOS)
    ]
    if not quick and CORL in presets:
        jobs += [(algo, CORL, 1, max(1, updates // 4)) for algo in CORL_UPDATES_PER_S if algo in algos]
    for algo, preset, warm, n in jobs:
        torch.manual_seed(0)
        try:
            if compile:
                torch._dynamo.reset()  # each learner compiles afresh (the recompile limit is per process)
            case = build_case(algo, preset, dev, ref_mod)
            if compile_learner(case.learner, compile, log=lambda line: None):
                case.note = (case.note + "; " if case.note else "") + "critics compiled"
            spec = case.learner.ac.spec
            ns_peak = None
            if case.ns_flops:
                key = (spec.ensemble_size, max(spec.critic_hidden))
                if key not in bf16_rates:
                    bf16_rates[key] = bf16_bmm_flops_per_s(dev, *key)
                ns_peak = bf16_rates[key]
            add(bench_updates(case, dev, warm, repeats, n, peak, ns_peak=ns_peak))
            shapes.setdefault((spec.ensemble_size, case.batch_size, max(spec.critic_hidden)), case.algo)
        except Exception as e:  # one broken learner should not hide the others' figures
            result.setdefault("errors", []).append(f"{algo}/{preset}: {type(e).__name__}: {e}")
            emit(f"update  {algo:22} {preset:26} FAILED: {type(e).__name__}: {e}")
    for (e, rows, n), algo in shapes.items():
        g = layer_gemm_flops_per_s(dev, e, rows, n) / 1e9
        note = f"float32, first used by {algo}; reference: 2048x2048 matmul"
        add(Row("matmul", "critic layer GEMMs", f"E={e} B={rows} H={n}", "GFLOP/s", g, g, g, peak / 1e9, note=note))
    for (e, n), rate in bf16_rates.items():
        g = rate / 1e9
        note = "the rate Muon's Newton-Schulz FLOPs are counted at; reference: float32 2048x2048"
        add(Row("matmul", "Newton-Schulz bmm", f"[{e},{n},{n}] bf16", "GFLOP/s", g, g, g, peak / 1e9, note=note))
    for row in bench_replay(dev, replay_size, repeats, max(10, updates * 10), ref_mod):
        add(row)
    for env_id in envs:
        actor_preset = "cpu" if "cpu" in presets else next((p for p in presets if p != CORL), "locomotion")
        add(bench_eval(env_id, actor_preset, dev, eval_episodes, max(2, repeats // 2),
                       ref_mod))  # fmt: skip
    result["load_after"] = load_average()
    emit(f"load average after: {result['load_after']}")
    return result


def _header() -> str:
    return f"{'':7} {'name':22} {'size':26} {'ours median [min-max]':>32} {'reference':>10} {'ratio':>7} " \
           f"{'GFLOP/upd':>9} {'%peak':>6}"  # fmt: skip


def _format(row: Row) -> str:
    gf = f"{row.gflop:9.3f}" if math.isfinite(row.gflop) else f"{'-':>9}"
    pk = f"{100 * row.peak_fraction:5.1f}%" if math.isfinite(row.peak_fraction) else f"{'-':>6}"
    ours = f"{row.median:9.1f} [{row.low:.1f}-{row.high:.1f}] {row.unit}"
    return f"{row.section:7} {row.name:22} {row.size:26} {ours:>32} {row.reference:10.1f} {row.ratio:6.2f}x {gf} {pk}"


def to_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "# smacrl bench results",
        "",
        f"Written by `smacrl bench{'' if not result['quick'] else ' --quick'}`. "
        "Each rate is the median over timed repeats after warm-up, with its [min-max] spread, beside the plain "
        "reference of `benchmarks/reference.py` timed in the same process (repeats interleaved). "
        "`ratio` = ours / reference. FLOPs count matmuls only (rule in `smacrl/bench.py`); "
        "`% of matmul peak` is the time the update's FLOPs would take at the matmul rates measured in the same run "
        "(float32 2048x2048 for the networks, the bfloat16 `matmul` row for Muon's Newton-Schulz) over the time "
        "the update takes. The `matmul` rows give the float32 rate of a critic layer's GEMMs at each update's "
        "own batch size, against the 2048x2048 rate: small batches cap what an update can reach.",
        "",
        f"- machine: {m['cpu']}, {m['cores']} cores; device {m['device']}{' (' + m['gpu'] + ')' if 'gpu' in m else ''}",
        f"- torch {m['torch']}, {m['threads']} threads, Python {m['python']}"
        + ("; critics torch.compile'd (`--compile`)" if m.get("compile") else ""),
        f"- load average (1, 5, 15 min) before: {result['load_before']}; after: {result.get('load_after', 'n/a')}",
        f"- float32 matmul: {result['matmul_gflops']:.1f} GFLOP/s",
        "",
        "| section | name | size | ours: median [min-max] | reference | ratio | GFLOP/update | % of matmul peak "
        "| note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        gf = f"{r.gflop:.3f}" if math.isfinite(r.gflop) else "-"
        pk = f"{100 * r.peak_fraction:.1f}%" if math.isfinite(r.peak_fraction) else "-"
        lines.append(
            f"| {r.section} | {r.name} | {r.size} | {r.median:.1f} [{r.low:.1f}-{r.high:.1f}] {r.unit} | "
            f"{r.reference:.1f} | {r.ratio:.2f}x | {gf} | {pk} | {r.note} |"
        )
    return "\n".join(lines) + "\n"


def write_result(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        payload = {**result, "rows": [r.as_dict() for r in result["rows"]]}
        path.write_text(json.dumps(payload, indent=2) + "\n")
    else:
        path.write_text(to_markdown(result))


# ----------------------------------------------------------------------------- CLI
def cmd_bench(args: argparse.Namespace, rest: list[str]) -> int:
    if rest:
        args.parser.error(f"unrecognized arguments: {' '.join(rest)}")
    presets = tuple(args.preset) if args.preset else ("cpu", "locomotion", CORL)
    result = run_bench(
        quick=args.quick,
        device=args.device,
        presets=presets,
        algos=tuple(args.algos) if args.algos else ALGOS,
        warmup=args.warmup,
        repeats=args.repeats,
        updates=args.updates,
        replay_size=args.replay_size,
        eval_episodes=args.eval_episodes,
        threads=args.threads,
        emit=lambda line: print(line, flush=True),
        compile=args.compile,
    )
    out = args.out
    if out is None and not args.quick:
        out = str(REFERENCE_PATH.parent / "RESULTS.md")
    if out:
        write_result(result, Path(out))
        print(f"wrote {out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from smacrl.cli import add_command
    from smacrl.configs import PRESET_NAMES

    p = add_command(subparsers, "bench", cmd_bench, "time the learners, replay sampling and evaluation")
    p.add_argument(
        "--quick", action="store_true", help="cpu sizes, plus SMAC (Muon, AdamW) and TD3+BC at paper sizes (<2 min)"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--preset", action="append", choices=(*PRESET_NAMES, CORL),
                   help="repeatable (default: cpu, locomotion, and corl (CORL sizes) in full runs)")  # fmt: skip
    p.add_argument("--algos", nargs="+", choices=ALGOS, default=None, help="restrict the learners measured")
    p.add_argument("--warmup", type=int, default=None, help="untimed updates before timing")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (median and spread over these)")
    p.add_argument("--updates", type=int, default=None, help="updates per timed repeat at cpu sizes")
    p.add_argument("--replay-size", type=int, default=None, help="rows in the sampled replay buffers")
    p.add_argument("--eval-episodes", type=int, default=None, help="episodes per evaluation timing")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's own)")
    p.add_argument("--compile", action="store_true", help="time the learners with torch.compile'd critics "
                   "(what --compile does in training; SMAC stays eager)")  # fmt: skip
    p.add_argument("--out", default=None, help="write results (.md table or .json); full runs default to "
                   "benchmarks/RESULTS.md")  # fmt: skip

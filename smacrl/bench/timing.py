"""Timing for ``smacrl bench``: interleaved repeats, the matmul rates ``%peak`` is priced at, and the rows.

Every figure is timed beside a reference in the same process (:mod:`smacrl.bench.reference`), and
timed repeats of the two are interleaved, so the ratio ``ours / reference`` stays meaningful on a
shared or noisy machine even when absolute rates drift.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from smacrl.bench.cases import ACT_DIM, OBS_DIM, Case, synthetic_batch


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

"""Eager vs ``--compile`` (torch.compile'd critics) for the same learner, alternating in one process.

    python benchmarks/compile_ab.py sac:cpu td3:cpu iql:cpu td3bc:cpu sac:corl td3bc:corl [--out FILE]

Each case builds the bench's learner (``smacrl.bench.build_case``), compiles its critics once, then
times blocks of updates with the compiled call switched on and off in turn (``repeats`` blocks each),
so machine-load drift hits both alike. Prints median updates/s of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from smacrl.bench import build_case, synthetic_batch
from smacrl.nets.compile import compile_learner


def ab(algo: str, preset: str, repeats: int, seconds: float) -> tuple[float, float]:
    torch._dynamo.reset()
    torch.manual_seed(0)
    case = build_case(algo, preset, torch.device("cpu"), count_flops=False)
    gen = torch.Generator().manual_seed(0)
    batches = [synthetic_batch(case.batch_size, torch.device("cpu"), gen) for _ in range(4)]
    learner = case.learner
    t0 = time.perf_counter()
    learner.update(batches[0])
    per_update = time.perf_counter() - t0
    n = max(2, int(seconds / max(per_update, 1e-4)))
    modules = [learner.ac.critic, learner.ac.critic_target]
    assert compile_learner(learner, True)
    for i in range(4):  # compile (every batch has the same shapes, so once)
        learner.update(batches[i])
    compiled = [m._compiled_call_impl for m in modules]
    rates: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(repeats):
        for mode in ("eager", "compiled"):
            for m, c in zip(modules, compiled, strict=True):
                m._compiled_call_impl = None if mode == "eager" else c
            t0 = time.perf_counter()
            for i in range(n):
                learner.update(batches[i % 4])
            rates[mode].append(n / (time.perf_counter() - t0))
    return statistics.median(rates["eager"]), statistics.median(rates["compiled"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cases", nargs="+", help="algo:preset, e.g. sac:cpu (presets: cpu, locomotion, corl)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seconds", type=float, default=1.5, help="approximate length of one timed block")
    p.add_argument("--out", default=None, help="append the markdown table to this file")
    args = p.parse_args()
    lines = ["| learner | size | eager updates/s | compiled updates/s | compiled / eager |", "|---|---|---|---|---|"]
    for spec in args.cases:
        algo, preset = spec.split(":")
        eager, comp = ab(algo, preset, args.repeats, args.seconds)
        lines.append(f"| {algo} | {preset} | {eager:.1f} | {comp:.1f} | {comp / eager:.2f}x |")
        print(lines[-1], flush=True)
    if args.out:
        with Path(args.out).open("a", encoding="utf-8") as f:
            f.write(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

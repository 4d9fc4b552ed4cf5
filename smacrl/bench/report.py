"""The ``smacrl bench`` run, its printed and written report, and the command line.

``% of matmul peak`` is the time the update's FLOPs (:mod:`smacrl.bench.flops`) would take at this
machine's matmul rates, divided by the time it takes: network FLOPs at the float32 2048x2048 matmul
rate, Newton-Schulz FLOPs at the bfloat16 ``[E, H, H]`` batched-matmul rate Muon runs them at (both
measured in the same run). 100% would mean the update is nothing but large matmuls at full speed.

The ``matmul`` rows put that peak in context: the float32 rate of the critic's hidden layer at the
update's own batch size (its forward ``x W``, input gradient ``g W^T`` and weight gradient ``x^T g``
together). Small batches (TD3+BC's 32 rows per member) cannot reach the 2048x2048 rate on a CPU, so an
update cannot either; the ratio column gives the fraction of the large-matmul peak those GEMMs reach.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from smacrl.bench.cases import ALGOS, CORL, CORL_UPDATES_PER_S, QUICK_PAPER_ALGOS, build_case, load_reference
from smacrl.bench.flops import verify_counter
from smacrl.bench.timing import (
    Row,
    bench_eval,
    bench_replay,
    bench_updates,
    bf16_bmm_flops_per_s,
    layer_gemm_flops_per_s,
    matmul_flops_per_s,
)

BENCHMARKS_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
"""The source checkout's ``benchmarks/`` folder, where full runs write ``RESULTS.md`` by default (an
installed package has none: pass ``--out``)."""


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
    result["flop_check"] = verify_counter()  # raises if FlopCounterMode's counts stop matching the analytic ones
    emit(result["flop_check"])
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
        "reference of `smacrl/bench/reference.py` timed in the same process (repeats interleaved). "
        "`ratio` = ours / reference. FLOPs are the matmul FLOPs of one real update counted by torch's "
        "`FlopCounterMode` (what it covers: `smacrl/bench/flops.py`); "
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
        f"- {result.get('flop_check', 'FLOP counter check: n/a')}",
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
        if BENCHMARKS_DIR.is_dir():
            out = str(BENCHMARKS_DIR / "RESULTS.md")
        else:
            print("no source checkout's benchmarks/ folder: results not written (pass --out FILE)")
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
                   "benchmarks/RESULTS.md in a source checkout")  # fmt: skip

"""The tables of experiments/smac_ab.py (issue 15), made from the committed ``config.json``,
``metrics.jsonl`` and ``drift.jsonl`` files under results/smac_ab (docs/smac_readings.md's last section)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from smac_ab_design import (
    ARM_READS,
    ARM_UPDATES,
    ARM_VARIANT,
    ARMS,
    DRIFT_KINDS,
    DRIFT_STEPS,
    HOPPER,
    MAZE,
    RESULTS,
    SCORE_MODELS,
    SCORE_VARIANTS,
    SEEDS,
    TASKS,
    TRANSFER_TASKS,
    VARIANTS,
    arm_phase,
    score_dir,
)

from smacrl.configs.presets import LAPTOP_STEPS
from smacrl.logger import read_metrics


def _rows(path: Path) -> list[dict]:
    return read_metrics(path) if path.exists() else []


def _evals(rows: list[dict], key: str) -> dict[int, float]:
    return {r["step"]: r[key] for r in rows if key in r}


def _last(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if key in r]
    return vals[-1] if vals else None


def _regret(online: list[float]) -> float:
    """Regret against a perfect score: the mean of 1 - J over the online evaluations."""
    return sum(1.0 - x for x in online) / max(1, len(online))


def mean_and_se(xs: list[float]) -> tuple[float, float]:
    """The mean of ``xs`` and its standard error (sample standard deviation / sqrt(n); 0 for one value)."""
    m = sum(xs) / len(xs)
    se = (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 / len(xs) ** 0.5 if len(xs) > 1 else 0.0
    return m, se


def mean_se(xs: list[float]) -> str:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    if not xs:
        return "—"
    m, se = mean_and_se(xs)
    digits = 2 if abs(m) < 10 else 0
    if len(xs) == 1:  # no standard error from one value
        return f"{m:.{digits}f} (n=1)"
    return f"{m:.{digits}f} ± {se:.{digits}f} (n={len(xs)})"


# budget -> the evaluation steps its offline table shows; a variant's budget is its name's suffix
BUDGETS = {"3k": (1000, 2000, 3000), "10k": (3000, 6000, 10000), "laptop": (5000, 10000, 20000)}


def _budget(variant: str) -> str:
    return "laptop" if variant.endswith("_laptop") else "10k" if variant.endswith("_10k") else "3k"


def offline_table(task: str, budget: str = "3k") -> list[str]:
    key = "eval/success_rate" if "pointmaze" in task else "eval/return_mean"
    steps = BUDGETS[budget]
    last = f"{steps[-1] // 1000}k"
    title = {"3k": "", "10k": " at 10k updates", "laptop": " at the laptop preset (20k updates)"}[budget]
    norm = task == HOPPER  # D4RL-normalized return beside the raw one
    lines = [
        f"### {task}: offline{title} ({key.split('/')[1]}, mean ± s.e. over seeds)",
        "",
        "| variant | "
        + " | ".join(f"at {n // 1000}k" for n in steps)
        + (f" | normalized at {last}" if norm else "")
        + f" | alpha at {last} | cos(policy) at {last} | q_spread at {last} | entropy at {last} |",
        "|---|---|---|---|" + ("---|" if norm else "") + "---|---|---|---|",
    ]
    for v in VARIANTS:
        if _budget(v) != budget or v in SCORE_VARIANTS:  # those have a table of their own (score_table)
            continue
        runs = [_rows(RESULTS / task / v / f"s{s}" / "offline" / "metrics.jsonl") for s in SEEDS]
        runs = [r for r in runs if r]
        if not runs:
            continue
        ev = [_evals(r, key) for r in runs]
        cells = [mean_se([e.get(step) for e in ev]) for step in steps]
        if norm:
            cells.append(mean_se([_evals(r, "eval/normalized_return").get(steps[-1]) for r in runs]))
        diag = [
            mean_se([_last(r, f"offline/{k}") for r in runs]) if VARIANTS[v][0] == "smac" else "—"
            for k in ("alpha_mean", "cos_policy", "q_spread", "entropy")
        ]
        lines.append(f"| {v} | " + " | ".join(cells + diag) + " |")
    return lines + [""] if len(lines) > 4 else []  # no table for a task without runs at this budget


def transfer_table(task: str) -> list[str]:
    # the maze in success, hopper in D4RL-normalized return; regret is the mean of 1 - J online
    key = "eval/success_rate" if "pointmaze" in task else "eval/normalized_return"
    first, last = ("250 updates", "5,000") if task != HOPPER else ("1,000 updates", "20,000")
    lines = [
        f"### {task}: offline → SAC ({key.split('/')[1]}, mean ± s.e. over seeds)",
        "",
        f"| variant | J(pi_0) | after {first} | after {last} | drop (J0 - J1) | regret vs 1.0 | handover temperature |",
        "|---|---|---|---|---|---|---|",
    ]
    full_arms = [a for a in ARMS if arm_phase(a).startswith("online_")]  # arms over the whole online budget
    rows = [(v, "online", v) for v in VARIANTS] + [(v, arm_phase(a), f"{v}, {a}") for v in VARIANTS for a in full_arms]
    for v, phase, label in rows:
        if (task == HOPPER) != (_budget(v) == "laptop") or v in SCORE_VARIANTS:
            continue
        cells = _transfer_cells(task, v, phase)
        if cells:
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines + [""]


def _transfer_cells(task: str, v: str, phase: str = "online") -> list[str]:
    """J(pi_0), J(pi_1), the final J, the drop, the regret and the handover temperature of one variant's
    transfer runs (mean ± s.e. over seeds); [] when it has none."""
    key = "eval/success_rate" if "pointmaze" in task else "eval/normalized_return"
    runs = [_rows(RESULTS / task / v / f"s{s}" / phase / "metrics.jsonl") for s in SEEDS]
    runs = [r for r in runs if r]
    if not runs:
        return []
    ev = [sorted(_evals(r, key).items()) for r in runs]
    j0 = [e[0][1] if e else None for e in ev]
    j1 = [e[1][1] if len(e) > 1 else None for e in ev]
    # the final figure and the regret count only runs that reached the last evaluation any seed reached
    end = max((e[-1][0] for e in ev if e), default=None)
    done = [e for e in ev if e and e[-1][0] == end]
    jn = [e[-1][1] for e in done]
    drop = [a - b for a, b in zip(j0, j1) if a is not None and b is not None]
    regret = [_regret([x for _, x in e[1:]]) for e in done if len(e) > 1]
    off = [_rows(RESULTS / task / v / f"s{s}" / "offline" / "metrics.jsonl") for s in SEEDS]
    temp = [_last(r, "offline/ent_coef") for r in off if r]
    return [mean_se(j0), mean_se(j1), mean_se(jn), mean_se(drop), mean_se(regret), mean_se(temp)]


def _arm_cells(ev: list[dict[int, float]], task: str) -> str:
    """J at 0, at J(pi_1)'s step, at one later step and at 5,000 updates past the handover, and the drop."""
    first, later = ARM_READS[task]
    cells = [mean_se([e.get(step) for e in ev]) for step in (0, first, later, ARM_UPDATES)]
    drop = [e[0] - e[first] for e in ev if 0 in e and first in e]
    return " | ".join([*cells, mean_se(drop)])


def arms_table(task: str) -> list[str]:
    key = "eval/normalized_return" if task == HOPPER else "eval/success_rate"
    first, later = ARM_READS[task]
    lines = [
        f"### {task}: online-only arms, SAC for 5,000 steps ({key.split('/')[1]}, mean ± s.e. over seeds)",
        "",
        f"| arm | offline variant | J(pi_0) | after {first:,} updates | after {later:,} | after 5,000 | drop |",
        "|---|---|---|---|---|---|---|",
    ]
    if task == HOPPER:
        cont = [_rows(RESULTS / HOPPER / "smac_laptop" / f"s{s}" / "offline_cont" / "metrics.jsonl") for s in SEEDS]
        ev = [{k - LAPTOP_STEPS: v for k, v in _evals(r, key).items() if k >= LAPTOP_STEPS} for r in cont if r]
        if ev:  # the control: offline SMAC continued, on the same schedule
            lines.append("| offline, continued (control) | smac_laptop | " + _arm_cells(ev, task) + " |")
    for variant in VARIANTS:
        # on the maze the handover is the transfer run itself (same flags, same 5,000 steps)
        phases = {"handover (the transfer run)": "online"} if task != HOPPER else {}
        phases |= {arm: arm_phase(arm) for arm in ARMS if arm_phase(arm).startswith("online5k_")}
        for arm, phase in phases.items():
            runs = [_rows(RESULTS / task / variant / f"s{s}" / phase / "metrics.jsonl") for s in SEEDS]
            ev = [_evals(r, key) for r in runs if r]
            if not ev or (phase == "online" and not any(_arm_dirs(task, variant))):
                continue
            source = ARMS[arm][1:] if arm in ARMS else ()
            label = f"{variant} ({source[0]})" if source else variant
            lines.append(f"| {arm} | {label} | " + _arm_cells(ev, task) + " |")
    return lines + [""] if len(lines) > 4 else []


# The online SAC's own settings, one change each, applied alike to SMAC and to every baseline on the maze.
# SMAC is three score-model draws (4 seeds each, one value per draw); plain SAC is each checkpoint's own
# 5k fine-tuning: the transfer run for SMAC's draws, the `handover` arm for the baselines (their checkpoints
# were regenerated for these arms, so their transfer runs in the tables above started from others).
SAC_SETTINGS = {
    "plain SAC": "handover",
    "no entropy term in the target": "plain_target",
    "critic lr 3e-5 (tenfold slower)": "critic_lr_3e-5",
    "target: min over a random pair (redq)": "redq",
    "online batch 1024 (table 7's; the preset's is 256)": "batch_1024",
    "Muon online (SMAC's offline optimizer)": "muon",
    "Adam at 0.2x both rates (Muon's step size, Adam's geometry)": "adam_lr_0.2x",
    "critic frozen (a diagnostic: only the actor learns)": "critic_frozen",
}
SAC_SETTINGS_METHODS = {
    "SMAC (3 score-model draws)": ("score_seed0", "score_seed1", "score_seed2"),
    "IQL": ("iql",),
    "CQL": ("cql",),
    "Cal-QL": ("calql",),
    "TD3+BC": ("td3bc",),
}


def _arm_stats(task: str, variant: str, arm: str) -> dict[str, list[float]] | None:
    """Per seed: J(pi_0), J after the first read, J at 5,000, the drop, the dip (J(pi_0) less the lowest J up
    to the second read: a fall that comes after the drop's step) and the regret (mean of 1 - J over the online
    evaluations) of one variant's arm; the handover arm falls back on the transfer run."""
    key, (first, later) = "eval/success_rate", ARM_READS[task]
    phase = arm_phase(arm)
    if arm == "handover" and not (RESULTS / task / variant / "s0" / phase).exists():
        phase = "online"
    ev = [_evals(_rows(RESULTS / task / variant / f"s{s}" / phase / "metrics.jsonl"), key) for s in SEEDS]
    ev = [e for e in ev if ARM_UPDATES in e]
    if not ev:
        return None
    return {
        "j0": [e[0] for e in ev],
        "j1": [e[first] for e in ev],
        "end": [e[ARM_UPDATES] for e in ev],
        "drop": [e[0] - e[first] for e in ev],
        "dip": [e[0] - min(x for k, x in e.items() if 0 < k <= later) for e in ev],
        "regret": [_regret([x for k, x in e.items() if k > 0]) for e in ev],
    }


def sac_settings_table(task: str = MAZE) -> list[str]:
    first = ARM_READS[task][0]
    lines = [
        f"### {task}: the online SAC's settings, one change each, every method alike (success_rate, 5,000 steps)",
        "",
        "SMAC: mean ± s.e. over three score-model draws, each the mean of its 4 seeds; the others: over 4 seeds.",
        "",
        f"| online SAC | offline method | J(pi_0) | after {first} updates | after 5,000 | drop "
        f"| dip (J(pi_0) - the lowest J up to {ARM_READS[task][1]:,}) | regret |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, arm in SAC_SETTINGS.items():
        for method, variants in SAC_SETTINGS_METHODS.items():
            stats = [_arm_stats(task, v, arm) for v in variants]
            if any(st is None for st in stats):
                continue
            keys = ("j0", "j1", "end", "drop", "dip", "regret")
            if len(stats) == 1:
                cells = [mean_se(stats[0][k]) for k in keys]
            else:  # one value per draw: its seeds' mean
                cells = [mean_se([sum(st[k]) / len(st[k]) for st in stats]) for k in keys]
            lines.append(f"| {label} | {method} | " + " | ".join(cells) + " |")
    return lines + [""] if len(lines) > 6 else []


def _arm_dirs(task: str, variant: str) -> list[Path]:
    """The finished or started arm runs of one offline variant."""
    return [p for s in SEEDS for p in (RESULTS / task / variant / f"s{s}").glob("online5k_*")]


def score_table(task: str) -> list[str]:
    """Each named score model's own figures beside SMAC's offline success (or return) with it at 3k updates."""
    key = "eval/success_rate" if "pointmaze" in task else "eval/return_mean"
    lines = [
        f"### {task}: SMAC's defaults with each score model ({key.split('/')[1]}, mean ± s.e. over seeds)",
        "",
        "| score model | training steps | seed | held-out denoising loss | diffusion-BC policy (20 episodes) "
        "| SMAC at 1k | at 2k | at 3k | cos(policy) at 3k"
        + (" | → SAC: after 250 updates | after 5,000 | drop | regret |" if task in TRANSFER_TASKS else " |"),
        "|---|---|---|---|---|---|---|---|---|" + ("---|---|---|---|" if task in TRANSFER_TASKS else ""),
    ]
    for name in ("cache", *SCORE_MODELS):
        if name == "cache":
            steps, seed, heldout, bc = "3,000", "—", "—", "—"
        else:
            rows = _rows(score_dir(task, name) / "metrics.jsonl")
            if not rows:
                continue
            cfg = json.loads((score_dir(task, name) / "config.json").read_text())["config"]
            steps, seed = f"{cfg['steps']:,}", str(cfg["seed"])
            heldout = f"{_last(rows, 'score/heldout_loss'):.3f}"
            bc_key = "eval/score_bc_success_rate" if "pointmaze" in task else "eval/score_bc_return_mean"
            bc = _last(rows, bc_key)
            bc = "—" if bc is None else f"{bc:.2f}" if "pointmaze" in task else f"{bc:.0f}"
        runs = [_rows(RESULTS / task / f"score_{name}" / f"s{s}" / "offline" / "metrics.jsonl") for s in SEEDS]
        runs = [r for r in runs if r]
        if not runs:
            continue
        ev = [_evals(r, key) for r in runs]
        cells = [mean_se([e.get(step) for e in ev]) for step in BUDGETS["3k"]]
        cos = mean_se([_last(r, "offline/cos_policy") for r in runs])
        if task in TRANSFER_TASKS:
            tr = _transfer_cells(task, f"score_{name}") or ["—"] * 6
            cells += [cos, tr[1], tr[2], tr[3], tr[4]]
        else:
            cells.append(cos)
        lines.append(f"| {name} | {steps} | {seed} | {heldout} | {bc} | " + " | ".join(cells) + " |")
    return lines + [""] if len(lines) > 4 else []


DRIFT_READS = (50, 100, 250, 500, 1000)


def drift_table(task: str = MAZE, kind: str = "plain") -> list[str]:
    """The committed drift.jsonl files of `drift`: per offline variant, cos(grad_a Q now, at the handover), the
    mean Q and the mean norm of grad_a Q at the handover actor's mean actions, the critic's RMS Bellman residual
    on dataset transitions at the handover, and the drop of the variant's own 5,000-step plain SAC run."""
    lines = [
        f"### {task}: how fast plain SAC turns each critic's action gradient (cos to the handover's, 4 seeds)"
        if kind == "plain"
        else f"### {task}: the same with the handover's actor frozen (`drift --kind {kind}`, 4 seeds)",
        "",
        "| offline variant | " + " | ".join(f"after {k:,}" for k in DRIFT_READS) + " | Q at the handover | Q at 1,000 "
        "| norm of grad_a Q at the handover | at 1,000 | RMS TD residual at the handover | drop (plain SAC) |",
        "|---|" + "---|" * (len(DRIFT_READS) + 6),
    ]
    for v in VARIANTS:
        runs = [RESULTS / task / v / f"s{s}" / DRIFT_KINDS[kind][0] / "drift.jsonl" for s in SEEDS]
        rows = [{r["step"]: r for r in _rows(p)} for p in runs if p.exists()]
        if not rows:
            continue
        cells = [mean_se([r[k]["cos"] for r in rows if k in r]) for k in DRIFT_READS]
        cells += [mean_se([r[k]["q_mean"] for r in rows if k in r]) for k in (0, DRIFT_STEPS)]
        cells += [mean_se([r[k]["grad_norm"] for r in rows if k in r]) for k in (0, DRIFT_STEPS)]
        cells.append(mean_se([r[0]["td_rms"] for r in rows]))
        stats = _arm_stats(task, v, "handover")  # the plain SAC run's drop, beside either kind
        cells.append(mean_se(stats["drop"]) if stats else "—")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return lines + [""] if len(lines) > 4 else []


def all_tables() -> list[str]:
    """Every table, in docs/smac_readings.md's order."""
    lines = []
    for task in TASKS:
        lines += offline_table(task)
    for task in TASKS:
        lines += offline_table(task, "10k")
    for task in (*TASKS, HOPPER):
        lines += offline_table(task, "laptop")
    for task in TRANSFER_TASKS:
        lines += transfer_table(task)
    for task in ARM_VARIANT:
        lines += arms_table(task)
    for task in TASKS:
        lines += score_table(task)
    lines += sac_settings_table()
    lines += drift_table()
    lines += drift_table(kind="actor_frozen")
    return lines

"""``smacrl diagnose RUN...``: one panel of a run's training signals, to see why it learned or did not.

Reads only ``metrics.jsonl`` (and ``config.json`` for the title), so it works on a finished, a running
or a committed run. Each run gets ``<out>/<name>.png`` with these plots, drawn from what the run logged
(an IQL run has no score-matching terms; those plots then say so):

1. evaluation: return (and success rate, where the task has one);
2. the score-matching terms on each half of B(A): ``|grad_a Q|`` and ``alpha |score|``, policy and
   uniform actions (a critic that went flat has both near 0);
3. ``L_SM`` on each half;
4. cos(grad_a Q, score) on policy, uniform and data actions;
5. ``alpha_psi`` (mean ± std over the batch): a collapse to 0 means the score no longer acts;
6. the spread of Q over the action box at data states, beside the mean Q on data actions;
7. the policy's entropy against the uniform policy's (its maximum), with SAC's entropy coefficient.

It also prints one line of findings per run: the last value of each signal and the conditions worth a
look (alpha collapsed, policy near uniform, critic flat).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from smacrl.errors import SmacrlError
from smacrl.logger import read_metrics

PHASES = ("offline", "online")


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories (holding ``metrics.jsonl``) under each of ``paths``."""
    runs: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise SmacrlError(p, "path", "does not exist")
        found = [p] if (p / "metrics.jsonl").exists() else sorted(m.parent for m in p.rglob("metrics.jsonl"))
        if not found:
            raise SmacrlError(p, "metrics.jsonl", "no run directory with metrics found here")
        runs += found
    return runs


def series(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of ``key``, finite values only."""
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), int | float) and math.isfinite(r[key])]
    return [s for s, _ in pts], [v for _, v in pts]


def _phase(rows: list[dict[str, Any]]) -> str:
    for phase in PHASES:
        if any(k.startswith(f"{phase}/") for r in rows for k in r):
            return phase
    return "offline"


def _last(rows: list[dict[str, Any]], key: str) -> float | None:
    _, v = series(rows, key)
    return v[-1] if v else None


def findings(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The last value of each signal and the conditions worth a look, as a dict."""
    p = _phase(rows)
    last = {k: _last(rows, f"{p}/{k}") for k in ("alpha_mean", "cos_policy", "cos_uniform", "q_spread", "q_mean",
                                                 "entropy", "entropy_max", "ent_coef")}  # fmt: skip
    last["eval"] = _last(rows, "eval/success_rate")
    if last["eval"] is None:
        last["eval"] = _last(rows, "eval/return_mean")
    flags = []
    if last["alpha_mean"] is not None and abs(last["alpha_mean"]) < 1e-3:
        flags.append("alpha collapsed: the score no longer acts")
    if last["entropy"] is not None and last["entropy_max"]:
        if last["entropy"] > 0.8 * last["entropy_max"]:
            flags.append("policy near uniform (entropy > 80% of its maximum)")
    if last["q_spread"] is not None and last["q_spread"] < 1e-3 * max(1.0, abs(last["q_mean"] or 0.0)):
        flags.append("critic flat over the action box")
    return {"phase": p, "last": last, "flags": flags}


def _title(run: Path) -> str:
    cfg = run / "config.json"
    if cfg.exists():
        doc = json.loads(cfg.read_text())
        parts = [doc.get("algo"), doc.get("task"), f"seed {doc.get('config', {}).get('seed')}"]
        return f"{run}: " + ", ".join(str(x) for x in parts if x)
    return str(run)


def panels(p: str) -> list[tuple[str, list[tuple[str, str]], bool]]:
    """The panel's eight plots for a run of phase ``p``: (title, [(metric key, label)], log scale)."""
    terms = [
        (f"{p}/{key}_{half}", f"{label}, {half} a")
        for key, label in (("grad_q_norm", "|grad_a Q|"), ("alpha_score_norm", "alpha |score|"))
        for half in ("policy", "uniform")
    ]
    # an online SAC that keeps L_SM (--score-matching-kappa) logs only the total
    l_sm = [(f"{p}/loss_sm_policy", "policy half"), (f"{p}/loss_sm_uniform", "uniform half"), (f"{p}/loss_sm", "total")]
    return [
        ("evaluation", [("eval/return_mean", "return"), ("eval/success_rate", "success rate")], False),
        ("score-matching terms", terms, True),
        ("L_SM", l_sm, True),
        ("cos(grad_a Q, score)", [(f"{p}/cos_policy", "policy a"), (f"{p}/cos_uniform", "uniform a"),
                                  (f"{p}/cos_data", "data a")], False),
        ("alpha_psi(s)", [(f"{p}/alpha_mean", "alpha mean"), (f"{p}/alpha_std", "alpha std")], False),
        ("critic", [(f"{p}/q_spread", "std of Q over the action box"), (f"{p}/q_mean", "mean Q on data actions")],
         False),
        ("entropy", [(f"{p}/entropy", "policy entropy"), (f"{p}/entropy_max", "maximum (uniform policy)")], False),
        ("alpha_ent", [(f"{p}/ent_coef", "SAC entropy coefficient")], True),
    ]  # fmt: skip


def drawn(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per plot of the panel, the labels of the series ``rows`` has data for."""
    p = _phase(rows)
    return {title: [label for key, label in keys if series(rows, key)[0]] for title, keys, _ in panels(p)}


def plot_run(run: Path, out: Path) -> Path:
    """Draw the diagnostic panel of ``run`` into ``out`` (a .png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run)
    p = _phase(rows)
    fig, axes = plt.subplots(2, 4, figsize=(18, 7.5))
    ax = axes.ravel()

    def draw(a, keys: list[tuple[str, str]], title: str, log: bool = False) -> None:
        any_series = False
        for key, label in keys:
            x, y = series(rows, key)
            if x:
                a.plot(x, y, label=label, lw=1.4)
                any_series = True
        a.set_title(title, fontsize=10)
        if not any_series:
            a.text(0.5, 0.5, "not logged by this run", ha="center", va="center", transform=a.transAxes, color="0.5")
            return
        if log and all(v > 0 for k, _ in keys for v in series(rows, k)[1]):
            a.set_yscale("log")
        a.legend(fontsize=8)
        a.grid(alpha=0.3)

    for a, (title, keys, log) in zip(ax, panels(p), strict=True):
        draw(a, keys, title, log=log)
    for a in ax:
        a.set_xlabel(f"{p} step", fontsize=8)
    f = findings(rows)
    fig.suptitle(_title(run) + ("\n" + "; ".join(f["flags"]) if f["flags"] else ""), fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out)
    return out


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.3g}"


def cmd_diagnose(args: argparse.Namespace, rest: list[str]) -> int:
    """Draw each run's diagnostic panel and print its findings."""
    from smacrl.cli import _no_extra

    _no_extra(rest, args.parser)
    runs = find_runs(args.runs)
    out = Path(args.out)
    for i, run in enumerate(runs):
        name = "-".join(run.parts[-3:]) if len(runs) > 1 else run.name or "run"
        png = plot_run(run, out / f"{i:02d}-{name}.png" if len(runs) > 1 else out / f"{name}.png")
        f = findings(read_metrics(run))
        last = f["last"]
        ent = f"{_fmt(last['entropy'])}/{_fmt(last['entropy_max'])}"
        print(
            f"{run}: eval {_fmt(last['eval'])}, alpha {_fmt(last['alpha_mean'])}, cos(policy) "
            f"{_fmt(last['cos_policy'])}, Q spread {_fmt(last['q_spread'])}, entropy {ent}, alpha_ent "
            f"{_fmt(last['ent_coef'])}" + ("".join(f"; {x}" for x in f["flags"])) + f" -> {png}"
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from smacrl.cli import add_command

    p = add_command(subparsers, "diagnose", cmd_diagnose, "one panel of a run's training signals, and its findings")
    p.add_argument("runs", nargs="+", help="run directories (with metrics.jsonl), or folders containing them")
    p.add_argument("--out", required=True, help="output folder for the PNG panels")

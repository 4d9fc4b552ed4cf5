"""The paper's claims (a), (b) and (c), judged on the reproduction's reports.

    python experiments/repro/claims.py                 # print the claims table
    python experiments/repro/claims.py --write         # and write results/claims.md

It reads every ``results/repro-*/report/summary.json`` (what ``smacrl report`` writes from the committed
``config.json`` + ``metrics.jsonl``; the sweeps write it at their end) and judges each claim per task:

- **(a)** SMAC fine-tuned with SAC or TD3 transfers stably, E[J(pi_1)] >= E[J(pi_0)] over seeds (section 3);
- **(b)** the baselines fine-tuned with SAC mostly drop: E[J(pi_1)] < E[J(pi_0)] for most baseline x task;
- **(c)** SMAC has the lowest regret among the offline algorithms for every online algorithm.

A claim *held* where it holds on every task (or, for (b), for more than half of the baseline x task
cases), *did not hold* where it holds on none, and is *mixed* otherwise. The paper's protocol is judged
on the protocol's runs only (offline smac, iql, td3bc, cql / calql; online sac, td3, td3bc); the
controls (``smac-score-free``, ``sac-matched``) are listed beside it, not counted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "results" / "claims.md"
SMAC = "smac"
BASELINES = ("iql", "td3bc", "cql", "calql")
ONLINE = ("sac", "td3", "td3bc")
CONTROLS = {"smac-score-free": "offline", "sac-matched": "online"}


def load(root: Path = ROOT / "results") -> dict[str, dict]:
    """Task -> that grid's report summary."""
    found = {}
    for path in sorted(root.glob("repro-*/report/summary.json")):
        summary = json.loads(path.read_text())
        for task in sorted({r["task"] for r in summary["rows"]}):
            found[task] = summary
    return found


def _rows(summary: dict, task: str) -> dict[tuple[str, str], dict]:
    return {(r["offline"], r["online"]): r for r in summary["rows"] if r["task"] == task}


def _verdict(hits: int, total: int, majority: bool = False) -> str:
    if total == 0:
        return "not measured"
    if majority:
        return "held" if hits * 2 > total else ("did not hold" if hits == 0 else "mixed")
    return "held" if hits == total else ("did not hold" if hits == 0 else "mixed")


def _fmt(x: float, se: float | None = None) -> str:
    digits = 2 if abs(x) < 10 else 0
    return f"{x:.{digits}f}" + (f" ± {se:.{digits}f}" if se is not None else "")


def judge(found: dict[str, dict]) -> list[str]:
    tasks = sorted(found)
    lines = ["| claim | task | measured (mean ± s.e. over seeds) | on this task |", "|---|---|---|---|"]
    verdicts = {}

    # (a) SMAC -> SAC / TD3: no drop
    hits = total = 0
    for task in tasks:
        rows = _rows(found[task], task)
        for online in ("sac", "td3"):
            r = rows.get((SMAC, online))
            if r is None:
                continue
            total += 1
            hits += r["stable_transfer"]
            lines.append(
                f"| (a) SMAC → {online.upper()} no drop | {task} | J(pi_0) {_fmt(r['j0'])}, J(pi_1) {_fmt(r['j1'])},"
                f" drop {_fmt(r['drop'], r['drop_se'])} ({r['seeds']} seeds) |"
                f" {'no drop' if r['stable_transfer'] else 'dropped'} |"
            )
    verdicts["(a)"] = _verdict(hits, total)

    # (b) baselines -> SAC: mostly drop
    hits = total = 0
    for task in tasks:
        rows = _rows(found[task], task)
        for base in BASELINES:
            r = rows.get((base, "sac"))
            if r is None:
                continue
            total += 1
            hits += not r["stable_transfer"]
            lines.append(
                f"| (b) {base} → SAC drops | {task} | J(pi_0) {_fmt(r['j0'])}, J(pi_1) {_fmt(r['j1'])},"
                f" drop {_fmt(r['drop'], r['drop_se'])} ({r['seeds']} seeds) |"
                f" {'no drop' if r['stable_transfer'] else 'dropped'} |"
            )
    verdicts["(b)"] = _verdict(hits, total, majority=True)

    # (c) SMAC has the lowest regret, per online algorithm
    hits = total = 0
    for task in tasks:
        rows = _rows(found[task], task)
        for online in ONLINE:
            mine = rows.get((SMAC, online))
            others = {b: rows[(b, online)] for b in BASELINES if (b, online) in rows}
            if mine is None or not others:
                continue
            best, r = min(others.items(), key=lambda kv: kv[1]["regret_mean"])
            total += 1
            lowest = mine["regret_mean"] < r["regret_mean"]
            hits += lowest
            poi = (
                found[task]["aggregate"]
                .get("probability_of_improvement", {})
                .get(f"{SMAC}->{online} vs {best}->{online}")
            )
            rliable = (
                f"; P(SMAC > {best}) {poi['probability']:.2f} [{poi['ci_low']:.2f}, {poi['ci_high']:.2f}]"
                if poi
                else ""
            )
            lines.append(
                f"| (c) SMAC → {online.upper()} lowest regret | {task} | SMAC"
                f" {_fmt(mine['regret_mean'], mine['regret_se'])}, best baseline {best}"
                f" {_fmt(r['regret_mean'], r['regret_se'])}{rliable} | {'lowest' if lowest else 'not lowest'} |"
            )
    verdicts["(c)"] = _verdict(hits, total)

    head = ["| claim | the paper | here |", "|---|---|---|"]
    paper = {
        "(a)": "SMAC → SAC and → TD3 transfer without a drop on 6/6 tasks",
        "(b)": "the baselines → SAC mostly drop",
        "(c)": "SMAC has the lowest normalized regret for every online algorithm; lowest regret on 4/6 tasks",
    }
    head += [f"| {k} | {paper[k]} | **{v}** |" for k, v in verdicts.items()]
    return head + ["", *lines, "", *_controls(found)]


def _controls(found: dict[str, dict]) -> list[str]:
    """The controls beside the protocol: SAC at a matched temperature, and SMAC without its score."""
    lines = ["| control | task | pair | J(pi_0) | J(pi_1) | drop | regret |", "|---|---|---|---|---|---|---|"]
    for task in sorted(found):
        rows = _rows(found[task], task)
        for (off, on), r in sorted(rows.items()):
            if off in CONTROLS or on in CONTROLS:
                what = "score-free" if off in CONTROLS else "matched temperature"
                lines.append(
                    f"| {what} | {task} | {off} → {on} | {_fmt(r['j0'])} | {_fmt(r['j1'])} |"
                    f" {_fmt(r['drop'], r['drop_se'])} | {_fmt(r['regret_mean'], r['regret_se'])} |"
                )
    return lines if len(lines) > 2 else []


def render(root: Path = ROOT / "results") -> str:
    found = load(root)
    if not found:
        raise SystemExit(f"{root}: no repro-*/report/summary.json; run the sweeps first (docs/REPRODUCTION.md)")
    return "\n".join(["# The paper's claims, judged on the reproduction", "",
                      "Generated by `python experiments/repro/claims.py --write` from `results/repro-*/report`.", "",
                      *judge(found)]) + "\n"  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(ROOT)}")
    args = ap.parse_args()
    text = render()
    print(text, end="")
    if args.write:
        tmp = OUT.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(OUT)


if __name__ == "__main__":
    main()

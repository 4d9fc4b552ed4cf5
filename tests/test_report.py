"""``smacrl report`` over a synthetic sweep: tables, figures, rliable statistics, reproducibility."""

import json
import shutil
import sys

import numpy as np
import pytest
import scipy.stats

from smacrl.eval.report import find_online_runs, load_run, write_report

TASKS = {"ta": 1.0, "tb": 100.0}  # very different return scales: regret is not comparable across tasks
SEEDS = (0, 1, 2)
# online evaluations after J(pi_0) = 10, per (offline, online); seed s adds 0.1 s (ta) or 0.3 s (tb) to all
ONLINE = {
    ("smac", "sac"): [12, 14, 16],  # no drop, best
    ("iql", "sac"): [5, 8, 10],  # drops by 5
    ("smac", "td3"): [4, 5, 6],  # drops, worst
    ("iql", "td3"): [11, 13, 15],
}


def _returns(task, off, on, seed):
    scale, shift = TASKS[task], (0.1 if task == "ta" else 0.3) * seed
    return [scale * (v + shift) for v in [10, *ONLINE[(off, on)]]]


def _write_run(path, rows, **config):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def make_sweep(root, seeds=SEEDS, skip=()):
    """Online runs (and their offline runs) for 2 tasks x 2 offline x 2 online x ``seeds``."""
    for task in TASKS:
        for off in ("smac", "iql"):
            for seed in seeds:
                off_dir = root / task / f"{off}-s{seed}" / "offline"
                _write_run(off_dir, [{"step": s, "eval/return_mean": TASKS[task] * (s / 20)} for s in (0, 100, 200)],
                           algo=off, task=task, config={"seed": seed})  # fmt: skip
                for on in ("sac", "td3"):
                    if (task, off, on, seed) in skip:
                        continue
                    rows = [{"step": 0, "eval/return_mean": _returns(task, off, on, seed)[0], "online/loss_td": 1.0}]
                    rows += [{"step": 10 * (i + 1), "online/loss_td": 0.5} for i in range(3)]
                    rows += [
                        {"step": 10 * i, "eval/return_mean": r} for i, r in enumerate(_returns(task, off, on, seed))
                    ]
                    ckpt = off_dir / "checkpoints" / "final.safetensors"
                    _write_run(root / task / f"{off}-s{seed}" / on, rows, algo=on, offline_algo=off, task=task,
                               config={"seed": seed}, checkpoint=str(ckpt))  # fmt: skip
    return root


def _regret(task, off, on, seed, r_star):
    return float(np.mean([r_star - r for r in _returns(task, off, on, seed)[1:]]))


def _hand_scores(task, seeds=SEEDS):
    """Per pair, each seed's regret and score, computed from the known returns."""
    r_star = max(max(_returns(task, off, on, s)) for off, on in ONLINE for s in seeds)
    reg = {p: [_regret(task, *p, s, r_star) for s in seeds] for p in ONLINE}
    means = [np.mean(v) for v in reg.values()]
    lo, hi = min(means), max(means)
    return reg, {p: [1 - (r - lo) / (hi - lo) for r in v] for p, v in reg.items()}, r_star


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return make_sweep(tmp_path_factory.mktemp("sweep") / "runs")


@pytest.fixture(scope="module")
def report(sweep, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return out, write_report([sweep], out, reps=300)


def test_loads_every_run_of_the_sweep(sweep):
    runs = find_online_runs([sweep, sweep / "ta"])  # overlapping paths: each run once
    assert len(runs) == 2 * 2 * 2 * 3
    curve, offline = load_run(sweep / "ta" / "smac-s1" / "sac")
    assert (curve.task, curve.offline, curve.online, curve.seed) == ("ta", "smac", "sac", 1)
    assert curve.steps.tolist() == [0, 10, 20, 30] and offline[0].tolist() == [0, 100, 200]


def test_tables_hold_every_pair_and_the_hand_computed_numbers(report):
    out, summary = report
    rows = {(r["task"], r["offline"], r["online"]): r for r in summary["rows"]}
    assert set(rows) == {(t, off, on) for t in TASKS for off, on in ONLINE}
    table1 = {}
    for task in TASKS:
        reg, _, r_star = _hand_scores(task)
        means = {p: np.mean(v) for p, v in reg.items()}
        lo, hi = min(means.values()), max(means.values())
        for p, v in reg.items():
            r = rows[(task, *p)]
            assert r["r_star"] == pytest.approx(r_star) and r["seeds"] == 3
            assert r["regret_mean"] == pytest.approx(np.mean(v))
            assert r["regret_se"] == pytest.approx(np.std(v, ddof=1) / np.sqrt(3))
            table1.setdefault(p, []).append((means[p] - lo) / (hi - lo))
    for (off, on), v in table1.items():
        assert summary["normalized_regret"][f"{off}->{on}"] == pytest.approx(np.mean(v))
    assert summary["normalized_regret"]["smac->sac"] == 0.0 and summary["normalized_regret"]["smac->td3"] == 1.0
    # drop: J(pi_0) - first online eval (3 evals -> the first 10% is one); iql -> sac falls 10 -> 5
    assert (
        rows[("tb", "iql", "sac")]["drop"] == pytest.approx(500.0) and not rows[("tb", "iql", "sac")]["stable_transfer"]
    )
    assert rows[("ta", "smac", "sac")]["drop"] == pytest.approx(-2.0) and rows[("ta", "smac", "sac")]["stable_transfer"]
    pairs = summary["pairs"]
    assert pairs["smac->sac"]["stable_tasks"] == 2 and pairs["iql->sac"]["dropped_tasks"] == 2
    md = (out / "regret.md").read_text()
    for off, on in ONLINE:
        assert f"| {off} → {on} | {pairs[f'{off}->{on}']['stable_tasks']}/2 tasks |" in md  # transfer per pair
    assert "## Table 1" in md and "| smac | **0.000** | 1.000 |" in md
    assert "Regret when fine-tuning with sac" in md and "Regret when fine-tuning with td3" in md
    assert "| ta | smac → sac | 3 |" in md and "aggregate.md" in md
    assert len((out / "regret.csv").read_text().splitlines()) == 1 + 8


def test_iqm_and_probability_of_improvement(report):
    out, summary = report
    agg = summary["aggregate"]
    assert agg["available"] and agg["reps"] == 300
    scores = {task: _hand_scores(task)[1] for task in TASKS}
    for off, on in ONLINE:
        r = agg["iqm"][f"{off}->{on}"]
        pooled = np.concatenate([scores[t][(off, on)] for t in TASKS])
        assert r["iqm"] == pytest.approx(scipy.stats.trim_mean(pooled, 0.25))
        assert r["ci_low"] <= r["iqm"] <= r["ci_high"] and r["seeds"] == 3 and r["tasks"] == ["ta", "tb"]
    # 1 - table 1's value is the mean score: the same normalization
    assert np.mean(np.concatenate([scores[t][("iql", "sac")] for t in TASKS])) == pytest.approx(
        1 - summary["normalized_regret"]["iql->sac"]
    )
    poi = agg["probability_of_improvement"]
    assert set(poi) == {"smac->sac vs iql->sac", "smac->td3 vs iql->td3"}
    assert poi["smac->sac vs iql->sac"]["probability"] == 1.0  # every SMAC run has the lower regret
    assert poi["smac->td3 vs iql->td3"]["probability"] == 0.0  # every SMAC run has the higher regret
    md = (out / "aggregate.md").read_text()
    assert "Per-run score: score = 1 - (regret - lo) / (hi - lo)" in md and "| sac | iql | 1.000 |" in md
    csv_lines = (out / "aggregate.csv").read_text().splitlines()
    assert csv_lines[0].startswith("statistic,") and len(csv_lines) == 1 + 4 + 2


def test_one_figure_per_online_algorithm(report):
    out, summary = report
    assert summary["figures"] == ["curves.png", "curves_sac.png", "curves_td3.png"]
    for name in summary["figures"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_runs_give_byte_identical_files(sweep, report, tmp_path):
    first, _ = report
    copy = shutil.copytree(sweep, tmp_path / "elsewhere" / "runs")  # another folder, the same runs
    write_report([copy], tmp_path / "again", reps=300)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "again").iterdir())
    for name in names:
        assert (first / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


def test_unequal_and_single_seeds_do_not_crash(tmp_path):
    runs = make_sweep(tmp_path / "runs", skip={("tb", "iql", "sac", 2)})
    summary = write_report([runs], tmp_path / "out", reps=50)
    iql = summary["aggregate"]["iqm"]["iql->sac"]
    assert iql["seeds"] == 2 and "kept the 2 lowest seeds" in iql["note"]
    assert "iql: unequal seeds" in summary["aggregate"]["probability_of_improvement"]["smac->sac vs iql->sac"]["note"]
    assert "kept the 2 lowest seeds" in (tmp_path / "out" / "aggregate.md").read_text()
    one = write_report([make_sweep(tmp_path / "one", seeds=(0,))], tmp_path / "out1", reps=50)
    for r in one["aggregate"]["iqm"].values():
        assert r["ci_low"] == r["iqm"] == r["ci_high"] and "one seed" in r["note"]
    assert one["aggregate"]["probability_of_improvement"]["smac->sac vs iql->sac"]["probability"] == 1.0
    # one pair only: no baseline to compare, every score 1
    lone = write_report([tmp_path / "one" / "ta" / "smac-s0" / "sac"], tmp_path / "out2", reps=50)
    assert lone["aggregate"]["iqm"]["smac->sac"]["iqm"] == 1.0 and lone["runs"] == ["sac"]
    assert "No pair to compare" in (tmp_path / "out2" / "aggregate.md").read_text()
    # SMAC -> sac on ta only, IQL -> sac on tb only: nothing to compare them on
    apart = make_sweep(tmp_path / "apart", seeds=(0,), skip={("tb", "smac", "sac", 0), ("ta", "iql", "sac", 0)})
    poi = write_report([apart], tmp_path / "out3", reps=50)["aggregate"]["probability_of_improvement"]
    assert poi["smac->sac vs iql->sac"]["probability"] is None and poi["smac->sac vs iql->sac"]["note"]
    assert "| sac | iql | - | [-, -] |" in (tmp_path / "out3" / "aggregate.md").read_text()


def test_without_rliable_the_report_says_what_to_install(sweep, tmp_path, monkeypatch, capsys):
    from smacrl.cli import main

    monkeypatch.setitem(sys.modules, "rliable", None)  # import rliable raises ImportError
    assert main(["report", str(sweep), "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["aggregate"]["available"] is False and len(summary["rows"]) == 8
    for name in ("regret.md", "aggregate.md"):
        assert "pip install 'smacrl[sweep]'" in (tmp_path / name).read_text()
    assert (tmp_path / "aggregate.csv").read_text().splitlines() == [
        "statistic,online,offline,baseline,estimate,ci_low,ci_high,seeds,baseline_seeds,tasks,note"
    ]
    assert (tmp_path / "curves_td3.png").exists() and "regret" in capsys.readouterr().out

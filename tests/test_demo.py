"""The demo pipeline with a shrunken budget: every stage runs and the report holds finite numbers."""

import json
import math
import shutil

from smacrl.cli import main
from smacrl.demo import run_demo, summary_markdown


def test_demo_pipeline_writes_a_finite_report(pendulum_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SMACRL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SMACRL_CACHE", str(tmp_path / "cache"))
    (tmp_path / "data").mkdir()
    shutil.copy(pendulum_data, tmp_path / "data" / "pendulum-medium-replay.hdf5")
    out = tmp_path / "demo"
    summary = run_demo(  # the pendulum: the demo's maze data take minutes to generate
        out,
        task="pendulum-medium-replay",
        methods=("smac", "cql"),
        offline_steps=30,
        online_steps=30,
        score_steps=40,
        eval_episodes=2,
        progress=False,
    )
    report = out / "report"
    for name in ("curves.png", "regret.md", "regret.csv", "summary.json", "summary.md", "landscape/line.png"):
        assert (report / name).stat().st_size > 0, name
    rows = json.loads((report / "summary.json").read_text())["rows"]
    assert {r["offline"] for r in rows} == {"smac", "cql"}
    for r in rows:
        for key in ("j0", "j1", "drop", "regret_mean", "normalized_regret"):
            assert math.isfinite(r[key]), (r["offline"], key)
    md = (report / "summary.md").read_text()
    assert md.startswith("# smacrl demo: offline-to-online on pendulum-medium-replay")
    assert "smac → sac" in md and "cql → sac" in md and "curves.png" in md and "landscape/line.png" in md
    assert len(summary["line"]) == 2 and all(math.isfinite(v["min"]) for v in summary["line"].values())
    # a rerun reuses every stage: no stage rewrites its final checkpoint
    finals = sorted(out.rglob("final.safetensors"))
    stamps = [p.stat().st_mtime_ns for p in finals]
    code = main(["demo", "--out", str(out), "--task", "pendulum-medium-replay", "--methods", "smac", "cql",
                 "--offline-steps", "30", "--online-steps", "30", "--score-steps", "40", "--eval-episodes", "2",
                 "--no-progress"])  # fmt: skip
    assert code == 0 and [p.stat().st_mtime_ns for p in finals] == stamps and len(finals) == 4
    printed = capsys.readouterr().out
    assert "smac -> sac: J(pi_0)" in printed and "summary.md" in printed
    assert "No method showed a drop" in summary_markdown({**summary, "rows": [dict(rows[0], drop=-1.0)]}, report)
    # the paper's claims are stated plainly, held or not
    smac, cql = (next(r for r in rows if r["offline"] == k) for k in ("smac", "cql"))
    good = [dict(smac, drop=-1.0, regret_mean=1.0), dict(cql, drop=5.0, regret_mean=2.0)]
    assert summary_markdown({**summary, "rows": good}, report).count("**held**") == 3
    bad = [dict(smac, drop=1.0, regret_mean=3.0), dict(cql, drop=-5.0, regret_mean=2.0)]
    assert summary_markdown({**summary, "rows": bad}, report).count("**did not hold**") == 3

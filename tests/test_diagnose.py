"""``smacrl diagnose``: the panel is drawn from metrics.jsonl and the findings name what went wrong."""

import json

from smacrl.cli import main
from smacrl.eval.diagnose import drawn, findings


def _write(run, rows):
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (run / "config.json").write_text(json.dumps({"algo": "smac", "task": "toy", "config": {"seed": 0}}))


def _rows(alpha, entropy, spread):
    rows = []
    for step in range(0, 1001, 100):
        rows.append({"step": step, "eval/return_mean": step / 1000, "eval/success_rate": step / 1000})
        rows.append({"step": step, "offline/alpha_mean": alpha, "offline/alpha_std": 0.01, "offline/cos_policy": 0.5,
                     "offline/cos_uniform": 0.4, "offline/grad_q_norm_policy": 1.0, "offline/grad_q_norm_uniform": 1.0,
                     "offline/alpha_score_norm_policy": 1.0, "offline/alpha_score_norm_uniform": 1.0,
                     "offline/loss_sm_policy": 2.0, "offline/loss_sm_uniform": 3.0, "offline/q_mean": -2.0,
                     "offline/q_spread": spread, "offline/entropy": entropy, "offline/entropy_max": 1.386,
                     "offline/ent_coef": 0.5})  # fmt: skip
    return rows


def test_findings_flag_a_collapsed_alpha_a_uniform_policy_and_a_flat_critic():
    bad = findings(_rows(alpha=1e-5, entropy=1.3, spread=1e-5))
    assert len(bad["flags"]) == 3 and bad["phase"] == "offline" and bad["last"]["eval"] == 1.0
    good = findings(_rows(alpha=0.1, entropy=0.5, spread=0.3))
    assert good["flags"] == [] and good["last"]["alpha_mean"] == 0.1


def test_diagnose_draws_one_panel_per_run(tmp_path, capsys):
    _write(tmp_path / "runs" / "a" / "offline", _rows(alpha=1e-5, entropy=1.3, spread=0.3))
    # an IQL-like run logs none of the score-matching terms: the panel still draws
    _write(
        tmp_path / "runs" / "b" / "offline", [{"step": 0, "eval/return_mean": -1.0}, {"step": 5, "offline/q_mean": 1.0}]
    )
    assert main(["diagnose", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    pngs = sorted((tmp_path / "out").glob("*.png"))
    assert len(pngs) == 2 and all(p.stat().st_size > 10_000 for p in pngs)
    out = capsys.readouterr().out
    assert "alpha collapsed" in out and out.count("\n") == 2
    assert main(["diagnose", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2


def test_an_online_run_that_keeps_l_sm_draws_its_total():
    rows = [{"step": s, "online/loss_sm": 1.5, "online/alpha_mean": 0.02, "online/cos_policy": 0.3} for s in (0, 10)]
    plots = drawn(rows)
    assert plots["L_SM"] == ["total"] and plots["alpha_psi(s)"] == ["alpha mean"]
    assert plots["score-matching terms"] == [] and plots["cos(grad_a Q, score)"] == ["policy a"]
    offline = drawn(_rows(alpha=0.1, entropy=0.5, spread=0.3))
    assert offline["L_SM"] == ["policy half", "uniform half"] and len(offline) == 8

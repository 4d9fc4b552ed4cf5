"""The committed reproduction results (``results/repro-*``, docs/REPRODUCTION.md) are what
``smacrl report`` makes of the committed metrics: the tables and the summary are regenerated from the
committed ``config.json`` + ``metrics.jsonl`` and must equal the committed files byte for byte."""

from pathlib import Path

import pytest

from smacrl.eval.report import write_report

RESULTS = Path(__file__).resolve().parent.parent / "results"
GRIDS = sorted(p.parent.parent.name for p in RESULTS.glob("repro-*/report/summary.json"))
TABLES = ("regret.md", "regret.csv", "aggregate.md", "aggregate.csv", "summary.json")


def test_the_reproduction_has_committed_results():
    assert GRIDS, f"no results/repro-*/report under {RESULTS}"


@pytest.mark.parametrize("grid", GRIDS)
def test_committed_tables_equal_what_the_report_makes_of_the_committed_metrics(grid, tmp_path):
    root = RESULTS / grid
    summary = write_report([root / "runs"], tmp_path)  # the defaults: what `smacrl report DIR` writes
    for name in TABLES:
        committed = (root / "report" / name).read_text()
        assert (tmp_path / name).read_text() == committed, f"{grid}/report/{name} differs from the report's output"
    for fig in summary["figures"]:
        assert (root / "report" / fig).stat().st_size > 10_000, f"{grid}/report/{fig} missing"


def _claims():
    import importlib.util

    spec = importlib.util.spec_from_file_location("claims", RESULTS.parent / "experiments" / "repro" / "claims.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_claims_are_judged_from_the_reports(tmp_path):
    from test_report import make_sweep

    # the synthetic sweep: SMAC -> SAC gains (no drop), SMAC -> TD3 drops; IQL -> SAC drops;
    # SMAC -> SAC has the lower regret, SMAC -> TD3 the higher, on both tasks
    write_report([make_sweep(tmp_path / "runs")], tmp_path / "results" / "repro-x" / "report", reps=50)
    text = _claims().render(tmp_path / "results")
    cells = [line.strip("| ").split(" | ") for line in text.splitlines()]
    verdicts = {c[0]: c[2] for c in cells if len(c) == 3 and c[0] in ("(a)", "(b)", "(c)")}
    assert verdicts == {"(a)": "**mixed**", "(b)": "**held**", "(c)": "**mixed**"}, verdicts
    assert "| (a) SMAC → TD3 no drop | ta |" in text and text.count("| dropped |") == 4  # smac->td3, iql->sac


def test_committed_claims_equal_what_the_script_makes_of_the_reports():
    assert (RESULTS / "claims.md").read_text() == _claims().render(RESULTS)


def _smac_ab_probes(monkeypatch):
    """experiments/smac_ab_probes.py, imported as the script imports it (experiments/ on the path)."""
    import importlib

    monkeypatch.syspath_prepend(str(RESULTS.parent / "experiments"))
    return importlib.import_module("smac_ab_probes")


def test_smac_ab_score_mode_finds_the_mode_of_an_analytic_density(monkeypatch):
    # experiments/smac_ab.py's score-mode integrates a score over a grid of actions; for a Gaussian
    # N(mu(s), 0.3^2), whose score is -(a - mu(s)) / 0.3^2, the mode it finds must be mu(s)
    import torch

    probes = _smac_ab_probes(monkeypatch)
    obs = torch.tensor([[-0.7], [0.0], [0.33], [0.9]])
    mode = probes.mode_on_grid(lambda o, a: -(a - o) / 0.3**2, obs)
    assert torch.allclose(mode, obs, atol=0.011), mode  # the grid's spacing is 0.01
    # a score pointing the other way has its argmax of log p at an edge of the box, not at mu(s)
    edge = probes.mode_on_grid(lambda o, a: (a - o) / 0.3**2, obs)
    assert set(edge.flatten().tolist()) <= {-1.0, 1.0}


def test_smac_ab_bellman_rms_equals_the_hand_computed_residual(monkeypatch):
    # Q(s, a) = 2 s + 3 a and mu(s) = -s on two transitions, gamma 0.5, the second terminal:
    # y1 = 1 + 0.5 * Q(1, -1) = 1 + 0.5 * (2 - 3) = 0.5, Q(0, 1) = 3 -> residual 2.5
    # y2 = 0 (terminal, reward 0), Q(2, -1) = 4 - 3 = 1 -> residual 1; RMS = sqrt((6.25 + 1) / 2)
    import torch

    probes = _smac_ab_probes(monkeypatch)
    obs, act = torch.tensor([[0.0], [2.0]]), torch.tensor([[1.0], [-1.0]])
    rew, next_obs, not_done = torch.tensor([1.0, 0.0]), torch.tensor([[1.0], [5.0]]), torch.tensor([1.0, 0.0])

    def q(o, a):
        return (2 * o + 3 * a).squeeze(-1)

    rms = probes.bellman_rms(q, lambda o: -o, (obs, act, rew, next_obs, not_done), 0.5)
    assert rms == pytest.approx(((2.5**2 + 1.0) / 2) ** 0.5)


def test_smac_ab_shifted_copy_moves_q_by_the_shift_and_keeps_every_gradient(monkeypatch, tmp_path, small_spec):
    # the Q-shift arms fine-tune a copy of the handover whose critic and target critic are moved by a constant:
    # Q(s, a) + shift everywhere, grad_a Q and the actor exactly as they were
    import json

    import torch

    from smacrl.checkpoint import load_checkpoint, save_checkpoint
    from smacrl.nets import ActorCritic

    probes = _smac_ab_probes(monkeypatch)
    torch.manual_seed(0)
    ac = ActorCritic(small_spec)
    src = tmp_path / "offline"
    save_checkpoint(src / "checkpoints" / "final.safetensors", ac, algo="smac", step=7, config={"gamma": 0.9})
    (src / "config.json").write_text(json.dumps({"algo": "smac"}))
    probes.shifted_copy(src, tmp_path / "offline_q-10", -10.0)
    shifted = load_checkpoint(tmp_path / "offline_q-10" / "checkpoints" / "final.safetensors")
    assert shifted.step == 7 and shifted.config == {"gamma": 0.9} and shifted.meta["info"]["q_shift"] == -10.0
    b = shifted.actor_critic
    obs, act = torch.randn(32, 3), torch.rand(32, 2) * 2 - 1
    for net_a, net_b in ((ac.critic, b.critic), (ac.critic_target, b.critic_target)):
        a1, a2 = act.clone().requires_grad_(True), act.clone().requires_grad_(True)
        qa, qb = net_a(obs, a1.expand(4, -1, -1)), net_b(obs, a2.expand(4, -1, -1))
        assert torch.allclose(qb - qa, torch.full_like(qa, -10.0), atol=1e-5)
        (ga,) = torch.autograd.grad(qa.sum(), a1)
        (gb,) = torch.autograd.grad(qb.sum(), a2)
        assert torch.allclose(ga, gb, atol=1e-6)
    assert all(torch.equal(x, y) for x, y in zip(ac.actor.parameters(), b.actor.parameters(), strict=True))


def test_smac_ab_figure_reads_the_handover_and_the_first_read_and_draws_a_png(monkeypatch, tmp_path):
    # experiments/smac_ab.py figure: per seed J(pi_0) is the online run's step-0 evaluation and J(pi_1) its
    # step-250 one; a seed without both is left out; the png is written whole (the report's writer: a temporary
    # file, then a rename)
    import importlib
    import json

    monkeypatch.syspath_prepend(str(RESULTS.parent / "experiments"))
    fig = importlib.import_module("smac_ab_figure")
    monkeypatch.setattr(fig, "RESULTS", tmp_path)
    evals = {0: {0: 0.9, 250: 0.6, 500: 0.8}, 1: {0: 0.7, 250: 0.7}, 2: {0: 0.5}}  # seed 2 has no J(pi_1)
    for seed, ev in evals.items():
        run = tmp_path / fig.MAZE / "score_seed0" / f"s{seed}"
        for phase, rows in (("online", ev), ("offline", {3000: ev[0]})):
            (run / phase).mkdir(parents=True)
            lines = [json.dumps({"step": k, "eval/success_rate": v}) for k, v in rows.items()]
            (run / phase / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert fig.smac_transfer("score_seed0") == ([0.9, 0.7], [0.6, 0.7])
    assert fig.smac_transfer("score_seed1") is None
    assert fig.offline_final(fig.MAZE, "score_seed0") == [0.9, 0.7, 0.5]
    m, se = fig.mean_and_se([0.9, 0.7])
    assert m == pytest.approx(0.8) and se == pytest.approx(0.1)  # sd 0.1414 / sqrt(2)
    out = fig.figure(tmp_path / "fig.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob("*.tmp"))

"""``smacrl bench`` on tiny settings: every row is produced and well formed (speed is not checked)."""

import json
import math

from smacrl.bench import ALGOS, analytic_score, load_reference, newton_schulz_flops, update_flops


def test_bench_quick_output_format(tmp_path, capsys):
    from smacrl.cli import main

    out = tmp_path / "bench.json"
    argv = ["bench", "--quick", "--preset", "cpu", "--repeats", "2", "--updates", "1", "--warmup", "1"]
    argv += ["--replay-size", "500", "--eval-episodes", "1", "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert "errors" not in result
    rows = result["rows"]
    names = {(r["section"], r["name"]) for r in rows}
    assert {("update", a) for a in ALGOS} <= names
    assert {("replay", "ReplayBuffer.sample"), ("replay", "MixedSampler.sample")} <= names
    assert {("eval", "Hopper-v5"), ("eval", "Pendulum-v1")} <= names
    assert ("matmul", "critic layer GEMMs") in names and ("matmul", "Newton-Schulz bmm") in names
    for r in rows:
        for key in ("median", "low", "high", "reference", "ratio"):
            assert math.isfinite(r[key]) and r[key] > 0, (r["name"], key, r[key])
        assert r["low"] <= r["median"] <= r["high"]
        assert abs(r["ratio"] - r["median"] / r["reference"]) < 1e-9
        if r["section"] == "update":
            assert r["gflop"] > 0 and 0 < r["peak_fraction"] < 1.5
            assert f"{r['ratio']:.2f}x" in printed
    assert result["matmul_gflops"] > 0 and result["machine"]["threads"] == 1


def test_bench_markdown_holds_every_row(tmp_path):
    from smacrl.bench import run_bench, write_result

    result = run_bench(
        quick=True, presets=("cpu",), algos=("td3bc",), warmup=1, repeats=1, updates=1, replay_size=200,
        eval_episodes=1, envs=("Pendulum-v1",), threads=1, emit=lambda line: None,
    )  # fmt: skip
    path = tmp_path / "RESULTS.md"
    write_result(result, path)
    text = path.read_text()
    assert "torch" in text and "threads" in text and "load average" in text and "GFLOP/s" in text
    table = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith("| section")]
    assert len(table) == len(result["rows"]) == 5  # td3bc, its critic-layer GEMM rate, 2 replay, 1 eval
    assert [r.section for r in result["rows"]][:2] == ["update", "matmul"]


def test_flop_count_follows_the_rule():
    from smacrl.configs import make_config

    cfg = make_config("smac", "locomotion", optimizer="adam")
    f_c = 2 * 64 * 10 * (14 * 512 + 512 * 512 * 2 + 512)  # one critic-ensemble forward at B=64
    f_a = 2 * 64 * (11 * 512 + 512 * 512 * 2 + 512 * 6)
    f_alpha = 2 * 64 * (11 * 256 + 256 * 256 + 256)
    expected = 13 * f_c + 4 * f_a + f_a / 2 + 3 * f_alpha
    assert math.isclose(update_flops("smac", cfg, cfg, 64), expected)
    muon = make_config("smac", "locomotion")
    ns = 5 * 6 * 512**3  # Newton-Schulz on one 512x512 hidden matrix; critic 10 x 2, actor 2, alpha one 256x256
    assert math.isclose(update_flops("smac", muon, muon, 64) - expected, ns * 22 + 5 * 6 * 256**3)
    assert math.isclose(newton_schulz_flops("smac", muon, muon), ns * 22 + 5 * 6 * 256**3)
    assert newton_schulz_flops("smac", cfg, cfg) == 0.0


def test_reference_smac_runs_its_double_backward():
    import torch

    ref = load_reference().RefSAC(11, 3, (8,), (8, 8), 3, "tanh", score_fn=analytic_score, kappa=1.0,
                                  alpha_hidden=(8,))  # fmt: skip
    batch = {
        "obs": torch.randn(6, 11), "actions": torch.rand(6, 3) * 2 - 1, "rewards": torch.randn(6),
        "next_obs": torch.randn(6, 11), "terminals": torch.zeros(6),
    }  # fmt: skip
    before = [p.clone() for p in ref.alpha_net.parameters()]
    out = ref.update(batch)
    assert isinstance(out["loss_critic"], float)  # the reference syncs every step by design
    assert any(not torch.equal(a, b) for a, b in zip(before, ref.alpha_net.parameters(), strict=True))


def test_actor_only_backward_matches_full_backward():
    """TD3-family actor steps back-propagate into the actor's parameters only (a speed-up measured with
    ``smacrl bench``); ``inputs=None`` restores the plain backward, and both give the same parameters."""
    import torch

    from smacrl.configs import make_config
    from smacrl.nets.actor_critic import ActorCritic, ActorCriticSpec
    from smacrl.offline.td3bc import TD3BC
    from smacrl.online.td3 import TD3

    gen = torch.Generator().manual_seed(3)
    batches = [
        {"obs": torch.randn(16, 11, generator=gen), "actions": torch.rand(16, 3, generator=gen) * 2 - 1,
         "rewards": torch.randn(16, generator=gen), "next_obs": torch.randn(16, 11, generator=gen),
         "terminals": torch.zeros(16)}
        for _ in range(4)
    ]  # fmt: skip
    for cls, algo in ((TD3BC, "td3bc"), (TD3, "td3")):
        cfg = make_config(algo, "cpu")
        nets = make_config("td3bc", "cpu")
        finals = []
        for actor_only in (True, False):
            torch.manual_seed(0)
            ac = ActorCritic(ActorCriticSpec.from_config(nets, 11, [-1.0] * 3, [1.0] * 3))
            learner = cls(ac, cfg)
            assert learner._actor_params and all(p.requires_grad for p in learner._actor_params)
            if not actor_only:
                learner._actor_params = None  # backward(inputs=None): every leaf, the plain behaviour
            for b in batches:
                learner.update(b)
            finals.append({k: v.clone() for k, v in ac.state_dict().items()})
        for k in finals[0]:
            torch.testing.assert_close(finals[0][k], finals[1][k], rtol=0, atol=1e-6, msg=f"{algo}: {k}")


def test_corl_sizes_match_the_issue_flop_counts():
    """The CORL comparison rows use CORL's 2 critics at 512x3 and batch 64: the FLOP rule then gives the
    issue's own per-update counts (TD3+BC 0.82, IQL 1.02 GFLOP) to within the rule's differences."""
    import torch

    from smacrl.bench import CORL, build_case

    td3bc = build_case("td3bc", CORL, torch.device("cpu"), load_reference())
    assert td3bc.learner.ac.spec.ensemble_size == 2 and td3bc.batch_size == 64
    assert len(td3bc.reference.critic.members) == 2
    assert abs(td3bc.flops / 1e9 - 0.82) < 0.05
    iql = build_case("iql", CORL, torch.device("cpu"), load_reference())
    assert abs(iql.flops / 1e9 - 1.02) < 0.1


def test_bench_compile_and_corl_rows():
    """``--compile`` marks compiled learners (and the machine line); full runs add the CORL-size rows."""
    from smacrl.bench import CORL, run_bench

    result = run_bench(
        quick=False, presets=("cpu", CORL), algos=("td3bc",), warmup=1, repeats=1, updates=1, replay_size=200,
        eval_episodes=1, envs=("Pendulum-v1",), threads=1, emit=lambda line: None, compile=True,
    )  # fmt: skip
    assert "errors" not in result and result["machine"]["compile"] is True
    updates = [r for r in result["rows"] if r.section == "update"]
    assert [r.size for r in updates] == ["cpu B=32", "corl B=64"]
    assert all("critics compiled" in r.note for r in updates)
    assert "CORL: 53 updates/s" in updates[1].note and math.isfinite(updates[1].peak_fraction)
    import torch

    torch._dynamo.reset()

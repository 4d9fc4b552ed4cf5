"""``smacrl bench`` on tiny settings: every row is produced and well formed (speed is not checked), and
its FLOP counts agree with analytic figures."""

import json
import math
from pathlib import Path

import torch

from smacrl.bench import ALGOS, analytic_score, build_case, load_reference, synthetic_batch
from smacrl.bench.flops import count_flops, ensemble_layer_check, newton_schulz_check, update_flops, verify_counter


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
    assert result["flop_check"].startswith("FLOP counter check") and result["flop_check"] in printed


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
    assert "FlopCounterMode" in text and "FLOP counter check" in text
    table = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith("| section")]
    assert len(table) == len(result["rows"]) == 5  # td3bc, its critic-layer GEMM rate, 2 replay, 1 eval
    assert [r.section for r in result["rows"]][:2] == ["update", "matmul"]


def test_flop_counter_agrees_with_the_analytic_layer_count():
    """FlopCounterMode's count of one ensemble layer ``[E,B,in] x [E,in,out]``: ``2 E B in out`` forward,
    three times that with the input and weight gradients; Newton-Schulz all bfloat16 at its analytic count."""
    (fwd, fwd_ref), (both, both_ref) = ensemble_layer_check(ensemble=3, rows=5, fan_in=7, fan_out=11)
    assert fwd_ref == 2 * 3 * 5 * 7 * 11 and both_ref == 3 * fwd_ref
    assert fwd == fwd_ref and both == both_ref
    ns, ns_ref = newton_schulz_check(ensemble=2, m=8, n=12, steps=3)
    assert ns_ref == 2 * 3 * (4 * 8 * 8 * 12 + 2 * 8**3)
    assert ns.total == ns.newton_schulz == ns_ref
    assert "FLOP counter check" in verify_counter()
    plain = count_flops(lambda: torch.randn(4, 6) @ torch.randn(6, 5))  # float32: not in the bf16 part
    assert plain.total == 2 * 4 * 6 * 5 and plain.newton_schulz == 0


def test_update_flops_split_out_muon_exactly():
    """SMAC at the cpu preset: the bfloat16 part is Muon's Newton-Schulz on every hidden matrix (10 critic
    members, the actor and alpha_psi, one 64x64 matrix each: ``5 (4 m^2 n + 2 m^3)``), and it is all that
    Muon adds to the update's matmul FLOPs against AdamW."""
    cpu = torch.device("cpu")
    muon = build_case("smac", "cpu", cpu)
    adam = build_case("smac_adam", "cpu", cpu)
    assert muon.ns_flops == 12 * 5 * 6 * 64**3
    assert adam.ns_flops == 0 and adam.flops > 0
    assert muon.flops - muon.ns_flops == adam.flops


def test_counting_leaves_the_timed_learner_and_random_stream_alone():
    cpu = torch.device("cpu")
    cases = []
    for count in (True, False):
        torch.manual_seed(0)
        cases.append((build_case("td3bc", "cpu", cpu, count_flops=count), torch.rand(3)))
    (counted, after_count), (plain, after_plain) = cases
    steps = counted.learner.updates
    assert getattr(steps, "value", steps) == 0  # an int, or a step counter holding one
    assert math.isfinite(counted.flops) and math.isnan(plain.flops)
    torch.testing.assert_close(after_count, after_plain, rtol=0, atol=0)
    for a, b in zip(counted.learner.ac.state_dict().values(), plain.learner.ac.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_delayed_actor_step_is_averaged_over_policy_delay():
    """TD3+BC steps its actor every second update: the figure is the mean over two consecutive updates,
    more than a critic-only update (the learner's first)."""
    cpu = torch.device("cpu")

    def make():
        return build_case("td3bc", "cpu", cpu, count_flops=False).learner

    assert make().cfg.policy_delay == 2
    batch = synthetic_batch(32, cpu, torch.Generator().manual_seed(0))
    critic_only = update_flops(make, batch, updates=1).total
    learner = make()
    two = count_flops(lambda: [learner.update(batch) for _ in range(2)]).total
    assert update_flops(make, batch).total == two / 2 > critic_only


def test_bench_modules_stay_short():
    """No bench module over about 400 lines (issue 16)."""
    import smacrl.bench

    for path in Path(smacrl.bench.__file__).parent.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path.name


def test_reference_smac_runs_its_double_backward():
    assert load_reference().__name__ == "smacrl.bench.reference"  # installed with the package
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
    """The CORL comparison rows use CORL's 2 critics at 512x3 and batch 64: the counted FLOPs then match
    the issue's own per-update counts (TD3+BC 0.82, IQL 1.02 GFLOP) to within the counts' differences."""
    from smacrl.bench import CORL

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
    torch._dynamo.reset()

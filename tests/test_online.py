"""Online fine-tuning: every online algorithm continues from an offline checkpoint (the common contract)."""

import copy
import json
import shutil

import numpy as np
import pytest
import torch

from smacrl.checkpoint import load_checkpoint
from smacrl.cli import main
from smacrl.logger import read_metrics


@pytest.fixture(scope="module")
def smac_ckpt(pendulum_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("smac")
    mp = pytest.MonkeyPatch()
    mp.setenv("SMACRL_CACHE", str(root / "cache"))
    out = root / "run"
    code = main(
        ["pretrain", "--algo", "smac", "--dataset", str(pendulum_data), "--preset", "cpu", "--steps", "60",
         "--score-steps", "100", "--eval-every", "0", "--log-every", "20", "--no-progress", "--out", str(out)]
    )  # fmt: skip
    mp.undo()
    assert code == 0
    return out


def test_generated_dataset_follows_d4rl_layout(pendulum_data):
    import h5py

    with h5py.File(pendulum_data) as f:
        n = len(f["rewards"])
        assert n == 600 and f["observations"].shape == (600, 3) and f["actions"].shape == (600, 1)
        assert f.attrs["protocol"].startswith("sac_medium_replay")
        assert np.abs(f["actions"][:]).max() <= 2.0  # env units (Pendulum's box is [-2, 2])
        ends = f["terminals"][:] | f["timeouts"][:]
        assert ends[-1] and ends.sum() >= 3  # 200-step episodes, the last one closed


@pytest.mark.parametrize("algo", ["sac", "td3", "td3bc", "awr"])
def test_every_online_algorithm_finetunes_a_smac_checkpoint(algo, smac_ckpt, tmp_path):
    out = tmp_path / algo
    code = main(
        ["finetune", "--algo", algo, "--checkpoint", str(smac_ckpt), "--preset", "cpu", "--steps", "120",
         "--warmup-steps", "60", "--eval-after-first", "40", "--eval-every", "100", "--eval-episodes", "2",
         "--log-every", "40", "--no-progress", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    rows = read_metrics(out)
    evals = [r for r in rows if "eval/return_mean" in r]
    assert [r["step"] for r in evals] == [0, 40, 100, 120]  # J(pi_0), J(pi_1), periodic, final
    losses = [r["online/loss_td"] for r in rows if "online/loss_td" in r]
    assert len(losses) == 120 and all(np.isfinite(losses))
    ck = load_checkpoint(out / "checkpoints" / "final.safetensors", obs_dim=3, act_dim=1)
    assert ck.meta["info"]["offline_algo"] == "smac" and ck.step == 120
    before = load_checkpoint(smac_ckpt / "checkpoints" / "final.safetensors").actor_critic
    assert not torch.equal(before.actor.head.weight, ck.actor_critic.actor.head.weight)  # the actor moved
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["offline_algo"] == "smac" and cfg["config"]["dataset_fraction"] == 0.5
    snaps = sorted((out / "trajectory").glob("*.safetensors"))  # 20 points per run + step 0
    assert [load_checkpoint(p).step for p in snaps] == list(range(0, 121, 6))


def test_finetune_wrong_task_is_one_line_error(smac_ckpt, capsys):
    code = main(["finetune", "--checkpoint", str(smac_ckpt), "--task", "Hopper-v5", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "obs_dim" in err


def test_killed_run_resumes_from_last_checkpoint(smac_ckpt, tmp_path):
    out = tmp_path / "resume"
    args = ["finetune", "--algo", "sac", "--checkpoint", str(smac_ckpt), "--preset", "cpu", "--warmup-steps", "30",
            "--eval-episodes", "0", "--checkpoint-every", "50", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main([*args, "--steps", "80"]) == 0
    # make it look killed after step 50's checkpoint: no final checkpoint, latest -> step 50
    final = out / "checkpoints" / "final.safetensors"
    final.unlink()
    (out / "checkpoints" / "latest").write_text("step_000000050.safetensors\n")
    assert main([*args, "--steps", "80"]) == 0
    steps = [r["step"] for r in read_metrics(out) if "online/loss_td" in r]
    assert steps == list(range(1, 81))  # resumed at 51; rows logged after the checkpoint were replaced
    resumed = load_checkpoint(final)
    assert resumed.step == 80
    at50 = load_checkpoint(out / "checkpoints" / "step_000000050.safetensors").actor_critic
    assert not torch.equal(at50.actor.head.weight, resumed.actor_critic.actor.head.weight)  # trained on


def test_report_over_seeds_and_algorithms(smac_ckpt, tmp_path, capsys):
    runs = tmp_path / "runs"
    for algo in ("sac", "td3"):
        for seed in (0, 1):
            assert main(
                ["finetune", "--algo", algo, "--checkpoint", str(smac_ckpt), "--preset", "cpu", "--steps", "60",
                 "--warmup-steps", "30", "--eval-after-first", "20", "--eval-every", "20", "--eval-episodes", "2",
                 "--seed", str(seed), "--no-progress", "--out", str(runs / f"{algo}-{seed}")]
            ) == 0  # fmt: skip
    out = tmp_path / "report"
    assert main(["report", str(runs), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = {(r["offline"], r["online"]): r for r in summary["rows"]}
    assert set(rows) == {("smac", "sac"), ("smac", "td3")}
    for r in rows.values():
        assert r["seeds"] == 2 and np.isfinite(r["regret_mean"]) and r["regret_mean"] >= 0
        assert np.isfinite(r["drop"]) and isinstance(r["stable_transfer"], bool)
    assert sorted(summary["normalized_regret"].values())[0] == 0.0  # the best pair of the only task
    md = (out / "regret.md").read_text()
    assert "| pendulum-medium-replay |" in md and "Transfer at the switch" in md
    png = (out / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "regret" in capsys.readouterr().out


def test_run_pipeline_caches_and_resumes(pendulum_data, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("SMACRL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SMACRL_CACHE", str(tmp_path / "cache"))
    (tmp_path / "data").mkdir()
    shutil.copy(pendulum_data, tmp_path / "data" / "pendulum-medium-replay.hdf5")  # the cached local dataset
    out = tmp_path / "run"
    args = ["run", "--task", "pendulum-medium-replay", "--offline", "smac", "--online", "sac", "--preset", "cpu",
            "--offline-steps", "40", "--online-steps", "40", "--score-steps", "50", "--no-progress",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    off_final = out / "offline" / "checkpoints" / "final.safetensors"
    on_final = out / "online" / "checkpoints" / "final.safetensors"
    assert (
        load_checkpoint(off_final).algo == "smac" and load_checkpoint(on_final).meta["info"]["offline_algo"] == "smac"
    )
    off_last = [r for r in read_metrics(out / "offline") if "eval/return_mean" in r][-1]
    on_first = [r for r in read_metrics(out / "online") if "eval/return_mean" in r][0]
    assert off_last["step"] == 40 and on_first["step"] == 0
    assert on_first["eval/return_mean"] == off_last["eval/return_mean"]  # J(pi_0): same policy, same eval seeds
    score_files = list((tmp_path / "cache" / "score").rglob("score.safetensors"))
    assert len(score_files) == 1
    stamps = [p.stat().st_mtime_ns for p in (off_final, on_final, score_files[0])]
    assert main(args) == 0  # a finished pipeline: every stage is reused, nothing is rewritten
    assert [p.stat().st_mtime_ns for p in (off_final, on_final, score_files[0])] == stamps
    shutil.rmtree(tmp_path / "cache")  # a finished offline run does not need its score model again
    assert main(args) == 0
    assert not (tmp_path / "cache").exists()
    assert [p.stat().st_mtime_ns for p in (off_final, on_final)] == stamps[:2]


def test_matched_temperature_control_ignores_the_handed_over_coefficient(smac_ckpt):
    from smacrl.configs import make_config
    from smacrl.online.sac import build

    ckpt = load_checkpoint(smac_ckpt / "checkpoints" / "final.safetensors")
    handed = float(torch.exp(ckpt.extras["ent_coef"]["log_alpha"]))
    protocol = build(ckpt.actor_critic, make_config("sac", "cpu", offline_algo="smac"), checkpoint=ckpt)
    matched_cfg = make_config("sac", "cpu", offline_algo="smac", init_ent_coef=0.05, ent_coef_from_checkpoint=False)
    matched = build(ckpt.actor_critic, matched_cfg, checkpoint=ckpt)
    assert abs(handed - 0.05) > 0.1  # the checkpoint hands over something else
    assert float(protocol.ent_coef().detach()) == pytest.approx(handed)
    assert float(matched.ent_coef().detach()) == pytest.approx(0.05)


def test_a_variant_keeps_its_label_through_finetune_and_report(pendulum_data, tmp_path):
    from smacrl.eval.runs import load_run

    cell = tmp_path / "runs" / "iql-variant-s0"
    fast = ["--preset", "cpu", "--eval-episodes", "1", "--no-progress", "--trajectory-points", "0"]
    assert main(["pretrain", "--algo", "iql", "--dataset", str(pendulum_data), "--task", "pendulum-medium-replay",
                 "--steps", "30", "--eval-every", "30", "--label", "iql-variant", "--out", str(cell / "offline"),
                 *fast]) == 0  # fmt: skip
    assert main(["finetune", "--algo", "sac", "--checkpoint", str(cell / "offline"), "--steps", "20",
                 "--warmup-steps", "10", "--eval-after-first", "10", "--eval-every", "20", "--label", "sac-matched",
                 "--no-ent-coef-from-checkpoint", "--init-ent-coef", "0.05",
                 "--out", str(cell / "online-sac-matched"), *fast]) == 0  # fmt: skip
    doc = json.loads((cell / "online-sac-matched" / "config.json").read_text())
    assert doc["algo"] == "sac" and doc["offline_algo"] == "iql" and doc["offline_label"] == "iql-variant"
    assert doc["config"]["ent_coef_from_checkpoint"] is False and doc["config"]["init_ent_coef"] == 0.05
    curve, offline = load_run(cell / "online-sac-matched")
    assert (curve.offline, curve.online) == ("iql-variant", "sac-matched") and offline is not None

    # committed results keep config.json + metrics.jsonl only, somewhere else: the offline curve is
    # found beside the fine-tuning, though the recorded checkpoint path no longer exists
    copy = tmp_path / "copy" / "iql-variant-s0"
    for part in ("offline", "online-sac-matched"):
        (copy / part).mkdir(parents=True)
        for name in ("config.json", "metrics.jsonl"):
            (copy / part / name).write_bytes((cell / part / name).read_bytes())
    shutil.rmtree(tmp_path / "runs")
    curve2, offline2 = load_run(copy / "online-sac-matched")
    assert offline2 is not None and np.array_equal(offline2[0], offline[0]) and curve2.offline == "iql-variant"


# ----------------------------------------------------------------------------- L_SM kept online
def _online_smac_batch(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(n, 2, generator=g) * 2 - 1
    return {"obs": s, "actions": torch.rand(n, 2, generator=g) * 2 - 1, "rewards": torch.rand(n, generator=g),
            "next_obs": torch.rand(n, 2, generator=g) * 2 - 1, "terminals": torch.zeros(n)}  # fmt: skip


def _sac_with_score_matching(kappa, seed=0):
    from smacrl.configs import make_config
    from smacrl.nets import ActorCritic, ActorCriticSpec
    from smacrl.offline.smac import AlphaNet
    from smacrl.online.sac import SAC, FrozenScoreMatching

    torch.manual_seed(seed)
    nets = make_config("smac", "cpu", critic_hidden=(32,), actor_hidden=(32,), ensemble_size=2)
    ac = ActorCritic(ActorCriticSpec.from_config(nets, 2, (-1.0, -1.0), (1.0, 1.0)))
    cfg = make_config("sac", "cpu", score_matching_kappa=kappa)
    alpha_net = AlphaNet(2, (8,), init=0.3)
    score = lambda s, a: -(a - 0.5 * s) / 0.2**2  # noqa: E731  (grad_a log N(a; s/2, 0.2^2 I))
    return SAC(ac, cfg, score_matching=FrozenScoreMatching(alpha_net, score) if kappa else None), score


@pytest.mark.parametrize("td_entropy", [True, False])
def test_sac_td_target_keeps_or_drops_the_entropy_term(td_entropy):
    from smacrl.configs import make_config
    from smacrl.losses import ensemble_td_loss, td_target
    from smacrl.nets import ActorCritic, ActorCriticSpec
    from smacrl.online.sac import SAC

    torch.manual_seed(0)
    nets = make_config("smac", "cpu", critic_hidden=(32,), actor_hidden=(32,), ensemble_size=2)
    ac = ActorCritic(ActorCriticSpec.from_config(nets, 2, (-1.0, -1.0), (1.0, 1.0)))
    sac = SAC(ac, make_config("sac", "cpu", td_entropy=td_entropy, init_ent_coef=5.0))
    batch = _online_smac_batch()
    ref = copy.deepcopy(ac)  # the hand computation, on the weights before the update, the same random draws
    with torch.no_grad():
        obs_n, next_n = ref.obs_norm(batch["obs"]), ref.obs_norm(batch["next_obs"])
        targets = {}
        for soft in (True, False):
            torch.manual_seed(9)
            ent = torch.tensor(5.0) if soft else None
            targets[soft] = td_target(ref, next_n, batch["rewards"], batch["terminals"], 0.99, ent_coef=ent)
        want = ensemble_td_loss(ref.critic(obs_n, batch["actions"]), targets[td_entropy])
        other = ensemble_td_loss(ref.critic(obs_n, batch["actions"]), targets[not td_entropy])
    torch.manual_seed(9)
    got = sac.update(batch)["loss_td"]
    torch.testing.assert_close(got, want)
    assert abs(got - other) > 1e-3  # the entropy term (ent_coef 5) moves the target: the two readings differ


def test_online_score_matching_adds_kappa_l_sm_over_both_halves_with_alpha_frozen():
    from smacrl.offline.smac import action_gradient, score_matching_actions

    batch = _online_smac_batch()
    sac, score = _sac_with_score_matching(kappa=2.0)
    alpha_before = {k: v.clone() for k, v in sac.score_matching.alpha_net.state_dict().items()}
    # the hand computation, on a copy taken before the update: rows even first, then odd, so B(A)'s policy
    # half holds states from both the dataset's rows (first) and the replay's (second); alpha fixed
    ac = copy.deepcopy(sac.ac)
    torch.manual_seed(9)
    from smacrl.losses import td_target

    obs_n = ac.obs_norm(batch["obs"])
    td_target(
        ac, ac.obs_norm(batch["next_obs"]), batch["rewards"], batch["terminals"], 0.99, ent_coef=sac.ent_coef().detach()
    )  # fmt: skip  (the same random draws as update's target)
    order = torch.tensor([*range(0, 64, 2), *range(1, 64, 2)])
    a = score_matching_actions(ac, obs_n[order])
    grad, _ = action_gradient(ac.critic, obs_n[order], a, 2)
    with torch.no_grad():
        alpha = sac.score_matching.alpha_net(obs_n[order])
    want = (grad.detach() - alpha[None, :, None] * score(batch["obs"][order], a)[None]).square().sum(-1).mean(-1).sum()
    torch.manual_seed(9)
    metrics = sac.update(batch)
    torch.testing.assert_close(metrics["loss_sm"], want)
    assert metrics["alpha_mean"].item() == pytest.approx(0.3, abs=0.05)
    for _ in range(5):
        sac.update(batch)
    for k, v in sac.score_matching.alpha_net.state_dict().items():
        assert torch.equal(v, alpha_before[k]), k  # alpha_psi frozen
    # and the term moves the critic: kappa = 0 (the paper's SAC) gives another critic from the same start
    plain, _ = _sac_with_score_matching(kappa=0.0)
    with_sm, _ = _sac_with_score_matching(kappa=2.0)
    before = [p.clone() for p in plain.ac.critic.parameters()]
    assert all(torch.equal(p, q) for p, q in zip(before, with_sm.ac.critic.parameters(), strict=True))
    for learner in (plain, with_sm):
        torch.manual_seed(9)
        assert ("loss_sm" in learner.update(batch)) == (learner is with_sm)
    moved = [not torch.equal(p, q) for p, q in zip(plain.ac.critic.parameters(), with_sm.ac.critic.parameters())]
    assert any(moved)


def test_finetune_keeps_l_sm_with_the_checkpoints_score_model_and_alpha(smac_ckpt, tmp_path, monkeypatch):
    cache = smac_ckpt.parent / "cache"  # the score model the SMAC checkpoint was trained with
    monkeypatch.setenv("SMACRL_CACHE", str(cache))
    models = sorted(p.name for p in (cache / "score").iterdir())
    out = tmp_path / "sm"
    code = main(
        ["finetune", "--checkpoint", str(smac_ckpt), "--preset", "cpu", "--steps", "40", "--warmup-steps", "40",
         "--eval-after-first", "20", "--eval-every", "100", "--eval-episodes", "1", "--log-every", "20",
         "--score-matching-kappa", "1.0", "--no-progress", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in (cache / "score").iterdir()) == models  # reused, none trained
    rows = [r for r in read_metrics(out) if "online/loss_sm" in r]
    assert rows and all(np.isfinite(r["online/loss_sm"]) for r in rows)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["score_matching_kappa"] == 1.0
    offline = load_checkpoint(smac_ckpt / "checkpoints" / "final.safetensors")
    online = load_checkpoint(out / "checkpoints" / "final.safetensors")
    for name, t in offline.extras["alpha_net"].items():
        assert torch.equal(t, online.extras["alpha_net"][name]), name


def test_online_score_matching_needs_a_smac_checkpoint(tmp_path, capsys):
    init = tmp_path / "init"
    assert main(["init", "--env", "Pendulum-v1", "--out", str(init)]) == 0
    capsys.readouterr()
    code = main(["finetune", "--checkpoint", str(init), "--score-matching-kappa", "1", "--no-progress",
                 "--out", str(tmp_path / "ft")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "score_matching_kappa" in err and "SMAC checkpoint" in err
    code = main(["finetune", "--checkpoint", str(init), "--score-matching-kappa", "-1", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "must be >= 0" in err
    # alpha = 0 leaves the action-gradient penalty alone: no score model, any checkpoint
    out = tmp_path / "penalty"
    code = main(["finetune", "--checkpoint", str(init), "--score-matching-kappa", "1", "--score-matching-alpha",
                 "zero", "--steps", "20", "--warmup-steps", "20", "--eval-episodes", "0", "--no-progress",
                 "--log-every", "10", "--out", str(out)])  # fmt: skip
    assert code == 0
    rows = [r for r in read_metrics(out) if "online/loss_sm" in r]
    assert rows and all(r["online/alpha_mean"] == 0.0 and r["online/loss_sm"] > 0 for r in rows)


def test_zero_alpha_term_is_the_action_gradient_penalty():
    from smacrl.offline.smac import action_gradient, score_matching_actions
    from smacrl.online.sac import FrozenScoreMatching

    sac, _ = _sac_with_score_matching(kappa=1.0)
    batch = _online_smac_batch()
    obs_n = sac.ac.obs_norm(batch["obs"])
    torch.manual_seed(4)
    l_sm, *_ = FrozenScoreMatching(None, None)(sac.ac, batch["obs"], obs_n)
    torch.manual_seed(4)
    order = torch.tensor([*range(0, 64, 2), *range(1, 64, 2)])
    grad, _ = action_gradient(sac.ac.critic, obs_n[order], score_matching_actions(sac.ac, obs_n[order]), 2)
    torch.testing.assert_close(l_sm, grad.square().sum(-1).mean(-1).sum())


def test_online_score_matching_without_the_dataset_is_one_line(smac_ckpt, tmp_path, capsys):
    code = main(["finetune", "--checkpoint", str(smac_ckpt), "--dataset", "none", "--score-matching-kappa", "1",
                 "--no-progress", "--out", str(tmp_path / "ft")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "score_matching_kappa" in err and "--dataset" in err
    assert not (tmp_path / "ft" / "checkpoints").exists()


def test_online_score_matching_loads_the_score_model_a_smac_config_names_without_the_dataset(
    smac_ckpt, pendulum_data, tmp_path, monkeypatch
):
    (model,) = [p for p in (smac_ckpt.parent / "cache" / "score").iterdir() if p.is_dir()]
    named = tmp_path / "named"
    code = main(
        ["pretrain", "--algo", "smac", "--dataset", str(pendulum_data), "--preset", "cpu", "--steps", "20",
         "--score-model", str(model), "--eval-every", "0", "--log-every", "10", "--no-progress", "--out", str(named)]
    )  # fmt: skip
    assert code == 0
    empty = tmp_path / "empty-cache"  # a cache lookup would train a score model here
    monkeypatch.setenv("SMACRL_CACHE", str(empty))
    out = tmp_path / "ft"
    code = main(["finetune", "--checkpoint", str(named), "--dataset", "none", "--score-matching-kappa", "1",
                 "--steps", "20", "--warmup-steps", "20", "--eval-episodes", "0", "--log-every", "10",
                 "--no-progress", "--out", str(out)])  # fmt: skip
    assert code == 0
    assert not (empty / "score").exists()
    rows = [r for r in read_metrics(out) if "online/loss_sm" in r]
    assert rows and all(np.isfinite(r["online/loss_sm"]) and r["online/alpha_mean"] > 0 for r in rows)

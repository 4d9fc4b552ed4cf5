"""SMAC's score-matching regularizer against analytic scores."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from smacrl.configs import make_config
from smacrl.errors import ConfigError
from smacrl.nets import ActorCritic, ActorCriticSpec
from smacrl.offline.smac import SMAC, AlphaNet, action_gradient, mean_cosine, score_matching_loss

SIGMA = 0.2
M = torch.tensor([[0.6, -0.3], [0.2, 0.5]])


def mu(s):
    return torch.tanh(s @ M)


def analytic_score(s, a):
    """grad_a log N(a; mu(s), SIGMA^2 I)."""
    return -(a - mu(s)) / SIGMA**2


class LogDensityCritic(nn.Module):
    """Q_e(s, a) = c_e * log N(a; mu(s), SIGMA^2 I): an 'ensemble' whose action-gradient is c_e * score."""

    def __init__(self, c):
        super().__init__()
        self.c = nn.Parameter(torch.as_tensor(c, dtype=torch.float32))

    def forward(self, s, a):
        logp = -0.5 * ((a - mu(s)) / SIGMA).square().sum(-1) - a.shape[-1] * math.log(SIGMA * math.sqrt(2 * math.pi))
        return self.c[:, None] * logp


def test_score_matching_loss_is_zero_at_alpha_equal_c_and_trains_both():
    torch.manual_seed(0)
    s, a = torch.randn(32, 2), torch.rand(32, 2) * 2 - 1
    critic = LogDensityCritic([3.0, 3.0])
    grad_q, _ = action_gradient(critic, s, a, ensemble_size=2)
    score = analytic_score(s, a)
    torch.testing.assert_close(grad_q, 3.0 * score.expand(2, -1, -1))
    assert score_matching_loss(grad_q, torch.full((32,), 3.0), score).item() < 1e-8
    assert score_matching_loss(grad_q, torch.full((32,), 2.0), score).item() > 1.0
    # with a learned alpha_psi and c != alpha, gradients reach theta (c) and psi (alpha net)
    critic = LogDensityCritic([2.0, 4.0])
    alpha_net = AlphaNet(2, (8,))
    grad_q, _ = action_gradient(critic, s, a, ensemble_size=2)
    score_matching_loss(grad_q, alpha_net(s), score).backward()
    assert critic.c.grad is not None and (critic.c.grad.abs() > 0).all()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in alpha_net.parameters())
    # hand-computed: d/dc_e sum_b mean ||(c_e - alpha) score||^2 = 2 (c_e - alpha) mean ||score||^2
    alpha = torch.full((32,), 3.0)
    critic = LogDensityCritic([2.0, 4.0])
    grad_q, _ = action_gradient(critic, s, a, ensemble_size=2)
    score_matching_loss(grad_q, alpha, score).backward()
    sq = score.square().sum(-1).mean()
    torch.testing.assert_close(critic.c.grad, torch.stack([2 * (2.0 - 3.0) * sq, 2 * (4.0 - 3.0) * sq]))


def _toy_smac(steps=400, seed=0):
    torch.manual_seed(seed)
    cfg = make_config(
        "smac",
        "cpu",
        critic_hidden=(64, 64),
        actor_hidden=(64, 64),
        ensemble_size=2,
        kappa=10.0,
        optimizer="adam",
        critic_lr=1e-3,
        alpha_lr=1e-3,
        actor_lr=3e-4,
    )
    spec = ActorCriticSpec.from_config(cfg, 2, (-1.0, -1.0), (1.0, 1.0))
    ac = ActorCritic(spec)
    smac = SMAC(ac, cfg, analytic_score)
    for _ in range(steps):
        s = torch.rand(128, 2) * 2 - 1
        a = (mu(s) + SIGMA * torch.randn(128, 2)).clamp(-1, 1)
        batch = {
            "obs": s,
            "actions": a,
            "rewards": torch.zeros(128),
            "next_obs": torch.rand(128, 2) * 2 - 1,
            "terminals": torch.ones(128),
        }
        metrics = smac.update(batch)
    return smac, metrics


def test_toy_critic_gradient_aligns_with_true_score_and_points_to_data():
    smac, metrics = _toy_smac()
    for k in ("loss_td", "loss_sm", "loss_actor", "alpha_mean", "entropy", "cos_uniform", "cos_policy"):
        assert torch.isfinite(metrics[k]), k
    torch.manual_seed(1)
    s = torch.rand(512, 2) * 2 - 1
    a = (mu(s) + SIGMA * torch.randn(512, 2)).clamp(-1, 1)
    batch = {"obs": s, "actions": a}
    cos_data = smac.data_cosine(batch).item()
    assert cos_data >= 0.8, cos_data
    # out-of-data actions: grad_a Q points back toward the data's mode
    far = (mu(s) + 0.8 * torch.nn.functional.normalize(torch.randn(512, 2), dim=-1)).clamp(-1, 1)
    grad, _ = action_gradient(smac.ac.critic, s, far, smac.ac.spec.ensemble_size)
    toward = ((grad.detach() * (mu(s) - far)).sum(-1) > 0).float().mean().item()
    assert toward > 0.9, toward
    assert mean_cosine(grad.detach(), analytic_score(s, far)).item() > 0.8


def test_pretrain_gives_the_same_weights_with_a_cold_or_warm_score_cache(pendulum_data, tmp_path, monkeypatch):
    """Training the score model (cold cache) and loading it (warm cache) draw from torch's RNG differently;
    the SMAC run built on it must not depend on which happened."""
    from smacrl.checkpoint import load_checkpoint
    from smacrl.cli import main

    monkeypatch.setenv("SMACRL_CACHE", str(tmp_path / "cache"))
    finals = []
    for run in ("cold", "warm"):
        out = tmp_path / run
        assert main(["pretrain", "--algo", "smac", "--dataset", str(pendulum_data), "--preset", "cpu", "--steps", "15",
                     "--score-steps", "20", "--eval-every", "0", "--log-every", "5", "--no-progress",
                     "--out", str(out)]) == 0  # fmt: skip
        finals.append(load_checkpoint(out / "checkpoints" / "final.safetensors"))
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == 1  # the second run loaded it
    for name, a in finals[0].actor_critic.state_dict().items():
        torch.testing.assert_close(a, finals[1].actor_critic.state_dict()[name], rtol=0, atol=0, msg=name)
    for name, a in finals[0].extras["alpha_net"].items():
        torch.testing.assert_close(a, finals[1].extras["alpha_net"][name], rtol=0, atol=0, msg=name)


# ----------------------------------------------------------------------------- the config switches
def _batch(n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(n, 2, generator=g) * 2 - 1
    return {
        "obs": s,
        "actions": (mu(s) + SIGMA * torch.randn(n, 2, generator=g)).clamp(-1, 1),
        "rewards": torch.rand(n, generator=g),
        "next_obs": torch.rand(n, 2, generator=g) * 2 - 1,
        "terminals": torch.zeros(n),
    }


def _smac(seed=0, score=analytic_score, **overrides):
    torch.manual_seed(seed)
    cfg = make_config("smac", "cpu", critic_hidden=(32,), actor_hidden=(32,), ensemble_size=2, **overrides)
    ac = ActorCritic(ActorCriticSpec.from_config(cfg, 2, (-1.0, -1.0), (1.0, 1.0)))
    return SMAC(ac, cfg, score)


def _l_sm_by_hand(smac, batch, alpha, seed=5, score=analytic_score):
    """L_SM on ``smac``'s weights before any update, with the random draws an update seeded ``seed`` makes (the
    TD target's policy samples first, then B(A)): ``sum_e mean_b ||grad_a Q_e - alpha score||^2``."""
    from smacrl.losses import td_target
    from smacrl.offline.smac import score_matching_actions

    torch.manual_seed(seed)
    obs_n = smac.ac.obs_norm(batch["obs"])
    td_target(smac.ac, smac.ac.obs_norm(batch["next_obs"]), batch["rewards"], batch["terminals"], 0.99)
    a = score_matching_actions(smac.ac, obs_n)
    grad, _ = action_gradient(smac.ac.critic, obs_n, a, 2)
    target = alpha * score(batch["obs"], a) if score is not None else torch.zeros_like(a)
    return (grad.detach() - target).square().sum(-1).mean(-1).sum()


def test_td_entropy_switch_decides_whether_the_temperature_enters_the_td_loss():
    losses = {}
    for td_entropy in (True, False):
        for temp in (1.0, 5.0):
            smac = _smac(init_ent_coef=temp, td_entropy=td_entropy)
            torch.manual_seed(3)  # the same policy samples in the target
            losses[td_entropy, temp] = smac.update(_batch())["loss_td"].item()
    assert losses[False, 1.0] == losses[False, 5.0]  # a plain target: the temperature does not enter
    assert abs(losses[True, 1.0] - losses[True, 5.0]) > 1e-3


def test_alpha_init_and_parameterisations():
    s = torch.randn(64, 2)
    soft = AlphaNet(2, (16,), param="softplus", init=0.1)
    torch.testing.assert_close(torch.nn.functional.softplus(soft.net.net[-1].bias), torch.tensor([0.1]))
    assert (soft(s) > 0).all()
    lin = AlphaNet(2, (16,), param="linear", init=-0.2)
    torch.testing.assert_close(lin.net.net[-1].bias, torch.tensor([-0.2]))
    # linear reads the raw output: it can be negative, and it equals the net's output
    torch.testing.assert_close(lin(s), lin.net(s).squeeze(-1))
    with torch.no_grad():
        lin.net.net[-1].bias.fill_(-50.0)
    assert (lin(s) < 0).all()
    # a collapsed softplus alpha has (almost) no gradient to come back with; the linear one does
    soft_collapsed = AlphaNet(2, (16,), param="softplus", init=1e-20)
    soft_collapsed(s).sum().backward()
    lin.net.zero_grad()
    lin(s).sum().backward()
    assert soft_collapsed.net.net[-1].bias.grad.abs().item() < 1e-12
    assert lin.net.net[-1].bias.grad.item() == 64.0


def test_alpha_floor_keeps_alpha_off_zero_and_init_includes_it():
    s = torch.randn(64, 2)
    floored = AlphaNet(2, (16,), param="softplus", init=0.3, floor=0.05)
    with torch.no_grad():
        floored.net.net[-1].weight.zero_()  # the output is then the bias alone
    torch.testing.assert_close(floored(s), torch.full((64,), 0.3))
    with torch.no_grad():
        floored.net.net[-1].bias.fill_(-50.0)  # where an unfloored softplus alpha has collapsed
    torch.testing.assert_close(floored(s), torch.full((64,), 0.05))
    with pytest.raises(ValueError, match="alpha_min"):
        AlphaNet(2, (16,), param="softplus", init=0.05, floor=0.05)
    with pytest.raises(ConfigError, match="alpha_init"):
        make_config("smac", "cpu", alpha_min=0.1, alpha_init=0.05)
    with pytest.raises(ConfigError, match="alpha_min"):
        make_config("smac", "cpu", alpha_min=-0.1)
    with pytest.raises(ConfigError, match="alpha_init.*temperature"):
        make_config("smac", "cpu", alpha_param="temperature", alpha_init=0.5)


def test_alpha_temperature_reads_the_entropy_coefficient_and_learns_no_alpha_net():
    smac = _smac(init_ent_coef=0.3, alpha_param="temperature")
    batch = _batch()
    alpha_before = [p.clone() for p in smac.alpha_net.parameters()]
    torch.manual_seed(5)
    metrics = smac.update(batch)
    # alpha_psi(s) is the coefficient of this step, before its own update: 0.3 at every state
    assert metrics["alpha_std"].item() == 0.0
    torch.testing.assert_close(metrics["alpha_mean"], torch.tensor(0.3))
    # hand-computed: L_SM = sum_e mean_b ||grad_a Q_e - 0.3 score||^2 on the same actions, before the step
    expected = _l_sm_by_hand(_smac(init_ent_coef=0.3, alpha_param="temperature"), batch, alpha=0.3)
    torch.testing.assert_close(metrics["loss_sm"], expected)
    # no gradient reaches the coefficient from L_SM, and the unused alpha net stays as it was
    assert all(torch.equal(a, b) for a, b in zip(alpha_before, smac.alpha_net.parameters(), strict=True))
    # the coefficient follows its own (SAC) update only: a second step reads the updated value
    coef = smac.ent_coef().item()
    assert coef != 0.3
    torch.testing.assert_close(smac.update(batch)["alpha_mean"], torch.tensor(coef))


def test_frozen_alpha_of_a_temperature_read_checkpoint_is_its_handover_coefficient():
    """The online critic's L_SM (finetune --score-matching-kappa) reads alpha_psi off the checkpoint: the
    temperature reading's is the coefficient at the handover, not its never-trained alpha net."""
    from smacrl.offline.smac import frozen_alpha

    s = torch.randn(16, 2)
    smac = _smac(init_ent_coef=0.3, alpha_param="temperature")
    smac.update(_batch())
    coef = smac.ent_coef().item()
    assert coef != 0.3  # it has moved since initialisation
    extras = {name: module.state_dict() for name, module in smac.extras().items()}
    torch.testing.assert_close(frozen_alpha(smac.cfg, extras, 2)(s), torch.full((16,), coef))
    # a learned alpha_psi comes back as its trained net
    learned = _smac(alpha_init=0.2)
    learned.update(_batch())
    extras = {name: module.state_dict() for name, module in learned.extras().items()}
    torch.testing.assert_close(frozen_alpha(learned.cfg, extras, 2)(s), learned.alpha_net(s))


def test_score_free_ablation_is_a_pure_action_gradient_penalty():
    smac = _smac(score=None, score_free=True)
    batch = _batch()
    torch.manual_seed(5)
    metrics = smac.update(batch, diagnostics=True)
    assert metrics["alpha_mean"].item() == 0.0 and "cos_data" not in metrics
    assert torch.isfinite(metrics["loss_sm"])
    # hand-computed: with alpha = 0, L_SM = sum_e mean_b ||grad_a Q_e||^2 on the same actions, before the step
    expected = _l_sm_by_hand(_smac(score=None, score_free=True), batch, alpha=0.0, score=None)
    torch.testing.assert_close(metrics["loss_sm"], expected)
    try:
        _smac(score=None)
    except ValueError as e:
        assert "score_fn" in str(e)
    else:
        raise AssertionError("SMAC without a score must refuse unless score_free")


def test_diagnostics_split_l_sm_by_half_and_measure_the_spread_of_q():
    from smacrl.offline.smac import q_spread

    smac = _smac()
    m = smac.update(_batch(n=100), diagnostics=True)
    # L_SM is the mean over the batch of the per-state sum over members: the halves recombine exactly
    torch.testing.assert_close(m["loss_sm"], (50 * m["loss_sm_policy"] + 50 * m["loss_sm_uniform"]) / 100)
    for key in ("grad_q_norm_policy", "grad_q_norm_uniform", "alpha_score_norm_policy", "alpha_score_norm_uniform",
                "cos_data", "q_spread", "entropy"):  # fmt: skip
        assert torch.isfinite(m[key]), key
    torch.testing.assert_close(m["entropy_max"], torch.tensor(2 * math.log(2.0)))

    class Linear(nn.Module):  # Q_e(s, a) = a_0: its std over a ~ U[-1, 1] is 1/sqrt(3)
        def forward(self, s, a):
            return a[..., 0].expand(2, -1)

    class Flat(nn.Module):
        def forward(self, s, a):
            return torch.zeros(2, a.shape[-2])

    torch.manual_seed(0)
    obs = torch.randn(512, 3)
    assert q_spread(Flat(), obs, 2).item() == 0.0
    assert abs(q_spread(Linear(), obs, 2).item() - 1 / math.sqrt(3)) < 0.03


def test_score_target_eps_is_the_score_times_sigma_k():
    from smacrl.offline.smac import make_score_fn
    from smacrl.score import ScoreModel

    torch.manual_seed(0)
    model = ScoreModel(2, 2, make_config("score", "cpu", hidden_dim=16, cond_hidden=(16,), rvs=True)).eval()
    s, a = torch.randn(8, 2), torch.rand(8, 2) * 2 - 1
    for k in (1, 3):
        score = make_score_fn(model, make_config("smac", "cpu", score_k=k))(s, a)
        eps = make_config("smac", "cpu", score_k=k, score_target="eps")
        torch.testing.assert_close(score, model.score(s, a, w=1.0, k=k))
        # -eps_hat, the paper's scale: |eps| ~ 1 where |score| ~ 1 / sigma_k
        torch.testing.assert_close(make_score_fn(model, eps)(s, a), -model.eps(a, k, s, 1.0))


def test_diagnostics_do_not_change_the_run():
    """Diagnostic steps draw no numbers from the training's random stream: a run that logs them every
    step ends with the same weights as one that never does."""
    finals = []
    for diagnostics in (True, False):
        smac = _smac(seed=4)
        torch.manual_seed(9)
        for i in range(5):
            smac.update(_batch(seed=i), diagnostics=diagnostics)
        finals.append(torch.cat([p.detach().flatten() for p in smac.ac.parameters()]))
    torch.testing.assert_close(finals[0], finals[1], rtol=0, atol=0)


def test_cli_score_free_needs_no_score_model_and_a_bad_alpha_init_is_one_line(
    pendulum_data, tmp_path, monkeypatch, capsys
):
    from smacrl.cli import main

    monkeypatch.setenv("SMACRL_CACHE", str(tmp_path / "cache"))
    common = ["pretrain", "--algo", "smac", "--dataset", str(pendulum_data), "--preset", "cpu", "--steps", "5",
              "--eval-every", "0", "--log-every", "5", "--no-progress"]  # fmt: skip
    assert main([*common, "--score-free", "--out", str(tmp_path / "free")]) == 0
    assert not (tmp_path / "cache").exists()  # no score model was trained or loaded
    assert (tmp_path / "free" / "checkpoints" / "final.safetensors").exists()
    capsys.readouterr()
    assert main([*common, "--alpha-init", "-1", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "alpha_init" in err


def test_cli_alpha_min_lands_in_the_config_and_holds_alpha_up(pendulum_data, tmp_path, monkeypatch, capsys):
    import json

    from smacrl.cli import main
    from smacrl.logger import read_metrics

    monkeypatch.setenv("SMACRL_CACHE", str(tmp_path / "cache"))
    common = ["pretrain", "--algo", "smac", "--dataset", str(pendulum_data), "--preset", "cpu", "--steps", "10",
              "--score-steps", "20", "--eval-every", "0", "--log-every", "1", "--no-progress"]  # fmt: skip
    out = tmp_path / "floored"
    floored = ["--alpha-min", "0.05", "--alpha-init", "0.0500001", "--alpha-lr", "0.1"]  # a high rate drives alpha down
    assert main([*common, *floored, "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["alpha_min"] == 0.05
    alphas = [r["offline/alpha_mean"] for r in read_metrics(out / "metrics.jsonl") if "offline/alpha_mean" in r]
    assert alphas and min(alphas) >= 0.05  # started just above the floor; never below it
    capsys.readouterr()
    assert main([*common, "--alpha-min", "-1", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "alpha_min" in err


def test_score_w_quantile_conditions_the_score_at_that_quantile_of_the_datas_w(tmp_path):
    # four transitions with w 0, 0.2, 0.5 and 1: the median is 0.35 (numpy's linear interpolation), the 0.9
    # quantile 0.85; the score fn then equals the model's score at that w, not at table 6's 1.0
    from smacrl.offline.smac import dataset_score_fn, score_condition
    from smacrl.score import ScoreModel
    from smacrl.score.checkpoint import save_score_model

    torch.manual_seed(0)
    score_cfg = make_config("score", "cpu", hidden_dim=16, cond_hidden=(16,), rvs=True)
    model = ScoreModel(3, 2, score_cfg).eval()
    path = tmp_path / "score.safetensors"
    save_score_model(path, model, score_cfg, step=1, dataset_sha256="0" * 64)

    class Data:
        obs_dim, act_dim = 3, 2
        w = np.array([1.0, 0.0, 0.5, 0.2], dtype=np.float32)

    for q, expected in ((0.5, 0.35), (0.9, 0.85), (1.0, 1.0)):
        cfg = make_config("smac", "cpu", score_w_quantile=q, score_model=str(path))
        assert score_condition(cfg, Data()) == pytest.approx(expected)
        s, a = torch.randn(8, 3), torch.rand(8, 2) * 2 - 1
        fn = dataset_score_fn(cfg, Data(), "cpu", torch.device("cpu"))
        torch.testing.assert_close(fn(s, a), model.score(s, a, w=expected, k=1))
    assert score_condition(make_config("smac", "cpu", score_w=0.7), None) == 0.7  # no quantile: score_w as given
    for bad in ({"score_w_quantile": 0.0}, {"score_w_quantile": 1.5}, {"score_w_quantile": 0.9, "rvs": False}):
        with pytest.raises(ConfigError, match="score_w_quantile"):
            make_config("smac", "cpu", **bad)


def test_cli_score_w_quantile_lands_in_the_config_and_reads_the_files_w(pendulum_data, tmp_path, monkeypatch, capsys):
    import json

    from smacrl.cli import main
    from smacrl.data import load_dataset

    monkeypatch.setenv("SMACRL_CACHE", str(tmp_path / "cache"))
    common = ["pretrain", "--algo", "smac", "--dataset", str(pendulum_data), "--preset", "cpu", "--steps", "5",
              "--score-steps", "20", "--eval-every", "0", "--no-progress"]  # fmt: skip
    out = tmp_path / "q"
    assert main([*common, "--score-w-quantile", "0.9", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["score_w_quantile"] == 0.9
    expected = np.quantile(np.asarray(load_dataset(str(pendulum_data)).w, dtype=np.float64), 0.9)
    assert f"smacrl: score: w = {expected:.4f}, the data's 0.9 quantile of w" in capsys.readouterr().err
    assert main([*common, "--score-w-quantile", "1.5", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "score_w_quantile" in err and not (tmp_path / "bad").exists()

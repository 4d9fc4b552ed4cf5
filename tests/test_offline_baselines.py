"""The offline baselines (IQL, CQL, Cal-QL, TD3+BC): their losses on hand-computed cases, small
behavioural checks, and ``smacrl pretrain --algo ...`` end to end."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch

from smacrl.checkpoint import load_checkpoint
from smacrl.cli import main
from smacrl.configs import make_config
from smacrl.errors import ConfigError
from smacrl.losses import smoothed_target_action, td3_target, td3bc_actor_loss
from smacrl.nets import ActorCritic, ActorCriticSpec
from smacrl.offline.cql import CQL, cql_gap, cql_proposals
from smacrl.offline.iql import IQL, awr_policy_loss, awr_weights, expectile_loss
from smacrl.offline.td3bc import TD3BC

LOG2 = math.log(2.0)


@pytest.fixture(autouse=True)
def _one_thread():
    """These small networks gain nothing from threads, and threads fight other jobs for the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _ac(cfg, obs_dim=2, act_dim=2) -> ActorCritic:
    return ActorCritic(ActorCriticSpec.from_config(cfg, obs_dim, (-1.0,) * act_dim, (1.0,) * act_dim))


def _bandit_batch(n=128, obs_dim=2, act_dim=2, generator=None):
    """One-step episodes: the first action coordinate near +0.5 pays 1, near -0.5 pays 0 (50/50)."""
    g = generator
    good = torch.rand(n, generator=g) < 0.5
    a = torch.zeros(n, act_dim)
    a[:, 0] = torch.where(good, 0.5, -0.5) + 0.05 * torch.randn(n, generator=g)
    s = 0.1 * torch.randn(n, obs_dim, generator=g)
    return {
        "obs": s,
        "actions": a.clamp(-1, 1),
        "rewards": good.float(),
        "next_obs": s,
        "terminals": torch.ones(n),
        "mc_returns": good.float(),
    }


# ----------------------------------------------------------------------------- IQL
def test_expectile_loss_hand_computed_and_weights_depend_on_tau():
    q, v = torch.tensor([3.0, 0.0]), torch.tensor([1.0, 1.0], requires_grad=True)  # u = [2, -1]
    loss_9 = expectile_loss(q, v, 0.9)
    torch.testing.assert_close(loss_9, torch.tensor((0.9 * 4 + 0.1 * 1) / 2))
    torch.testing.assert_close(expectile_loss(q, v, 0.7), torch.tensor((0.7 * 4 + 0.3 * 1) / 2))
    torch.testing.assert_close(expectile_loss(q, v, 0.5), torch.tensor(0.5 * (4 + 1) / 2))
    loss_9.backward()  # d/dv_b = -2 w_b u_b / B
    torch.testing.assert_close(v.grad, torch.tensor([-2 * 0.9 * 2 / 2, -2 * 0.1 * -1 / 2]))
    # the minimizer over a constant V is the tau-expectile: for Q in {0, 1} equally often it is tau
    q = torch.tensor([0.0, 1.0])
    for tau in (0.5, 0.7, 0.9):
        v = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([v], lr=0.5)
        for _ in range(300):
            opt.zero_grad()
            expectile_loss(q, v.expand(2), tau).backward()
            opt.step()
        assert v.item() == pytest.approx(tau, abs=1e-4)


def test_awr_weights_and_policy_loss_hand_computed():
    w = awr_weights(torch.tensor([0.0, 1.0, 10.0, -1.0]), beta=2.0, max_weight=100.0)
    torch.testing.assert_close(w, torch.tensor([1.0, math.exp(2.0), 100.0, math.exp(-2.0)]))
    logp = torch.tensor([-1.0, -2.0], requires_grad=True)
    loss = awr_policy_loss(logp, torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(loss, torch.tensor((1.0 + 6.0) / 2))
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([-0.5, -1.5]))


def test_iql_bandit_value_is_expectile_and_policy_prefers_the_paying_action():
    torch.manual_seed(0)
    cfg = make_config("iql", "cpu", critic_lr=3e-3, value_lr=3e-3, actor_lr=3e-3, beta=3.0, expectile=0.9, tau=0.05)
    ac = _ac(cfg)
    assert not ac.spec.tanh_squash and not ac.spec.state_dependent_std
    iql = IQL(ac, cfg)
    g = torch.Generator().manual_seed(0)
    for _ in range(400):
        metrics = iql.update(_bandit_batch(generator=g), diagnostics=True)
    assert set(metrics) >= {"loss_td", "loss_value", "loss_actor", "q_mean", "v_mean", "awr_weight_clipped"}
    assert all(torch.isfinite(v) for v in metrics.values())
    s = torch.zeros(64, 2)
    # Q fits the one-step rewards; V sits near the 0.9-expectile of Q over the data's actions (0.9)
    q_good = ac.critic(s, torch.tensor([[0.5, 0.0]]).expand(64, -1)).mean().item()
    q_bad = ac.critic(s, torch.tensor([[-0.5, 0.0]]).expand(64, -1)).mean().item()
    assert q_good == pytest.approx(1.0, abs=0.15) and q_bad == pytest.approx(0.0, abs=0.15)
    assert iql.value(s).mean().item() == pytest.approx(0.9, abs=0.1)
    # behaviour cloning would put the mean at 0; AWR moves it to the paying action
    assert ac.act(s)[:, 0].mean().item() > 0.3
    assert set(iql.extras()) == {"value"}


# ----------------------------------------------------------------------------- CQL / Cal-QL
def test_cql_gap_hand_computed_per_member_with_density_and_temperature():
    # member 0: Q = 0 everywhere -> log(2) - 0; member 1: proposals 1, data 3 -> 1 + log(2) - 3
    q_prop = torch.tensor([[[0.0, 0.0]], [[1.0, 1.0]]], requires_grad=True)
    q_data = torch.tensor([[0.0], [3.0]], requires_grad=True)
    gap = cql_gap(q_prop, torch.zeros(1, 2), q_data)
    torch.testing.assert_close(gap, torch.tensor(2 * LOG2 - 2.0))
    gap.backward()  # softmax weights on the proposals, -1/B on the data
    torch.testing.assert_close(q_prop.grad, torch.full((2, 1, 2), 0.5))
    torch.testing.assert_close(q_data.grad, torch.full((2, 1), -1.0))
    # a uniform proposal on [-1, 1]^2 has log-density 2 log(0.5), which is subtracted
    q0 = torch.zeros(1, 1, 2)
    torch.testing.assert_close(
        cql_gap(q0, torch.full((1, 2), 2 * math.log(0.5)), torch.zeros(1, 1)), torch.tensor(3 * LOG2)
    )
    # temperature T: T log sum exp(Q / T)
    torch.testing.assert_close(
        cql_gap(q0, torch.zeros(1, 2), torch.zeros(1, 1), temperature=2.0), torch.tensor(2 * LOG2)
    )
    # two states: the mean over the batch
    q_prop = torch.tensor([[[0.0, 0.0], [2.0, 2.0]]])
    torch.testing.assert_close(cql_gap(q_prop, torch.zeros(2, 2), torch.zeros(1, 2)), torch.tensor(LOG2 + 1.0))


def test_calql_bound_raises_only_policy_proposals_below_the_mc_return():
    q_prop = torch.tensor([[[-5.0, -5.0]]], requires_grad=True)
    is_policy = torch.tensor([False, True])
    mc = torch.tensor([0.0])
    gap = cql_gap(q_prop, torch.zeros(1, 2), torch.zeros(1, 1), mc_returns=mc, is_policy=is_policy)
    torch.testing.assert_close(gap, torch.tensor(math.log(math.exp(-5.0) + 1.0)))
    gap.backward()
    # the bounded proposal is not pushed down further: it gets no gradient; the uniform one does
    assert q_prop.grad[0, 0, 1] == 0 and q_prop.grad[0, 0, 0] > 0
    # without the bound it is CQL's value; with Q above the bound, Cal-QL equals CQL
    torch.testing.assert_close(cql_gap(q_prop, torch.zeros(1, 2), torch.zeros(1, 1)), torch.tensor(-5.0 + LOG2))
    high = torch.tensor([[[1.0, 2.0]]])
    torch.testing.assert_close(
        cql_gap(high, torch.zeros(1, 2), torch.zeros(1, 1), mc_returns=mc, is_policy=is_policy),
        cql_gap(high, torch.zeros(1, 2), torch.zeros(1, 1)),
    )


def test_cql_proposals_layout_and_densities():
    torch.manual_seed(0)
    cfg = make_config("cql", "cpu", actor_hidden=(8,), critic_hidden=(8,), ensemble_size=3)
    ac = _ac(cfg, obs_dim=2, act_dim=3)
    obs, nxt = torch.randn(4, 2), torch.randn(4, 2)
    actions, log_density, is_policy = cql_proposals(ac, obs, nxt, n=5)
    assert actions.shape == (4 * 15, 3) and log_density.shape == (4, 15)
    assert is_policy.tolist() == [False] * 5 + [True] * 10
    assert actions.abs().max() <= 1 and not actions.requires_grad
    torch.testing.assert_close(log_density[:, :5], torch.full((4, 5), 3 * math.log(0.5)))
    # the policy proposals carry the actor's own log-density at s (first 5) and at s' (last 5)
    per_state = actions.view(4, 15, 3)
    a_cur = per_state[:, 5:10].reshape(-1, 3)
    lp = ac.actor.log_prob(obs.repeat_interleave(5, 0), a_cur).view(4, 5)
    torch.testing.assert_close(log_density[:, 5:10], lp, atol=2e-3, rtol=1e-3)
    a_next = per_state[:, 10:].reshape(-1, 3)
    lp = ac.actor.log_prob(nxt.repeat_interleave(5, 0), a_next).view(4, 5)
    torch.testing.assert_close(log_density[:, 10:], lp, atol=2e-3, rtol=1e-3)


def _train_cql(calibrated: bool, alpha: float, steps=250):
    torch.manual_seed(0)
    cfg = make_config(
        "calql" if calibrated else "cql", "cpu", ensemble_size=2, cql_alpha=alpha, critic_lr=3e-3, n_actions=4
    )
    ac = _ac(cfg)
    learner = CQL(ac, cfg)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        metrics = learner.update(_bandit_batch(generator=g))
    return learner, metrics


def test_cql_pushes_down_out_of_data_actions_and_calql_stays_above_mc_returns():
    s = torch.zeros(256, 2)
    far = torch.rand(256, 2) * 2 - 1
    far[:, 1] = torch.where(far[:, 1].abs() < 0.5, torch.sign(far[:, 1]) * 0.9, far[:, 1])  # away from data
    data_good = torch.tensor([[0.5, 0.0]]).expand(256, -1)
    cql, metrics = _train_cql(False, alpha=5.0)
    assert cql.name == "cql" and "cql_gap" in metrics and all(torch.isfinite(v) for v in metrics.values())
    q_far = cql.ac.critic(s, far).mean().item()
    q_data = cql.ac.critic(s, data_good).mean().item()
    assert q_data - q_far > 0.5, (q_data, q_far)
    plain, _ = _train_cql(False, alpha=0.0)
    gap_plain = plain.ac.critic(s, data_good).mean().item() - plain.ac.critic(s, far).mean().item()
    assert q_data - q_far > gap_plain + 0.3
    calql, metrics = _train_cql(True, alpha=5.0)
    assert calql.name == "calql" and "calql_bound_frac" in metrics


def test_calql_without_mc_returns_is_a_one_line_error():
    cfg = make_config("calql", "cpu", actor_hidden=(8,), critic_hidden=(8,), ensemble_size=2)
    learner = CQL(_ac(cfg), cfg)
    batch = _bandit_batch(n=8)
    del batch["mc_returns"]
    with pytest.raises(ConfigError, match="mc_returns"):
        learner.update(batch)
    with pytest.raises(ConfigError, match="n_actions"):
        CQL(_ac(cfg), make_config("cql", "cpu", n_actions=0))


# ----------------------------------------------------------------------------- TD3+BC
def test_td3bc_actor_loss_hand_computed_with_stop_gradient_scale():
    q_pi = torch.tensor([1.0, -3.0], requires_grad=True)  # mean |Q| = 2, mean Q = -1
    pi = torch.tensor([[0.5, 0.0], [0.0, 0.0]], requires_grad=True)
    a = torch.tensor([[0.0, 0.0], [0.0, 1.0]])  # squared errors 0.25, 0, 0, 1 -> mean 0.3125
    loss, bc = td3bc_actor_loss(q_pi, pi, a, bc_weight=2.0)
    torch.testing.assert_close(bc, torch.tensor(0.3125))
    torch.testing.assert_close(loss, torch.tensor(0.5 + 2.0 * 0.3125))
    loss.backward()
    torch.testing.assert_close(q_pi.grad, torch.tensor([-0.25, -0.25]))  # the |Q| scale is not differentiated
    torch.testing.assert_close(pi.grad, 2.0 * 2 * (pi.detach() - a) / 4)


class _ConstActor(torch.nn.Module):
    def __init__(self, value: float, act_dim: int):
        super().__init__()
        self.value, self.act_dim = value, act_dim

    def deterministic(self, obs):
        return torch.full((obs.shape[0], self.act_dim), self.value)


def test_td3_target_smoothing_is_clipped_and_terminals_stop_the_bootstrap():
    g = torch.Generator().manual_seed(0)
    a = smoothed_target_action(_ConstActor(0.9, 2), torch.zeros(4000, 3), noise=10.0, noise_clip=0.5, generator=g)
    assert a.min().item() == pytest.approx(0.4) and a.max().item() == 1.0
    assert (a == 1.0).float().mean() > 0.4  # 0.9 + noise beyond 0.1 is clipped to the box
    cfg = make_config("td3bc", "cpu", actor_hidden=(8,), critic_hidden=(8,), ensemble_size=3)
    ac = _ac(cfg, obs_dim=3)
    s = torch.randn(5, 3)
    r, d = torch.arange(5.0), torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0])
    y = td3_target(ac, s, r, d, 0.9, policy_noise=0.0, noise_clip=0.5, reduction="min")
    expect = r + 0.9 * (1 - d) * ac.critic_target(s, ac.actor.deterministic(s)).min(0).values
    torch.testing.assert_close(y, expect.detach())
    y_mean = td3_target(ac, s, r, d, 0.9, policy_noise=0.0, reduction="mean", actor=_ConstActor(0.0, 2))
    expect = r + 0.9 * (1 - d) * ac.critic_target(s, torch.zeros(5, 2)).mean(0)
    torch.testing.assert_close(y_mean, expect.detach())


def test_td3bc_delays_the_actor_and_target_and_clones_the_data():
    torch.manual_seed(0)
    cfg = make_config("td3bc", "cpu", ensemble_size=2, policy_delay=2, bc_weight=2.0, actor_lr=3e-3)
    ac = _ac(cfg)
    td3bc = TD3BC(ac, cfg)
    actor0 = [p.detach().clone() for p in ac.actor.parameters()]
    target0 = [p.detach().clone() for p in ac.critic_target.parameters()]
    batch = _bandit_batch(n=32)
    m1 = td3bc.update(batch)
    assert "loss_actor" not in m1
    assert all(torch.equal(p, q) for p, q in zip(ac.actor.parameters(), actor0, strict=True))
    assert all(torch.equal(p, q) for p, q in zip(ac.critic_target.parameters(), target0, strict=True))
    m2 = td3bc.update(batch)
    assert {"loss_actor", "bc_mse", "q_pi_mean"} <= set(m2)
    assert any(not torch.equal(p, q) for p, q in zip(ac.actor.parameters(), actor0, strict=True))
    assert any(not torch.equal(p, q) for p, q in zip(ac.critic_target.parameters(), target0, strict=True))
    # a pure BC weight drives tanh(mean) onto the data's mean action
    g = torch.Generator().manual_seed(1)
    cfg = make_config("td3bc", "cpu", ensemble_size=2, policy_delay=1, bc_weight=100.0, actor_lr=3e-3)
    ac = _ac(cfg)
    td3bc = TD3BC(ac, cfg)
    for _ in range(200):
        b = _bandit_batch(n=64, generator=g)
        b["actions"][:, 1] = 0.6
        td3bc.update(b)
    assert ac.act(torch.zeros(8, 2))[:, 1].mean().item() == pytest.approx(0.6, abs=0.05)


# ----------------------------------------------------------------------------- CLI end to end
def _pendulum_file(path, end: str):
    """240 steps of Pendulum-shaped data (obs 3, action in [-2, 2]), 6 episodes of 40 steps, ending in
    timeouts (no Monte-Carlo returns) or terminals (Monte-Carlo returns available)."""
    rng = np.random.default_rng(0)
    n, ep = 240, 40
    theta = rng.uniform(-np.pi, np.pi, n)
    obs = np.stack([np.cos(theta), np.sin(theta), rng.normal(0, 1, n)], 1).astype(np.float32)
    act = np.clip(-1.5 * obs[:, 1:2] + 0.2 * rng.normal(size=(n, 1)), -2, 2).astype(np.float32)
    ends = np.zeros(n, dtype=bool)
    ends[ep - 1 :: ep] = True
    with h5py.File(path, "w") as f:
        f["observations"], f["actions"], f["rewards"] = obs, act, (-(theta**2)).astype(np.float32)
        f["terminals"] = ends if end == "terminal" else np.zeros(n, dtype=bool)
        f["timeouts"] = ends if end == "timeout" else np.zeros(n, dtype=bool)
        f.attrs["action_low"], f.attrs["action_high"] = np.array([-2.0]), np.array([2.0])
    return path


@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("baselines_data")
    return {end: _pendulum_file(d / f"pendulum_{end}.hdf5", end) for end in ("timeout", "terminal")}


def _pretrain(algo, data, out, *extra):
    args = ["pretrain", "--algo", algo, "--dataset", str(data), "--preset", "cpu", "--steps", "50", "--out", str(out)]
    args += ["--eval-every", "0", "--no-progress", "--device", "cpu", "--log-every", "25"]
    args += ["--actor-hidden", "16", "16", "--critic-hidden", "16", "16"]
    assert main(args + list(extra)) == 0
    return load_checkpoint(out / "checkpoints" / "final.safetensors", obs_dim=3, act_dim=1)


SMALL_ARGS = {
    "iql": ["--value-hidden", "16"],
    "cql": ["--n-actions", "3"],
    "calql": ["--n-actions", "3"],
    "td3bc": [],
}


@pytest.mark.parametrize(("algo", "extras"), [("iql", {"value"}), ("cql", {"ent_coef"}), ("td3bc", {"updates"})])
def test_pretrain_cli_writes_a_loadable_checkpoint(algo, extras, data_files, tmp_path, capsys):
    ck = _pretrain(algo, data_files["timeout"], tmp_path / algo, *SMALL_ARGS[algo])
    assert ck.algo == algo and ck.step == 50 and set(ck.extras) == extras | {"rng"}  # + the random streams
    assert ck.config["critic_hidden"] == [16, 16] and set(ck.optimizers)
    ac = ck.actor_critic
    assert ac.spec.ensemble_size == make_config(algo, "cpu").ensemble_size
    assert ac.spec.tanh_squash is (algo != "iql")
    a = ac.act(torch.zeros(4, 3))
    assert a.shape == (4, 1) and a.abs().max() <= 1
    if algo == "iql":
        assert ck.extras["value"]["net.net.0.weight"].shape == (16, 3)
    assert f"wrote {ck.path}" in capsys.readouterr().out


def test_calql_runs_cql_without_mc_returns_and_records_which_ran(data_files, tmp_path, capsys):
    ck = _pretrain("calql", data_files["timeout"], tmp_path / "fallback", *SMALL_ARGS["calql"])
    out = capsys.readouterr().out
    assert "no Monte-Carlo returns" in out and "running CQL" in out
    assert ck.algo == "calql" and ck.meta["info"]["ran"] == "cql" and ck.config["calibrated"] is False
    ck = _pretrain("calql", data_files["terminal"], tmp_path / "calql", *SMALL_ARGS["calql"])
    assert "running CQL" not in capsys.readouterr().out
    assert ck.meta["info"]["ran"] == "calql" and ck.config["calibrated"] is True
    # a second run in the same directory resumes from the final checkpoint (same learner name)
    ck2 = _pretrain("calql", data_files["terminal"], tmp_path / "calql", *SMALL_ARGS["calql"])
    assert ck2.step == 50


@pytest.mark.parametrize(
    ("offline", "data"), [("iql", "timeout"), ("cql", "timeout"), ("calql", "terminal"), ("td3bc", "timeout")]
)
def test_baseline_checkpoint_finetunes_with_sac_and_td3(offline, data, data_files, tmp_path):
    from smacrl.logger import read_metrics

    ck = _pretrain(offline, data_files[data], tmp_path / offline, *SMALL_ARGS[offline])
    for online in ("sac", "td3"):
        out = tmp_path / f"{offline}-{online}"
        code = main(
            ["finetune", "--algo", online, "--checkpoint", str(ck.path), "--task", "Pendulum-v1",
             "--dataset", str(data_files[data]), "--preset", "cpu", "--steps", "30", "--warmup-steps", "20",
             "--eval-after-first", "30", "--eval-every", "100", "--eval-episodes", "1", "--log-every", "10",
             "--no-progress", "--device", "cpu", "--out", str(out)]
        )  # fmt: skip
        assert code == 0
        tuned = load_checkpoint(out / "checkpoints" / "final.safetensors", obs_dim=3, act_dim=1)
        assert tuned.meta["info"]["offline_algo"] == offline and tuned.step == 30
        assert tuned.actor_critic.spec == ck.actor_critic.spec  # IQL's untransformed Gaussian carries over
        assert not torch.equal(tuned.actor_critic.critic.net.net[0].weight, ck.actor_critic.critic.net.net[0].weight)
        losses = [r["online/loss_td"] for r in read_metrics(out) if "online/loss_td" in r]
        assert len(losses) == 30 and np.isfinite(losses).all()

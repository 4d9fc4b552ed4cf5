import math

import pytest
import torch
from torch import nn
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from smacrl.nets import (
    MLP,
    ActorCritic,
    CriticEnsemble,
    EnsembleLinear,
    EnsembleMLP,
    GaussianActor,
    ObsNormalizer,
    activation_fn,
    polyak_update,
    reduce_ensemble,
)


def test_ensemble_member_equals_nn_linear():
    torch.manual_seed(0)
    layer = EnsembleLinear(5, 7, ensemble_size=4)
    x = torch.randn(11, 5)
    y = layer(x)
    assert y.shape == (4, 11, 7)
    for i in range(4):
        ref = nn.Linear(5, 7)
        with torch.no_grad():
            ref.weight.copy_(layer.weight[i].T)
            ref.bias.copy_(layer.bias[i, 0])
        torch.testing.assert_close(y[i], ref(x), rtol=0, atol=1e-6)
    # per-member inputs [E, B, in]
    xs = torch.randn(4, 3, 5)
    ys = layer(xs)
    for i in range(4):
        torch.testing.assert_close(ys[i], xs[i] @ layer.weight[i] + layer.bias[i], rtol=0, atol=1e-6)


@pytest.mark.parametrize("shared_input", [True, False])
def test_width_one_output_layer_equals_batched_matmul_to_second_order(shared_input):
    """The out=1 layer takes a multiply-and-sum path instead of baddbmm: its values, its input
    gradient, and the weight gradient of an input-gradient penalty (SMAC's double backward) must
    equal the batched matmul's."""
    torch.manual_seed(2)
    e, b, d = 3, 6, 5
    layer = EnsembleLinear(d, 1, ensemble_size=e)
    x = torch.randn(b, d) if shared_input else torch.randn(e, b, d)

    def penalty_grads(forward):
        xi = x.clone().requires_grad_(True)
        y = forward(xi)
        (gx,) = torch.autograd.grad((y * y).sum(), xi, create_graph=True)
        gw, gb = torch.autograd.grad(gx.pow(2).sum(), (layer.weight, layer.bias))
        return y, gx, gw, gb

    def reference(xi):
        xe = xi.unsqueeze(0).expand(e, -1, -1) if shared_input else xi
        return torch.baddbmm(layer.bias, xe, layer.weight)

    ours, ref = penalty_grads(layer), penalty_grads(reference)
    assert ours[0].shape == (e, b, 1)
    for a, r in zip(ours, ref):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-6)
    assert ours[2].abs().sum() > 0  # the penalty really reaches the weights


@pytest.mark.parametrize("shape", [(4, 8, 16), (10, 32, 64), (10, 128, 64)])  # around the two thresholds
def test_tanh_activation_equals_torch_tanh_to_second_order(shape):
    """The critic's tanh (``2 sigmoid(2x) - 1`` on large CPU tensors) against torch.tanh: values, the
    input gradient, and the gradient of an input-gradient penalty (a double backward)."""
    torch.manual_seed(3)
    x = torch.randn(*shape) * 3
    w = torch.randn(*shape)
    act = activation_fn("tanh")
    fast = x.numel() >= act.min_numel
    assert (type(act(x.requires_grad_(True)).grad_fn).__name__ == "_SigmoidTanhBackward") is fast

    def grads(f):
        xi = x.detach().requires_grad_(True)
        y = f(xi)
        (gx,) = torch.autograd.grad((y * w).sum(), xi, create_graph=True)
        (gg,) = torch.autograd.grad(gx.pow(2).sum(), xi)
        return y, gx, gg

    for a, r in zip(grads(act), grads(torch.tanh)):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=2e-6)
    y = act(x.detach())
    assert (y - torch.tanh(x)).abs().max() <= 2.5e-7
    assert y.abs().max() <= 1.0
    # under torch.func transforms too (vmap of a per-sample gradient)
    per_sample = torch.func.vmap(torch.func.grad(lambda xi: act(xi).pow(2).sum()))(x.detach())
    reference = torch.func.vmap(torch.func.grad(lambda xi: torch.tanh(xi).pow(2).sum()))(x.detach())
    torch.testing.assert_close(per_sample, reference, rtol=1e-5, atol=2e-6)


def test_ensemble_init_matches_nn_linear_bound():
    layer = EnsembleLinear(64, 32, 10)
    bound = 1 / math.sqrt(64)
    assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
    assert layer.weight.std() > 0.5 * bound / math.sqrt(3)  # not collapsed to zero


def test_ensemble_mlp_member_equals_plain_mlp():
    torch.manual_seed(1)
    ens = EnsembleMLP(6, (8, 8), 1, ensemble_size=3, activation="tanh")
    x = torch.randn(9, 6)
    out = ens(x)
    linears = [m for m in ens.net if isinstance(m, EnsembleLinear)]
    for i in range(3):
        ref = MLP(6, (8, 8), 1, activation="tanh")
        ref_linears = [m for m in ref.net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for el, rl in zip(linears, ref_linears):
                rl.weight.copy_(el.weight[i].T)
                rl.bias.copy_(el.bias[i, 0])
        torch.testing.assert_close(out[i], ref(x), rtol=0, atol=1e-6)


def test_critic_ensemble_shapes_and_per_member_actions():
    critic = CriticEnsemble(3, 2, (16,), ensemble_size=5)
    obs, act = torch.randn(7, 3), torch.randn(7, 2)
    q = critic(obs, act)
    assert q.shape == (5, 7)
    q2 = critic(obs, act.unsqueeze(0).expand(5, -1, -1))
    torch.testing.assert_close(q, q2)


def test_reduce_ensemble_modes():
    q = torch.tensor([[1.0, 5.0], [3.0, 2.0], [2.0, 8.0]])
    assert reduce_ensemble(q, "min").tolist() == [1.0, 2.0]
    torch.testing.assert_close(reduce_ensemble(q, "mean"), torch.tensor([2.0, 5.0]))
    g = torch.Generator().manual_seed(0)
    r = reduce_ensemble(q, "redq", generator=g, subset=2)
    # a REDQ value is the min over two distinct members, so it's >= the full min and <= the max
    assert (r >= q.min(0).values).all() and (r <= q.max(0).values).all()
    assert reduce_ensemble(q, "redq", subset=3).tolist() == [1.0, 2.0]  # subset = all members
    with pytest.raises(ValueError):
        reduce_ensemble(q, "median")


def test_polyak_update():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    old = [p.detach().clone() for p in a.parameters()]
    polyak_update(a, b, 0.25)
    for p, o, s in zip(a.parameters(), old, b.parameters()):
        torch.testing.assert_close(p, 0.75 * o + 0.25 * s)


@pytest.mark.parametrize("std_transform", ["exp", "softplus"])
def test_tanh_log_prob_matches_torch_distributions(std_transform):
    torch.manual_seed(2)
    actor = GaussianActor(4, 3, (32,), std_transform=std_transform)
    obs = torch.randn(64, 4)
    a, logp = actor.sample(obs)
    assert a.abs().max() < 1
    mean, std = actor(obs)
    ref = TransformedDistribution(Normal(mean, std), [TanhTransform(cache_size=1)])
    u = torch.atanh(a.clamp(-1 + 1e-6, 1 - 1e-6))
    ref_logp = Normal(mean, std).log_prob(u).sum(-1) - torch.log1p(-(torch.tanh(u) ** 2)).sum(-1)
    torch.testing.assert_close(logp, ref_logp, rtol=1e-4, atol=1e-3)
    # log_prob of given actions agrees with the sampling path
    torch.testing.assert_close(actor.log_prob(obs, a), logp, rtol=1e-3, atol=1e-2)
    assert ref.rsample().shape == a.shape


def test_std_transforms():
    actor = GaussianActor(2, 1, (4,), std_transform="softplus", min_std=0.01)
    with torch.no_grad():
        actor.head.weight.zero_()
        actor.head.bias.copy_(torch.tensor([0.3, 0.0]))
    mean, std = actor(torch.zeros(1, 2))
    torch.testing.assert_close(std, torch.full((1, 1), math.log(2) + 0.01))
    assert actor.deterministic(torch.zeros(1, 2)).item() == pytest.approx(math.tanh(0.3), abs=1e-6)
    exp_actor = GaussianActor(2, 1, (4,), std_transform="exp", log_std_min=-5, log_std_max=2)
    with torch.no_grad():
        exp_actor.head.weight.zero_()
        exp_actor.head.bias.copy_(torch.tensor([0.0, 7.0]))  # log std 7 gets clamped to 2
    _, std = exp_actor(torch.zeros(1, 2))
    assert std.item() == pytest.approx(math.exp(2.0), rel=1e-6)


def test_untransformed_state_independent_actor():
    actor = GaussianActor(3, 2, (8,), tanh_squash=False, state_dependent_std=False)
    with torch.no_grad():
        actor.std_param.copy_(torch.log(torch.tensor([0.5, 2.0])))
    obs = torch.randn(5, 3)
    mean, std = actor(obs)
    torch.testing.assert_close(std, torch.tensor([[0.5, 2.0]]).expand(5, 2))
    a = torch.randn(5, 2)
    torch.testing.assert_close(actor.log_prob(obs, a), Normal(mean, std).log_prob(a).sum(-1))
    assert actor.deterministic(obs * 100).abs().max() <= 1.0  # clipped into the box


def test_obs_normalizer_and_action_mapping(small_spec):
    ac = ActorCritic(small_spec)
    ac.obs_norm.set_stats(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 0.0]))
    out = ac.obs_norm(torch.tensor([[3.0, 2.0, 3.0]]))
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.0, 0.0]]))  # std clamped to eps, not /0
    env_a = ac.to_env_action(torch.tensor([[-1.0, 1.0], [0.0, 0.5]]))
    torch.testing.assert_close(env_a, torch.tensor([[-2.0, 1.0], [0.0, 0.5]]))
    torch.testing.assert_close(ac.from_env_action(env_a), torch.tensor([[-1.0, 1.0], [0.0, 0.5]]))
    assert isinstance(ac.obs_norm, ObsNormalizer)


def test_actor_critic_target_is_frozen_copy(small_spec):
    ac = ActorCritic(small_spec)
    for p, t in zip(ac.critic.parameters(), ac.critic_target.parameters()):
        assert torch.equal(p, t) and not t.requires_grad
    with torch.no_grad():
        for p in ac.critic.parameters():
            p.add_(1.0)
    ac.update_target(1.0)
    for p, t in zip(ac.critic.parameters(), ac.critic_target.parameters()):
        assert torch.equal(p, t)

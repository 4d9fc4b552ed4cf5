import pytest
import torch
from torch import nn

from smacrl.nets import ActorCritic, ActorCriticSpec, EnsembleLinear
from smacrl.optim import EnsembleMuon, build_optimizer, newton_schulz, split_params


@pytest.mark.parametrize("shape", [(4, 24, 40), (3, 40, 24), (2, 16, 16)])
@pytest.mark.parametrize("adjust", [None, "match_rms_adamw"])
def test_ensemble_muon_equals_torch_muon_per_member(shape, adjust):
    torch.manual_seed(0)
    E, fan_in, fan_out = shape
    w = torch.randn(E, fan_in, fan_out, requires_grad=True)
    # member e as torch holds an nn.Linear weight: [out, in] = w[e].T
    refs = [nn.Parameter(w[e].detach().T.clone()) for e in range(E)]
    opt = EnsembleMuon([w], lr=0.02, weight_decay=0.1, adjust_lr_fn=adjust)
    ref_opt = torch.optim.Muon(refs, lr=0.02, weight_decay=0.1, adjust_lr_fn=adjust)
    for _ in range(3):
        g = torch.randn(E, fan_in, fan_out)
        w.grad = g.clone()
        for e in range(E):
            refs[e].grad = g[e].T.clone()
        opt.step()
        ref_opt.step()
        for e in range(E):
            torch.testing.assert_close(w[e].detach().T, refs[e].detach(), rtol=1e-5, atol=1e-6)
    assert not torch.equal(w.detach()[0], w.detach()[1])  # members were updated independently


def test_newton_schulz_orthogonalizes():
    torch.manual_seed(1)
    g = torch.randn(5, 32, 64)
    x = newton_schulz(g).float()
    s = torch.linalg.svdvals(x)
    # Muon's quintic iteration lands singular values in roughly [0.5, 1.5], not exactly 1
    assert s.min() > 0.3 and s.max() < 1.6
    assert torch.linalg.svdvals(g).max() / torch.linalg.svdvals(g).min() > 5  # the input was not


def test_split_params_puts_hidden_weights_on_muon():
    spec = ActorCriticSpec(3, 2, (-1, -1), (1, 1), actor_hidden=(8, 8, 8), critic_hidden=(8, 8, 8), ensemble_size=3)
    ac = ActorCritic(spec)
    m2, m3, rest = split_params(ac.critic)
    assert len(m2) == 0 and [tuple(p.shape) for p in m3] == [(3, 8, 8), (3, 8, 8)]
    first = next(m for m in ac.critic.modules() if isinstance(m, EnsembleLinear))
    assert any(p is first.weight for p in rest)  # the input layer goes to AdamW
    m2, m3, rest = split_params(ac.actor)
    assert [tuple(p.shape) for p in m2] == [(8, 8), (8, 8)] and not m3
    assert any(p is ac.actor.head.weight for p in rest)  # the output layer goes to AdamW
    n_all = sum(1 for _ in ac.actor.parameters())
    assert len(m2) + len(rest) == n_all


def test_build_optimizer_trains_and_adam_ablation():
    torch.manual_seed(0)
    spec = ActorCriticSpec(3, 1, (-1,), (1,), critic_hidden=(16, 16, 16), ensemble_size=2)
    ac = ActorCritic(spec)
    opt = build_optimizer(ac.critic, lr=1e-2, kind="muon")
    assert set(opt.optimizers) == {"ensemble_muon", "adamw"}
    obs, act = torch.randn(64, 3), torch.rand(64, 1) * 2 - 1
    target = obs[:, :1] * act
    losses = []
    for _ in range(60):
        loss = (ac.critic(obs, act) - target.T).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    adam = build_optimizer(ac.critic, lr=1e-3, kind="adam")
    assert set(adam.optimizers) == {"adamw"}
    with pytest.raises(ValueError):
        build_optimizer(ac.critic, lr=1e-3, kind="sgd")

import pytest
import torch
from torch import nn

from smacrl.nets import ActorCritic, ActorCriticSpec, EnsembleLinear
from smacrl.optim import EnsembleMuon, build_optimizer, muon_step, newton_schulz, split_params, step_together


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


@pytest.mark.parametrize("shape", [(24, 40), (40, 24), (16, 16)])
def test_linear_layout_equals_torch_muon(shape):
    """2D ``nn.Linear`` weights (``layout="out_in"``), several in one optimizer, batched per shape."""
    torch.manual_seed(0)
    ws = [nn.Parameter(torch.randn(*shape)) for _ in range(3)]
    refs = [nn.Parameter(w.detach().clone()) for w in ws]
    opt = EnsembleMuon(ws, lr=0.02, weight_decay=0.1, adjust_lr_fn="match_rms_adamw", layout="out_in")
    ref_opt = torch.optim.Muon(refs, lr=0.02, weight_decay=0.1, adjust_lr_fn="match_rms_adamw")
    for _ in range(3):
        for w, r in zip(ws, refs, strict=True):
            w.grad = torch.randn(*shape)
            r.grad = w.grad.clone()
        opt.step()
        ref_opt.step()
        for w, r in zip(ws, refs, strict=True):
            # batched and unbatched bf16 matmuls may round differently: tolerance well under one
            # step's size (lr * 0.2 * sqrt(max dim) ~ 0.02 here)
            torch.testing.assert_close(w.detach(), r.detach(), rtol=1e-4, atol=2e-4)
    # the momentum state has torch's format, so checkpoints of either load into the other
    ref_opt2 = torch.optim.Muon([nn.Parameter(w.detach().clone()) for w in ws], lr=0.02)
    ref_opt2.load_state_dict(opt.state_dict())
    torch.testing.assert_close(
        ref_opt2.state_dict()["state"][0]["momentum_buffer"], opt.state[ws[0]]["momentum_buffer"]
    )


def test_joint_step_equals_separate_steps():
    """Two optimizers with different learning rates and a shared matrix shape, stepped by one
    ``muon_step`` (one batched Newton-Schulz call), land exactly where separate steps land."""
    torch.manual_seed(2)
    ens = torch.randn(4, 16, 16, requires_grad=True)
    lin = torch.randn(16, 16, requires_grad=True)
    ens_ref = ens.detach().clone().requires_grad_(True)
    lin_ref = lin.detach().clone().requires_grad_(True)
    a = EnsembleMuon([ens], lr=0.02, adjust_lr_fn="match_rms_adamw")
    b = EnsembleMuon([lin], lr=0.05, adjust_lr_fn="match_rms_adamw", layout="out_in")
    a_ref = EnsembleMuon([ens_ref], lr=0.02, adjust_lr_fn="match_rms_adamw")
    b_ref = EnsembleMuon([lin_ref], lr=0.05, adjust_lr_fn="match_rms_adamw", layout="out_in")
    calls = []
    import smacrl.optim.muon as muon_mod

    original = muon_mod.newton_schulz

    def counting(g, *args):
        calls.append(tuple(g.shape))
        return original(g, *args)

    for _ in range(2):
        ens.grad, lin.grad = torch.randn(4, 16, 16), torch.randn(16, 16)
        ens_ref.grad, lin_ref.grad = ens.grad.clone(), lin.grad.clone()
        muon_mod.newton_schulz = counting
        try:
            muon_step([a, b])
        finally:
            muon_mod.newton_schulz = original
        a_ref.step()
        b_ref.step()
        torch.testing.assert_close(ens, ens_ref, rtol=1e-4, atol=2e-4)
        torch.testing.assert_close(lin, lin_ref, rtol=1e-4, atol=2e-4)
    assert calls == [(5, 16, 16), (5, 16, 16)]  # one call per step for the 4 members and the matrix


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
    assert isinstance(build_optimizer(ac.actor, lr=1e-2).optimizers["muon"], EnsembleMuon)
    step_together(opt)  # no gradients yet: nothing moves, nothing fails
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

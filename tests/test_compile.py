"""``--compile``: compiled critics give the eager update's numbers; a failed compile falls back to eager
without applying an update twice; SMAC (double backward) stays eager."""

import copy

import torch

from smacrl.configs import make_config
from smacrl.nets import ActorCritic
from smacrl.nets.compile import compile_learner
from smacrl.registry import get


def _batch(n: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "obs": torch.randn(n, 3, generator=g),
        "actions": torch.rand(n, 2, generator=g) * 2 - 1,
        "rewards": torch.randn(n, generator=g),
        "next_obs": torch.randn(n, 3, generator=g),
        "terminals": torch.zeros(n),
    }


def _pair(small_spec, algo: str):
    torch.manual_seed(0)
    ac = ActorCritic(small_spec)
    cfg = make_config(algo, "cpu", offline_algo="smac")
    build = get(algo, "online").build
    return build(ac, cfg), build(copy.deepcopy(ac), cfg)


def _run(learner, steps: int = 3) -> None:
    torch.manual_seed(1)  # the same policy noise for both learners
    for i in range(steps):
        learner.update(_batch(seed=i))


def test_failed_compile_falls_back_to_eager_without_double_steps(small_spec):
    ours, ref = _pair(small_spec, "td3")

    def failing(*args, **kwargs):
        raise RuntimeError("inductor: no working C++ compiler\nmore detail")

    for m in (ours.ac.critic, ours.ac.critic_target):  # stand-in for nn.Module.compile whose call fails
        m.compile = lambda m=m, **kw: setattr(m, "_compiled_call_impl", failing)
    lines = []
    assert compile_learner(ours, True, log=lines.append)
    _run(ours)
    _run(ref)
    assert len(lines) == 1 and "no working C++ compiler" in lines[0] and "running eager" in lines[0]
    assert ours.updates.value == ref.updates.value == 3  # the delay counter was not advanced twice
    for a, b in zip(ours.ac.parameters(), ref.ac.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert ours.ac.critic._compiled_call_impl is None and "update" not in vars(ours)


def test_smac_stays_eager(small_spec):
    from smacrl.offline.smac import SMAC

    ac = ActorCritic(small_spec)
    learner = SMAC(ac, make_config("smac", "cpu"), lambda s, a: -a)
    lines = []
    assert not compile_learner(learner, True, log=lines.append)
    assert "double backward" in lines[0] and ac.critic._compiled_call_impl is None
    assert not compile_learner(learner, False, log=lines.append) and len(lines) == 1


def test_compiled_sac_matches_eager(small_spec):
    torch._dynamo.reset()
    ours, ref = _pair(small_spec, "sac")
    assert compile_learner(ours, True, log=lambda line: (_ for _ in ()).throw(AssertionError(line)))
    _run(ours, 2)
    _run(ref, 2)
    assert ours.ac.critic._compiled_call_impl is not None  # it really ran compiled
    for a, b in zip(ours.ac.parameters(), ref.ac.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch._dynamo.reset()


def test_cli_flag_reaches_both_training_loops(pendulum_data, tmp_path, monkeypatch, capsys):
    """``--compile`` on ``finetune`` compiles the online learner's critics for real; on ``pretrain --algo
    smac`` it reports that SMAC stays eager; both runs finish with finite losses."""
    import numpy as np

    import smacrl.offline.train as offline_train
    import smacrl.online.loop as online_loop
    from smacrl.cli import main
    from smacrl.logger import read_metrics

    calls = []

    def recording(learner, enabled, log=print):
        calls.append((type(learner).__name__, enabled, compile_learner(learner, enabled, log)))
        return calls[-1][2]

    monkeypatch.setattr(offline_train, "compile_learner", recording)
    monkeypatch.setattr(online_loop, "compile_learner", recording)
    monkeypatch.setenv("SMACRL_CACHE", str(tmp_path / "cache"))
    off = tmp_path / "off"
    assert main(["pretrain", "--algo", "smac", "--dataset", str(pendulum_data), "--preset", "cpu", "--steps", "20",
                 "--score-steps", "30", "--eval-every", "0", "--log-every", "10", "--no-progress", "--compile",
                 "--out", str(off)]) == 0  # fmt: skip
    assert "double backward" in capsys.readouterr().out
    torch._dynamo.reset()
    on = tmp_path / "on"
    assert main(["finetune", "--algo", "td3", "--checkpoint", str(off), "--preset", "cpu", "--steps", "30",
                 "--warmup-steps", "20", "--eval-after-first", "30", "--eval-every", "30", "--eval-episodes", "1",
                 "--log-every", "10", "--no-progress", "--compile", "--out", str(on)]) == 0  # fmt: skip
    torch._dynamo.reset()
    assert calls == [("SMAC", True, False), ("TD3", True, True)]
    losses = [r["online/loss_td"] for r in read_metrics(on) if "online/loss_td" in r]
    assert len(losses) == 30 and all(np.isfinite(losses))

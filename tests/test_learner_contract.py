"""The learner contract, run over every registered offline and online algorithm (d3rlpy's algo_tester
idea): a new algorithm's module plus its registration is all this test needs to cover it.

For each learner: its updates return finite scalar metric tensors; its extras and optimizer states
survive a checkpoint round trip unchanged; and a second learner, built with a different
initialisation and restored from that checkpoint, takes exactly the same next step as the original.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import torch

from smacrl import registry
from smacrl.checkpoint import load_checkpoint, save_checkpoint
from smacrl.configs import make_config
from smacrl.nets import ActorCritic, ActorCriticSpec

LEARNERS = [a for a in registry.algorithms() if a.build is not None]
SMALL = dict(
    actor_hidden=(16, 16),
    critic_hidden=(16, 16),
    ensemble_size=2,
    alpha_hidden=(16, 16),
    value_hidden=(16, 16),
    n_actions=3,
    score_steps=20,
    batch_size=32,
    device="cpu",
    progress=False,
)


def test_every_phase_has_learners_and_names_are_unique_per_phase():
    assert {a.phase for a in LEARNERS} == {"offline", "online"}
    for phase in ("offline", "online"):
        names = [a.name for a in registry.algorithms(phase)]
        assert len(names) == len(set(names))
    assert registry.get("td3bc").phase == "offline" and registry.get("td3bc", "online").phase == "online"
    assert registry.get("td3bc_online").phase == "online"  # the name older runs recorded
    with pytest.raises(Exception, match="unknown online algorithm 'smac'"):
        registry.get("smac", "online")


@pytest.fixture(scope="module")
def dataset(pendulum_data, tmp_path_factory):
    from smacrl.data import load_dataset

    mp = pytest.MonkeyPatch()
    mp.setenv("SMACRL_CACHE", str(tmp_path_factory.mktemp("cache")))  # SMAC's score model is trained here
    yield load_dataset(pendulum_data)
    mp.undo()


def _config(algo: registry.Algorithm):
    offline_algo = "smac" if algo.phase == "online" else None
    cfg = make_config(algo.name, "cpu", offline_algo, phase=algo.phase)
    fields = {f.name for f in dataclasses.fields(cfg)}
    return dataclasses.replace(cfg, **{k: v for k, v in SMALL.items() if k in fields})


def _build(algo: registry.Algorithm, dataset, seed: int):
    cfg = _config(algo)
    nets = cfg if algo.phase == "offline" else _config(registry.get("smac", "offline"))
    torch.manual_seed(seed)
    spec = ActorCriticSpec.from_config(nets, dataset.obs_dim, dataset.action_low, dataset.action_high)
    ac = ActorCritic(spec)
    ac.obs_norm.set_stats(torch.as_tensor(dataset.obs_mean), torch.as_tensor(dataset.obs_std))
    return algo.build(ac, cfg, dataset=dataset, preset="cpu")


def _batch(dataset, seed: int, n: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(dataset.rewards), (n,), generator=g)
    batch = {
        "obs": dataset.observations[idx],
        "actions": dataset.actions[idx],
        "rewards": dataset.rewards[idx],
        "next_obs": dataset.next_observations[idx],
        "terminals": dataset.terminals[idx],
        "w": dataset.w[idx],
    }
    batch = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in batch.items()}
    batch["mc_returns"] = batch["rewards"] * 10.0  # Cal-QL's bound; the pendulum data has no true ones
    return batch


def _states_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
        elif isinstance(a[k], dict):
            _states_equal(a[k], b[k])
        elif isinstance(a[k], list):
            assert len(a[k]) == len(b[k]), k
            for x, y in zip(a[k], b[k], strict=True):
                _states_equal({"_": x}, {"_": y}) if not isinstance(x, dict) else _states_equal(x, y)
        else:
            assert a[k] == b[k], k


@pytest.mark.parametrize("algo", LEARNERS, ids=lambda a: f"{a.phase}-{a.name}")
def test_learner_contract(algo, dataset, tmp_path):
    learner = _build(algo, dataset, seed=0)
    assert isinstance(learner, registry.Learner) and learner.name == algo.name
    if algo.phase == "online":
        assert isinstance(learner, registry.OnlineLearner)
        a = learner.explore(learner.ac.obs_norm(_batch(dataset, 0)["obs"]))
        assert a.shape == (32, dataset.act_dim) and a.abs().max() <= 1 and not a.requires_grad

    # 1. updates return finite scalar metric tensors (the costlier diagnostics too)
    for i in range(3):
        metrics = learner.update(_batch(dataset, i), diagnostics=i == 1)
        assert metrics and "loss_td" in metrics
        for key, value in metrics.items():
            assert isinstance(value, torch.Tensor) and value.dim() == 0, key
            assert torch.isfinite(value), (key, value)

    # 2. extras and optimizer states round-trip through the checkpoint unchanged
    path = save_checkpoint(
        tmp_path / "ck.safetensors",
        learner.ac,
        step=3,
        algo=algo.name,
        extras=learner.extras(),
        optimizers=learner.optimizers(),
        info={"phase": algo.phase},
    )
    ck = load_checkpoint(path)
    assert set(ck.extras) == set(learner.extras()) and set(ck.optimizers) == set(learner.optimizers())
    for name, module in learner.extras().items():
        _states_equal(module.state_dict(), ck.extras[name])
    for name, opt in learner.optimizers().items():
        _states_equal(opt.state_dict()["state"], ck.optimizers[name]["state"])

    # 3. a learner resumed from the checkpoint takes exactly the original's next step
    resumed = _build(algo, dataset, seed=1)
    ck.restore_into(resumed)
    batch = _batch(dataset, 3)
    torch.manual_seed(7)
    expected = learner.update(batch)
    torch.manual_seed(7)
    got = resumed.update(batch)
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)
    _states_equal(resumed.ac.state_dict(), learner.ac.state_dict())
    for name, module in learner.extras().items():
        _states_equal(resumed.extras()[name].state_dict(), module.state_dict())


# ----------------------------------------------------------------------------- one home for the names
PACKAGE = Path(registry.__file__).resolve().parent
ALLOWED = {
    "demo.py": "the demo's choice of methods, and the paper's claims, which compare SMAC with the baselines",
    "bench/cases.py": "bench's selection of paper-size rows, its variants and CORL's published figures",
}
"""Modules that may name algorithms besides their own registrations, and why."""


def _name_uses(tree: ast.AST, names: set[str], legacy: set[str]) -> list[int]:
    """Line numbers of name lists (a literal collection holding two or more algorithm names), of name
    dispatch (a comparison with an algorithm name) and of legacy names."""

    def is_name(node: ast.AST | None) -> bool:
        return isinstance(node, ast.Constant) and node.value in names

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set) and sum(map(is_name, node.elts)) >= 2:
            lines.append(node.lineno)
        elif isinstance(node, ast.Dict) and sum(map(is_name, node.keys)) >= 2:
            lines.append(node.lineno)
        elif isinstance(node, ast.Compare) and any(map(is_name, [node.left, *node.comparators])):
            lines.append(node.lineno)
        elif isinstance(node, ast.Constant) and node.value in legacy:
            lines.append(node.lineno)
    return lines


def test_algorithm_names_live_only_in_their_registrations():
    declaring = {PACKAGE.parent / (m.replace(".", "/") + ".py") for m in registry.MODULES}
    learners = [a for a in registry.algorithms() if a.phase != "score"]
    names = {a.name for a in learners}
    legacy = {n for a in learners for n in a.legacy_names}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if path in declaring or rel in ALLOWED or rel == "registry.py":
            continue
        lines = _name_uses(ast.parse(path.read_text()), names, legacy)
        found += [f"smacrl/{rel}:{line}" for line in lines]
    assert not found, f"algorithm names outside the registry: {found}"
    # the check itself finds what it looks for
    assert _name_uses(ast.parse('X = ("smac", "iql")\nif algo == "sac": pass\ny = "td3bc_online"'), names, legacy) == [
        1,
        2,
        3,
    ]

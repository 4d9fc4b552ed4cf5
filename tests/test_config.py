import dataclasses
import json

import pytest

from smacrl import registry
from smacrl.cli import main
from smacrl.configs import PRESET_NAMES, config_from_dict, make_config, parse_overrides
from smacrl.errors import ConfigError


def test_table_7_smac_values():
    loco, adroit, kitchen = (make_config("smac", p) for p in ("locomotion", "adroit", "kitchen"))
    assert (loco.kappa, adroit.kappa, kitchen.kappa) == (40.0, 40.0, 50.0)
    assert loco.critic_hidden == (512,) * 3 and adroit.critic_hidden == (512,) * 4
    assert adroit.actor_hidden == (256,) * 3 and kitchen.actor_hidden == (512,) * 3
    assert loco.critic_activation == "tanh" and loco.ensemble_size == 10 and loco.batch_size == 64
    assert (loco.steps, adroit.steps, kitchen.steps) == (250_000, 200_000, 400_000)
    assert loco.optimizer == "muon" and loco.actor_lr == 1e-4 and loco.critic_lr == 3e-4


def test_baseline_tables():
    assert [make_config("iql", p).expectile for p in ("locomotion", "adroit", "kitchen")] == [0.9, 0.7, 0.7]
    assert make_config("iql", "locomotion").tanh_squash is False
    assert make_config("cql", "locomotion").cql_alpha == 5.0 and make_config("cql", "locomotion").ensemble_size == 10
    assert make_config("calql", "locomotion").calibrated and not make_config("cql", "locomotion").calibrated
    assert [make_config("td3bc", p).bc_weight for p in ("locomotion", "adroit", "kitchen")] == [2.0, 15.0, 5.0]
    assert make_config("td3bc", "locomotion").batch_size == 32
    score = make_config("score", "adroit")
    assert (score.n_blocks, score.batch_size, score.diffusion_steps) == (5, 1024, 32)


def test_online_values_depend_on_offline_algorithm():
    assert make_config("sac", "locomotion", offline_algo="smac").batch_size == 1024
    assert make_config("sac", "locomotion", offline_algo="cql").batch_size == 512
    assert make_config("awr", "adroit", offline_algo="smac").awr_temperature == 20.0
    assert make_config("td3bc", "kitchen", offline_algo="smac").bc_weight == 2.0
    assert make_config("td3bc", "kitchen", phase="online").bc_weight == 5.0  # the online class default
    assert make_config("td3bc", "kitchen").bc_weight == 5.0 and make_config("td3bc", "adroit").bc_weight == 15.0
    assert make_config("sac", "locomotion", offline_algo="td3bc").target_entropy_scale == -1.0
    # the cpu preset keeps its own small batch
    assert make_config("sac", "cpu", offline_algo="smac").batch_size == 256


def test_every_algorithm_has_every_preset():
    for algo in registry.algorithms():
        assert set(algo.presets) == set(PRESET_NAMES), algo.name
        for preset in PRESET_NAMES:
            cfg = make_config(algo.name, preset, phase=algo.phase)
            assert isinstance(cfg, algo.config)
    for algo in registry.algorithms("offline"):  # every offline algorithm lists its online values per family
        assert set(algo.online_defaults) == {"locomotion", "adroit", "kitchen"}, algo.name


def test_configs_of_older_runs_are_read_under_the_new_field_names():
    old = {"init_temperature": 0.5, "temperature_lr": 1e-3, "seed": 2}
    cfg = config_from_dict("sac", old, phase="online")
    assert (cfg.init_ent_coef, cfg.ent_coef_lr, cfg.seed) == (0.5, 1e-3, 2)
    assert config_from_dict("awr", {"temperature": 3.0}).awr_temperature == 3.0
    assert config_from_dict("td3bc_online", {"bc_weight": 7.0}).bc_weight == 7.0  # the legacy online name


def test_overrides_and_errors():
    cfg = parse_overrides(make_config("smac", "cpu"), ["--kappa", "7", "--critic-hidden", "8", "8", "8"], "t")
    assert cfg.kappa == 7.0 and cfg.critic_hidden == (8, 8, 8) and cfg.steps == make_config("smac", "cpu").steps
    with pytest.raises(ConfigError, match="nonsense"):
        make_config("smac", "cpu", nonsense=1)
    with pytest.raises(ConfigError, match="preset"):
        make_config("smac", "huge")
    with pytest.raises(SystemExit):
        parse_overrides(make_config("smac", "cpu"), ["--kappa", "abc"], "t")
    d = dataclasses.asdict(make_config("smac", "kitchen"))
    assert config_from_dict("smac", d) == make_config("smac", "kitchen")


def test_cli_config_prints_resolved_json(capsys):
    assert main(["config", "--algo", "smac", "--preset", "kitchen", "--kappa", "7", "--seed", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["kappa"] == 7.0 and out["config"]["seed"] == 3
    assert out["config"]["critic_hidden"] == [512, 512, 512, 512]


def test_every_config_field_has_a_docstring_for_help():
    """`--help` shows each field's docstring; a field without one would be a bare name there."""
    import ast
    import inspect

    import smacrl.configs.algorithms as algorithms
    import smacrl.configs.base as base

    missing = []
    for module in (algorithms, base):
        for node in ast.parse(inspect.getsource(module)).body:
            if isinstance(node, ast.ClassDef):
                for i, field in enumerate(node.body):
                    if isinstance(field, ast.AnnAssign):
                        nxt = node.body[i + 1] if i + 1 < len(node.body) else None
                        documented = isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                        if not documented:
                            missing.append(f"{node.name}.{field.target.id}")
    assert not missing, missing


def test_cli_config_phase_picks_the_online_td3bc(capsys):
    assert main(["config", "--algo", "td3bc", "--preset", "cpu"]) == 0
    offline = json.loads(capsys.readouterr().out)["config"]
    assert main(["config", "--algo", "td3bc", "--preset", "cpu", "--phase", "online"]) == 0
    online = json.loads(capsys.readouterr().out)["config"]
    assert "exploration_noise" in online and "exploration_noise" not in offline
    assert main(["config", "--algo", "td3bc", "--offline-algo", "iql", "--preset", "kitchen"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["bc_weight"] == 2.5  # table 8's value for IQL

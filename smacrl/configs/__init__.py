"""Typed configs, presets, and CLI overrides.

>>> cfg = make_config("smac", "kitchen")
>>> cfg.kappa, cfg.critic_hidden
(50.0, (512, 512, 512, 512))

Any field can be overridden from the command line (``--kappa 10 --critic-hidden 256 256``) through
:func:`parse_overrides`, which uses tyro with the preset's values as defaults, so ``--help`` shows
the resolved values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from smacrl.configs.algorithms import (
    AWRConfig,
    CQLConfig,
    IQLConfig,
    SACConfig,
    ScoreConfig,
    SMACConfig,
    TD3BCConfig,
    TD3BCOnlineConfig,
    TD3Config,
)
from smacrl.configs.base import NetsConfig, OfflineConfig, OnlineConfig, RunOptions, config_to_dict
from smacrl.configs.presets import FAMILIES, ONLINE_FROM_OFFLINE, PRESET_NAMES, PRESETS
from smacrl.errors import ConfigError

CONFIGS: dict[str, type] = {
    "score": ScoreConfig,
    "smac": SMACConfig,
    "iql": IQLConfig,
    "cql": CQLConfig,
    "calql": CQLConfig,
    "td3bc": TD3BCConfig,
    "sac": SACConfig,
    "td3": TD3Config,
    "td3bc_online": TD3BCOnlineConfig,
    "awr": AWRConfig,
}
OFFLINE_ALGOS = ("smac", "iql", "cql", "calql", "td3bc")
ONLINE_ALGOS = ("sac", "td3", "td3bc_online", "awr")


def make_config(algo: str, preset: str = "locomotion", offline_algo: str | None = None, **overrides: Any):
    """The resolved config of ``algo`` under ``preset``.

    For an online algorithm, ``offline_algo`` names the algorithm that produced the checkpoint: the
    paper lists the online batch size, AWR temperature, TD3+BC weight and target entropy per offline
    algorithm (tables 7-10), and those values are applied before the preset's own overrides.
    """
    if algo not in CONFIGS:
        raise ConfigError("--algo", "algo", f"unknown algorithm '{algo}' (one of {', '.join(CONFIGS)})")
    if preset not in PRESET_NAMES:
        raise ConfigError("--preset", "preset", f"unknown preset '{preset}' (one of {', '.join(PRESET_NAMES)})")
    cls = CONFIGS[algo]
    values: dict[str, Any] = {}
    if offline_algo is not None and algo in ONLINE_ALGOS:
        if offline_algo not in ONLINE_FROM_OFFLINE:
            raise ConfigError("checkpoint", "algo", f"no online defaults for offline algorithm '{offline_algo}'")
        family = preset if preset in FAMILIES else "locomotion"
        values.update(_online_fields(cls, ONLINE_FROM_OFFLINE[offline_algo][family]))
    values.update(PRESETS[algo][preset])
    values.update(overrides)
    return replace_checked(cls(), values, source=f"preset {algo}/{preset}")


def _online_fields(cls: type, table: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    rename = {"awr_temperature": "temperature"}
    out = {}
    for key, value in table.items():
        name = rename.get(key, key)
        if cls is not AWRConfig and key == "awr_temperature":
            continue
        if name in names:
            out[name] = value
    return out


def replace_checked(cfg: Any, values: dict[str, Any], source: str = "config") -> Any:
    """``dataclasses.replace`` that names an unknown field instead of raising a TypeError."""
    names = {f.name: f for f in dataclasses.fields(cfg)}
    for key in values:
        if key not in names:
            raise ConfigError(source, key, f"not a field of {type(cfg).__name__}")
    fixed = {k: tuple(v) if isinstance(getattr(cfg, k), tuple) else v for k, v in values.items()}
    return dataclasses.replace(cfg, **fixed)


def config_from_dict(algo: str, d: dict[str, Any], source: str = "config") -> Any:
    """Rebuild a saved (resolved) config, e.g. from a run directory's config.json."""
    if algo not in CONFIGS:
        raise ConfigError(source, "algo", f"unknown algorithm '{algo}'")
    return replace_checked(CONFIGS[algo](), d, source=source)


def parse_overrides(cfg: Any, args: Sequence[str], prog: str, description: str | None = None) -> Any:
    """Apply ``--field value`` overrides to ``cfg`` (tyro; the preset's values show as defaults)."""
    import tyro

    return tyro.cli(type(cfg), default=cfg, args=list(args), prog=prog, description=description)


__all__ = [
    "CONFIGS",
    "FAMILIES",
    "OFFLINE_ALGOS",
    "ONLINE_ALGOS",
    "PRESETS",
    "PRESET_NAMES",
    "AWRConfig",
    "CQLConfig",
    "IQLConfig",
    "NetsConfig",
    "OfflineConfig",
    "OnlineConfig",
    "RunOptions",
    "SACConfig",
    "SMACConfig",
    "ScoreConfig",
    "TD3BCConfig",
    "TD3BCOnlineConfig",
    "TD3Config",
    "config_from_dict",
    "config_to_dict",
    "make_config",
    "parse_overrides",
    "replace_checked",
]

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
from smacrl.configs.presets import FAMILIES, PRESET_NAMES
from smacrl.errors import ConfigError

LEGACY_FIELDS: dict[str, str] = {
    "init_temperature": "init_ent_coef",
    "temperature_lr": "ent_coef_lr",
}
"""Config fields renamed in every algorithm that has them since older runs wrote their config.json
(SAC's entropy temperature is now its entropy coefficient, so that "temperature" names only CQL's and
AWR's); an algorithm's own renames are in its registration's ``legacy_fields``."""


def make_config(
    algo: str,
    preset: str = "locomotion",
    offline_algo: str | None = None,
    *,
    phase: str | None = None,
    **overrides: Any,
):
    """The resolved config of ``algo`` under ``preset``.

    For an online algorithm, ``offline_algo`` names the algorithm that produced the checkpoint: the
    paper lists the online batch size, AWR temperature, TD3+BC weight and target entropy per offline
    algorithm (tables 7-10), and those values are applied before the preset's own overrides. A name
    registered in two phases (``td3bc``) means the offline algorithm unless ``phase="online"`` or an
    ``offline_algo`` is given.
    """
    from smacrl import registry

    if phase is None and offline_algo is not None:
        phase = "online"
    spec = registry.get(algo, phase)  # type: ignore[arg-type]
    if preset not in PRESET_NAMES:
        raise ConfigError("--preset", "preset", f"unknown preset '{preset}' (one of {', '.join(PRESET_NAMES)})")
    values: dict[str, Any] = {}
    if offline_algo is not None and spec.phase == "online":
        source = registry.get(offline_algo, "offline", source="checkpoint")
        family = preset if preset in FAMILIES else "locomotion"
        names = {f.name for f in dataclasses.fields(spec.config)}
        values.update({k: v for k, v in source.online_defaults[family].items() if k in names})
    values.update(spec.presets[preset])
    values.update(overrides)
    return replace_checked(spec.config(), values, source=f"preset {spec.name}/{preset}")


def replace_checked(cfg: Any, values: dict[str, Any], source: str = "config") -> Any:
    """``dataclasses.replace`` that names an unknown field instead of raising a TypeError."""
    names = {f.name: f for f in dataclasses.fields(cfg)}
    for key in values:
        if key not in names:
            raise ConfigError(source, key, f"not a field of {type(cfg).__name__}")
    fixed = {k: tuple(v) if isinstance(getattr(cfg, k), tuple) else v for k, v in values.items()}
    return dataclasses.replace(cfg, **fixed)


def config_from_dict(algo: str, d: dict[str, Any], source: str = "config", phase: str | None = None) -> Any:
    """Rebuild a saved (resolved) config, e.g. from a run directory's config.json; fields renamed since
    the file was written are read under their new names (:data:`LEGACY_FIELDS`)."""
    from smacrl import registry

    spec = registry.get(algo, phase, source=source)  # type: ignore[arg-type]
    renamed = {**LEGACY_FIELDS, **spec.legacy_fields}
    values = {renamed.get(k, k): v for k, v in d.items()}
    return replace_checked(spec.config(), values, source=source)


def parse_overrides(cfg: Any, args: Sequence[str], prog: str, description: str | None = None) -> Any:
    """Apply ``--field value`` overrides to ``cfg`` (tyro; the preset's values show as defaults)."""
    import tyro

    return tyro.cli(type(cfg), default=cfg, args=list(args), prog=prog, description=description)


__all__ = [
    "FAMILIES",
    "LEGACY_FIELDS",
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

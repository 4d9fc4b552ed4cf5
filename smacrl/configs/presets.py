"""Presets: the paper's per-family values (tables 6-10) plus a small ``cpu`` preset.

``PRESETS[algo][preset]`` holds overrides of the config class defaults (which already are the
locomotion column, so ``locomotion`` overrides little). ``ONLINE_FROM_OFFLINE`` holds the online
hyper-parameters that the paper lists *per offline algorithm* (online batch size, AWR temperature,
TD3+BC weight, SAC target entropy): they depend on which offline algorithm produced the checkpoint.

The ``cpu`` preset is sized for a 2-core laptop: small networks, a few thousand steps, so a run
finishes in minutes. It is not tuned for final performance.
"""

from __future__ import annotations

from typing import Any

FAMILIES = ("locomotion", "adroit", "kitchen")
PRESET_NAMES = (*FAMILIES, "laptop", "cpu")

_CPU_RUN = dict(log_every=250, eval_every=1_000, eval_episodes=5, checkpoint_every=1_000)
_CPU_NETS = dict(actor_hidden=(64, 64), critic_hidden=(64, 64))
_LAPTOP_RUN = dict(log_every=500, eval_every=2_500, eval_episodes=10, checkpoint_every=5_000)
_LAPTOP_NETS = dict(actor_hidden=(256, 256), critic_hidden=(256, 256))
_LAPTOP_STEPS = 20_000

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "score": {
        "locomotion": {},
        "adroit": dict(n_blocks=5, cond_hidden=(256, 256, 256), steps=3_000_000, batch_size=1024),
        "kitchen": dict(n_blocks=5, cond_hidden=(256, 256, 256), steps=3_000_000, batch_size=1024),
        "cpu": dict(
            hidden_dim=128,
            n_blocks=2,
            cond_hidden=(128, 128),
            time_emb_dim=32,
            obs_emb_dim=32,
            steps=3_000,
            batch_size=256,
            log_every=250,
            checkpoint_every=1_000,
        ),
        "laptop": dict(
            hidden_dim=256,
            n_blocks=2,
            cond_hidden=(256, 256),
            steps=10_000,
            batch_size=256,
            log_every=1_000,
            checkpoint_every=5_000,
        ),
    },
    "smac": {
        "locomotion": {},
        "adroit": dict(critic_hidden=(512,) * 4, actor_hidden=(256,) * 3, steps=200_000),
        "kitchen": dict(critic_hidden=(512,) * 4, actor_hidden=(512,) * 3, kappa=50.0, steps=400_000),
        "laptop": dict(**_LAPTOP_NETS, **_LAPTOP_RUN, steps=_LAPTOP_STEPS, alpha_hidden=(128, 128)),
        "cpu": dict(**_CPU_NETS, **_CPU_RUN, steps=3_000, alpha_hidden=(64, 64)),
    },
    "iql": {
        "locomotion": {},
        "adroit": dict(
            critic_hidden=(256,) * 3,
            value_hidden=(256,) * 3,
            actor_hidden=(512,) * 3,
            expectile=0.7,
            beta=0.5,
            steps=200_000,
        ),
        "kitchen": dict(
            critic_hidden=(512,) * 3,
            value_hidden=(512,) * 3,
            actor_hidden=(512,) * 3,
            expectile=0.7,
            beta=0.5,
            steps=400_000,
        ),
        "laptop": dict(**_LAPTOP_NETS, **_LAPTOP_RUN, value_hidden=(256, 256), steps=_LAPTOP_STEPS),
        "cpu": dict(**_CPU_NETS, **_CPU_RUN, value_hidden=(64, 64), steps=3_000),
    },
    "cql": {
        "locomotion": {},
        "adroit": dict(critic_hidden=(512,) * 4, actor_hidden=(256,) * 3, steps=200_000, calibrated=True),
        "kitchen": dict(critic_hidden=(512,) * 3, actor_hidden=(512,) * 3, steps=400_000, calibrated=True),
        "laptop": dict(**_LAPTOP_NETS, **_LAPTOP_RUN, steps=_LAPTOP_STEPS),
        "cpu": dict(**_CPU_NETS, **_CPU_RUN, steps=3_000),
    },
    "td3bc": {
        "locomotion": {},
        "adroit": dict(critic_hidden=(512, 512), actor_hidden=(512, 512), bc_weight=15.0, steps=200_000),
        "kitchen": dict(critic_hidden=(512,) * 3, actor_hidden=(512,) * 3, bc_weight=5.0, steps=400_000),
        "laptop": dict(**_LAPTOP_NETS, **_LAPTOP_RUN, steps=_LAPTOP_STEPS),
        "cpu": dict(**_CPU_NETS, **_CPU_RUN, steps=3_000),
    },
}

_ONLINE_CPU = dict(**_CPU_RUN, steps=5_000, warmup_steps=1_000, batch_size=256, eval_after_first=250)
_ONLINE_LAPTOP = dict(**_LAPTOP_RUN, steps=_LAPTOP_STEPS, warmup_steps=5_000, batch_size=256, eval_after_first=1_000)
for _algo in ("sac", "td3", "td3bc_online", "awr"):
    PRESETS[_algo] = {
        "locomotion": {},
        "adroit": {},
        "kitchen": {},
        "laptop": dict(_ONLINE_LAPTOP),
        "cpu": dict(_ONLINE_CPU),
    }
# Cal-QL and CQL share one config class (``calibrated`` switches) and so one preset table.
PRESETS["calql"] = {k: {**v, "calibrated": True} for k, v in PRESETS["cql"].items()}

# Online values listed per offline algorithm in tables 7-10: (offline algo, family) -> overrides.
# target_entropy_scale multiplies |A|. IQL's table gives no online batch size; we use CQL's 512.
ONLINE_FROM_OFFLINE: dict[str, dict[str, dict[str, Any]]] = {
    "smac": {
        "locomotion": dict(batch_size=1024, awr_temperature=0.4, bc_weight=5.0, target_entropy_scale=-10.0),
        "adroit": dict(batch_size=1024, awr_temperature=20.0, bc_weight=0.2, target_entropy_scale=-10.0),
        "kitchen": dict(batch_size=1024, awr_temperature=5.0, bc_weight=2.0, target_entropy_scale=-10.0),
    },
    "iql": {
        "locomotion": dict(batch_size=512, awr_temperature=1.0, bc_weight=1.0, target_entropy_scale=-1.0),
        "adroit": dict(batch_size=512, awr_temperature=0.5, bc_weight=5.0, target_entropy_scale=-1.0),
        "kitchen": dict(batch_size=512, awr_temperature=0.5, bc_weight=2.5, target_entropy_scale=-1.0),
    },
    "cql": {
        "locomotion": dict(batch_size=512, awr_temperature=1.0, bc_weight=2.5, target_entropy_scale=-10.0),
        "adroit": dict(batch_size=512, awr_temperature=0.5, bc_weight=2.5, target_entropy_scale=-10.0),
        "kitchen": dict(batch_size=512, awr_temperature=1.0, bc_weight=5.0, target_entropy_scale=-10.0),
    },
    "td3bc": {
        "locomotion": dict(batch_size=1024, awr_temperature=1.0, bc_weight=2.0, target_entropy_scale=-1.0),
        "adroit": dict(batch_size=1024, awr_temperature=1.0, bc_weight=15.0, target_entropy_scale=-1.0),
        "kitchen": dict(batch_size=1024, awr_temperature=1.0, bc_weight=5.0, target_entropy_scale=-1.0),
    },
}
ONLINE_FROM_OFFLINE["calql"] = ONLINE_FROM_OFFLINE["cql"]

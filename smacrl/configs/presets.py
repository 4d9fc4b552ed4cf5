"""Preset building blocks: the preset names and the small ``laptop`` and ``cpu`` sizes.

Each algorithm's own preset table (the paper's per-family values, tables 6-10) lives next to its
code, in its :class:`~smacrl.registry.Algorithm` declaration; class defaults already are the
locomotion column, so ``locomotion`` overrides little. What is shared lives here: the ``cpu`` preset
(the tiny tasks on a 2-core laptop, a few thousand steps, small networks) and the ``laptop`` preset
(a MuJoCo task on 2 cores, 20k steps), which are not tuned for final performance, and the online
learners' common table.
"""

from __future__ import annotations

from typing import Any

FAMILIES = ("locomotion", "adroit", "kitchen")
PRESET_NAMES = (*FAMILIES, "laptop", "cpu")

CPU_RUN = dict(log_every=250, eval_every=1_000, eval_episodes=5, checkpoint_every=1_000)
CPU_NETS = dict(actor_hidden=(64, 64), critic_hidden=(64, 64))
CPU_STEPS = 3_000
LAPTOP_RUN = dict(log_every=500, eval_every=2_500, eval_episodes=10, checkpoint_every=5_000)
LAPTOP_NETS = dict(actor_hidden=(256, 256), critic_hidden=(256, 256))
LAPTOP_STEPS = 20_000


def cpu(**extra: Any) -> dict[str, Any]:
    """An offline learner's ``cpu`` preset: small nets, 3,000 steps, frequent logs; plus ``extra``."""
    return dict(**CPU_NETS, **CPU_RUN, steps=CPU_STEPS, **extra)


def laptop(**extra: Any) -> dict[str, Any]:
    """An offline learner's ``laptop`` preset: 256-wide nets, 20,000 steps; plus ``extra``."""
    return dict(**LAPTOP_NETS, **LAPTOP_RUN, steps=LAPTOP_STEPS, **extra)


def online_presets() -> dict[str, dict[str, Any]]:
    """The preset table every online learner shares (their per-offline-algorithm values are applied
    from the checkpoint's algorithm, see :func:`smacrl.configs.make_config`)."""
    return {
        "locomotion": {},
        "adroit": {},
        "kitchen": {},
        "laptop": dict(**LAPTOP_RUN, steps=LAPTOP_STEPS, warmup_steps=5_000, batch_size=256, eval_after_first=1_000),
        "cpu": dict(**CPU_RUN, steps=5_000, warmup_steps=1_000, batch_size=256, eval_after_first=250),
    }

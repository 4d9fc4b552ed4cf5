"""Making environments by id, headless, with their box bounds.

The logic lives in :mod:`smacrl.data.tasks`; this module re-exports it. ``make_env`` accepts a
registered task name (``hopper-medium-replay-v2``, ``pointmaze-umaze-binary``, ...) or a plain
gymnasium id (``Pendulum-v1``, ``Hopper-v5``, ...).
"""

from __future__ import annotations

from smacrl.data.tasks import env_dims, env_factory, make_env

__all__ = ["env_dims", "env_factory", "make_env"]

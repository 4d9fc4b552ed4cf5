"""Offline data: the task registry, loaders for D4RL/Minari files, the Dataset, replay buffers.

Public names::

    from smacrl.data import Dataset, load_dataset, get_task, make_env, TASKS
    from smacrl.data import ReplayBuffer, DatasetBuffer, MixedSampler
"""

from __future__ import annotations

from smacrl.data.dataset import Dataset, build_dataset
from smacrl.data.loaders import data_dir, load_d4rl_hdf5, load_dataset, load_minari, task_data_path
from smacrl.data.replay import DatasetBuffer, MixedSampler, ReplayBuffer
from smacrl.data.tasks import TASKS, Task, env_dims, env_factory, get_task, make_env, task_dims

__all__ = [
    "TASKS",
    "Dataset",
    "DatasetBuffer",
    "MixedSampler",
    "ReplayBuffer",
    "Task",
    "build_dataset",
    "data_dir",
    "env_dims",
    "env_factory",
    "get_task",
    "load_d4rl_hdf5",
    "load_dataset",
    "load_minari",
    "make_env",
    "task_data_path",
    "task_dims",
]

"""The paper's binary Adroit data: AWAC's demonstration files, processed as Cal-QL processes them.

``door-``, ``pen-`` and ``relocate-binary-v0`` are the Cal-QL benchmark's tasks (Nakamoto et al. 2023).
Their data are not D4RL HDF5 files but the ``.npy`` files AWAC published (Nair et al. 2020), two per
task: ``{task}2_sparse.npy``, expert demonstrations, and ``{task}_bc_sparse4.npy``, rollouts of a
behaviour-cloned policy. Each is a numpy *object* array of per-trajectory dicts (``observations``,
``next_observations``, ``actions``, ``rewards``, ``terminals``), which numpy can only read through
``pickle``. Here they are read by :func:`load_object_npy`, whose unpickler admits only numpy arrays,
numpy dtypes and scalars and plain containers; any other global in the file is refused, before
anything in it runs.

Processing, step by step, as Cal-QL's ``get_hand_dataset_with_mc_calculation`` does it
(``JaxCQL/replay_buffer.py`` of github.com/nakamotoo/Cal-QL, checked against that source):

1. Expert demonstrations store each observation as a dict; its ``state_observation`` entry is the
   observation. Their ``rewards`` can hold more entries than there are steps; the extra ones are
   dropped. BC rollouts store flat arrays, with ``rewards`` and ``terminals`` of shape ``[T, 1]``.
2. Rewards are binary: 0 at a step where the task is solved, -1 elsewhere. A trajectory without any
   0 reward never succeeds and is left out.
3. A kept trajectory is cut after its *last* successful step (Cal-QL's ``pos_ind=-1``): a trajectory
   that succeeds, fails again, then succeeds keeps everything up to the final success.
4. Every step with reward 0 is terminal (``dones = rewards == 0``), so the value bootstraps past no
   success; the Monte-Carlo return-to-go is ``r_t + gamma * G_{t+1} * (1 - done_t)``. In a D4RL file
   a terminal ends an episode, so the loader's per-episode return-to-go is exactly that.
5. Actions are clipped to ``[-0.99999, 0.99999]`` (Cal-QL's ``clip_action``); the reward scale and bias
   are Cal-QL's defaults, 1 and 0 (the raw binary rewards).
6. Expert trajectories come first, then the BC ones, concatenated.

Episode lengths at evaluation are the tasks' own limits (pen 100 steps, door and relocate 200, as
registered by ``mj_envs`` for the ``*-binary-v0`` envs Cal-QL evaluates on); they belong to the env,
not to the data, and smacrl's task registry carries them.

The result is written in the D4RL layout, with the trajectory each row came from in
``infos/trajectory``, so ``--dataset door-binary-v0`` (or the file's path) loads it with its MC
returns and its success condition for RvS.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from smacrl.errors import DatasetError

CLIP_ACTION = 0.99999
"""Cal-QL's ``clip_action`` for these tasks."""
SUCCESS, FAILURE = 0.0, -1.0
FILES = {"demos": "{name}2_sparse.npy", "bc": "{name}_bc_sparse4.npy"}
"""AWAC's file names per task (``name`` = door, pen or relocate)."""

# (module, name) pairs a numpy object array of dicts of arrays needs; numpy moved its core to
# numpy._core in 2.0, and files written by either spelling must load.
_ALLOWED = {
    (mod, name) for mod in ("numpy.core.multiarray", "numpy._core.multiarray") for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict")}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise DatasetError(self.path, "pickle", f"refused to load '{module}.{name}': only numpy arrays may be read")


def load_object_npy(path: str | os.PathLike) -> np.ndarray:
    """A ``.npy`` file, object arrays included, without trusting its pickle: numpy's header is parsed,
    and the pickled body is read by an unpickler that resolves only numpy's array classes."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "file", "does not exist")
    with open(path, "rb") as f:
        fmt = np.lib.format
        try:
            version = fmt.read_magic(f)
            read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"format version {version} is not read here")
            _, _, dtype = read_header(f)
        except ValueError as e:
            raise DatasetError(path, "header", f"not a .npy file numpy writes ({e})") from None
        if not dtype.hasobject:
            f.seek(0)
            return np.lib.format.read_array(f, allow_pickle=False)
        try:
            array = _NumpyOnlyUnpickler(f, path).load()
        except DatasetError:
            raise
        except Exception as e:  # noqa: BLE001 - a corrupt body is one line about the file
            raise DatasetError(path, "pickle", f"unreadable ({type(e).__name__}: {e})") from None
    if not isinstance(array, np.ndarray):
        raise DatasetError(path, "pickle", f"holds a {type(array).__name__}, not an array")
    return array


def _trajectory(path: Path, i: int, traj: Any, demos: bool) -> dict[str, np.ndarray] | None:
    """One trajectory after steps 1-5 of the module docstring, or None when it never succeeds."""
    if not isinstance(traj, dict):
        raise DatasetError(path, f"[{i}]", f"is a {type(traj).__name__}, not a trajectory dict")
    for key in ("observations", "next_observations", "actions", "rewards"):
        if key not in traj:
            raise DatasetError(path, f"[{i}].{key}", "missing")

    def states(key: str) -> np.ndarray:
        rows = traj[key]
        if demos:
            try:
                rows = [o["state_observation"] for o in rows]
            except (TypeError, KeyError, IndexError):
                raise DatasetError(path, f"[{i}].{key}", "expected dicts with 'state_observation'") from None
        return np.asarray(rows, dtype=np.float64)

    obs, next_obs = states("observations"), states("next_observations")
    n = len(obs)
    actions = np.asarray(traj["actions"], dtype=np.float64).reshape(n, -1)
    rewards = np.asarray(traj["rewards"], dtype=np.float64).reshape(-1)[:n]
    if len(rewards) != n or len(next_obs) != n:
        raise DatasetError(path, f"[{i}].rewards", f"{len(rewards)} rewards, {len(next_obs)} next observations "
                           f"for {n} steps")  # fmt: skip
    if not np.isin(rewards, (SUCCESS, FAILURE)).all():
        raise DatasetError(path, f"[{i}].rewards", "are not binary (0 at success, -1 elsewhere)")
    hits = np.flatnonzero(rewards == SUCCESS)
    if len(hits) == 0:
        return None
    end = hits[-1] + 1  # after the last success (Cal-QL's pos_ind=-1)
    return {
        "observations": obs[:end],
        "next_observations": next_obs[:end],
        "actions": np.clip(actions[:end], -CLIP_ACTION, CLIP_ACTION),
        "rewards": rewards[:end],
        "terminals": rewards[:end] == SUCCESS,
    }


def convert(task: str, demos: str | os.PathLike, bc: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
    """Read a binary Adroit task's two AWAC files, process them as Cal-QL does, and write a D4RL-layout
    HDF5 file to ``out``. Returns what was kept (trajectories and steps per source)."""
    from smacrl.data.generators import Rollouts, write_d4rl_hdf5
    from smacrl.data.tasks import get_task

    t = get_task(task)
    if t.wrapper != "adroit_binary":
        raise DatasetError(task, "task", "is not a binary Adroit task (door-, pen-, relocate-binary-v0)")
    kept: list[dict[str, np.ndarray]] = []
    summary: dict[str, Any] = {"task": task}
    for source, path, is_demo in (("demos", Path(demos), True), ("bc", Path(bc), False)):
        trajs = load_object_npy(path)
        before = len(kept)
        for i, traj in enumerate(trajs.reshape(-1)):
            processed = _trajectory(path, i, traj, is_demo)
            if processed is not None:
                kept.append(processed)
        summary[source] = {"file": str(path), "trajectories": int(trajs.size), "kept": len(kept) - before}
    if not kept:
        raise DatasetError(demos, "rewards", "no trajectory in either file ever succeeds")
    cat = {k: np.concatenate([tr[k] for tr in kept]) for k in kept[0]}
    obs_dim, act_dim = t.dims if t.dims else (cat["observations"].shape[1], cat["actions"].shape[1])
    if cat["observations"].shape[1] != obs_dim or cat["actions"].shape[1] != act_dim:
        raise DatasetError(demos, "observations", f"dims {cat['observations'].shape[1]}/{cat['actions'].shape[1]} "
                           f"do not match {task}'s {obs_dim}/{act_dim}")  # fmt: skip
    lengths = [len(tr["rewards"]) for tr in kept]
    summary.update(trajectories=len(kept), steps=int(sum(lengths)), lengths=lengths)
    rollouts = Rollouts(
        observations=cat["observations"],
        actions=cat["actions"],
        rewards=cat["rewards"],
        terminals=cat["terminals"],
        timeouts=np.zeros(len(cat["rewards"]), dtype=bool),
        next_observations=cat["next_observations"],
        attrs={
            "task": task,
            "env_id": t.env_id,
            "protocol": "calql_adroit_binary: AWAC demos + BC rollouts, successful trajectories cut after "
            "their last success, every success terminal, actions clipped to +-0.99999",
            "sources": f"{summary['demos']['file']}, {summary['bc']['file']}",
            "trajectories": len(kept),
        },
    )
    infos = {"trajectory": np.repeat(np.arange(len(kept)), lengths)}
    write_d4rl_hdf5(out, rollouts, infos=infos)
    summary["out"] = str(out)
    return summary

"""Reading offline data: D4RL HDF5 files and Minari dataset folders, into one :class:`Dataset`.

``load_dataset(source, task)`` accepts

* a path to a D4RL-layout HDF5 file (``observations``, ``actions``, ``rewards``, ``terminals``,
  ``timeouts``; optional ``next_observations`` and ``infos/*``, the latter only listed in ``info``);
* a Minari dataset folder (the one holding ``data/``, or ``data/`` itself, with ``main_data.hdf5`` and
  ``metadata.json``);
* a registered task name: its file ``<task>.hdf5`` is looked up in the data cache, ``$SMACRL_DATA``
  (default ``~/.cache/smacrl/datasets``), where ``smacrl data make`` writes by default and where a user
  may place an original D4RL file under the task's name.

Conventions. ``terminals[i]`` means the env terminated after step i (no bootstrap); ``timeouts[i]``
means the episode was cut after step i (a truncation, not a terminal). An episode ends at a terminal,
a timeout, or the file's last row (a last row with neither is counted in ``info["unterminated_tail"]``
and treated as a timeout). Without ``next_observations`` the next observation of step i is row i+1 of
the same episode; the last step of an episode has none:

* after a terminal its next observation is never bootstrapped from, so it is set to the step's own
  observation (counted in ``info["terminal_next_obs_filled"]``);
* after a timeout it is unknown, so the step is left out of the transitions (counted in
  ``info["timeout_steps_without_next_obs"]``) but its reward still counts in the episode's return,
  condition and returns-to-go.

A file without ``timeouts`` is accepted: episode ends are then taken where ``next_observations[i]``
differs from ``observations[i+1]`` (or only at terminals when there is no ``next_observations``), and
``info["timeouts"]`` says so.

Minari episodes store T+1 observations, T actions/rewards/``terminations``/``truncations``. Dict
observations are flattened by concatenating their leaves with keys in sorted order, recursively (the
order of gymnasium's ``FlattenObservation`` for such spaces).

Actions in files are in env units. Without a task their bounds are the file's (Minari: its
``action_space``; D4RL: attrs ``action_low``/``action_high`` if present) or else [-1, 1]. Actions beyond
the bounds by more than ``ACTION_TOLERANCE`` of the half-range are an error; smaller overshoot is clipped.

Every problem raises :class:`~smacrl.errors.DatasetError` naming the file and the field; nothing is
returned or written on error.

Why one module of about 450 lines: both formats go through the same private checks (shapes, dtypes,
finiteness, task dims, action bounds) and the same episode assembly (``_finish``); splitting the two
readers apart would turn those checks into a cross-module API for no reader's benefit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from smacrl.data.dataset import Dataset, build_dataset, episode_ids_from_ends
from smacrl.data.tasks import TASKS, Task, get_task
from smacrl.errors import DatasetError

ACTION_TOLERANCE = 1e-3
REQUIRED_D4RL = ("observations", "actions", "rewards", "terminals")


def data_dir() -> Path:
    """The dataset cache: ``$SMACRL_DATA`` or ``~/.cache/smacrl/datasets``."""
    return Path(os.environ.get("SMACRL_DATA") or Path.home() / ".cache" / "smacrl" / "datasets")


def task_data_path(task: str) -> Path:
    return data_dir() / f"{task}.hdf5"


# ----------------------------------------------------------------------------- entry point
def load_dataset(source: str | os.PathLike, task: str | None = None, *, gamma: float = 0.99) -> Dataset:
    """Load a D4RL HDF5 file, a Minari folder, or a registered task's cached file (see module doc)."""
    src = str(source)
    if task is not None:
        get_task(task)  # unknown task names fail early
    if src in TASKS and not Path(src).exists():
        task = task or src
        path = task_data_path(src)
        if not path.exists():
            t = TASKS[src]
            how = (
                f"generate it with `smacrl data make {src}`"
                if t.data == "local"
                else "supply the original D4RL file by path (or copy it there)"
            )
            raise DatasetError(path, "file", f"no cached data for task '{src}'; {how}")
        return load_d4rl_hdf5(path, task, gamma=gamma)
    path = Path(src)
    if not path.exists():
        raise DatasetError(path, "file", "no such file or folder (and not a registered task name)")
    if path.is_dir():
        return load_minari(path, task, gamma=gamma)
    return load_d4rl_hdf5(path, task, gamma=gamma)


# ----------------------------------------------------------------------------- checks
def _open_h5(path: Path) -> h5py.File:
    if not path.is_file():
        raise DatasetError(path, "file", "no such file")
    if not h5py.is_hdf5(path):
        raise DatasetError(path, "file", "not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(path, "file", f"cannot open as HDF5: {e}") from e


def _read(path: Path, group: h5py.Group, key: str, where: str | None = None) -> np.ndarray:
    name = where or key
    if key not in group:
        raise DatasetError(path, name, "missing key")
    obj = group[key]
    if not isinstance(obj, h5py.Dataset):
        raise DatasetError(path, name, "is a group, expected an array")
    try:
        return np.asarray(obj[()])
    except (OSError, TypeError, ValueError) as e:
        raise DatasetError(path, name, f"unreadable: {e}") from e


def _as_2d(path: Path, name: str, a: np.ndarray) -> np.ndarray:
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise DatasetError(path, name, f"expected a [N, dim] array, got shape {tuple(a.shape)}")
    return a


def _as_1d(path: Path, name: str, a: np.ndarray) -> np.ndarray:
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise DatasetError(path, name, f"expected a [N] array, got shape {tuple(a.shape)}")
    return a


def _check_numeric(path: Path, name: str, a: np.ndarray) -> None:
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise DatasetError(path, name, f"has non-numeric dtype {a.dtype}")


def _check_finite(path: Path, name: str, a: np.ndarray) -> None:
    if np.issubdtype(a.dtype, np.floating):
        bad = ~np.isfinite(a)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise DatasetError(path, name, f"non-finite value (NaN or Inf) at row {row}")


def _check_lengths(path: Path, arrays: dict[str, np.ndarray], ref: str = "observations") -> int:
    n = len(arrays[ref])
    for k, a in arrays.items():
        if len(a) != n:
            raise DatasetError(path, k, f"ragged lengths: {len(a)} rows, {ref} has {n}")
    if n == 0:
        raise DatasetError(path, ref, "dataset is empty")
    return n


def _bounds(
    path: Path, task: Task | None, act_dim: int, file_bounds: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    if task is not None:
        return task.action_low, task.action_high
    if file_bounds is not None:
        low, high = (np.broadcast_to(np.asarray(b, dtype=np.float64), (act_dim,)).copy() for b in file_bounds)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high > low)):
            raise DatasetError(path, "action bounds", "must be finite with high > low to normalize actions")
        return low, high
    return -np.ones(act_dim), np.ones(act_dim)


def _check_task_dims(path: Path, task: Task | None, obs_dim: int, act_dim: int) -> None:
    if task is None:
        return
    if obs_dim != task.obs_dim:
        raise DatasetError(
            path, "observations", f"obs dim {obs_dim}, but task '{task.name}' ({task.env_id}) has {task.obs_dim}"
        )
    if act_dim != task.act_dim:
        raise DatasetError(
            path, "actions", f"action dim {act_dim}, but task '{task.name}' ({task.env_id}) has {task.act_dim}"
        )


def _check_action_bounds(path: Path, actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> None:
    tol = ACTION_TOLERANCE * (high - low) / 2.0
    over = (actions < low - tol) | (actions > high + tol)
    if over.any():
        row, col = (int(x) for x in np.argwhere(over)[0])
        raise DatasetError(
            path,
            "actions",
            f"value {float(actions[row, col]):.6g} at row {row}, dim {col} is outside the env bounds "
            f"[{low[col]:.6g}, {high[col]:.6g}]",
        )


def _resolve_task(task: str | None, attrs_task: Any, recognized: str | None = None) -> Task | None:
    """The task the data belong to: the one asked for, else the one the file names (smacrl's attribute),
    else the one its file name or Minari metadata says (:func:`task_from_name`, :func:`task_from_env`)."""
    if task is not None:
        return get_task(task)
    if isinstance(attrs_task, bytes):
        attrs_task = attrs_task.decode()
    if isinstance(attrs_task, str) and attrs_task in TASKS:
        return TASKS[attrs_task]
    return TASKS.get(recognized) if recognized else None


def task_from_name(path: str | os.PathLike) -> str | None:
    """A task from a file's name: ``<task>.hdf5`` as smacrl writes it, or D4RL's download name, which
    spells the dashes of the dataset part as underscores (``hopper_medium_replay-v2.hdf5``)."""
    stem = Path(path).name.removesuffix(".hdf5").removesuffix(".h5")
    for name in (stem, stem.replace("_", "-")):
        if name in TASKS:
            return name
    return None


def task_from_env(env_id: str | None) -> str | None:
    """The task of a Minari dataset's ``env_spec`` id, when exactly one of the paper's tasks runs on that
    env unchanged (no reward wrapper); Adroit's and the kitchen's envs need their task named."""
    matches = [t.name for t in TASKS.values() if t.env_id == env_id and t.data == "d4rl" and t.wrapper is None]
    return matches[0] if len(matches) == 1 else None


def _finish(
    path: Path,
    task: Task | None,
    arrays: dict[str, np.ndarray],
    ends: np.ndarray,
    keep: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    info: dict[str, Any],
    gamma: float,
) -> Dataset:
    if not keep.any():
        raise DatasetError(path, "observations", "dataset is empty (no step has a next observation)")
    return build_dataset(
        observations=arrays["observations"],
        actions=arrays["actions"],
        rewards=arrays["rewards"],
        terminals=arrays["terminals"],
        timeouts=arrays["timeouts"],
        next_observations=arrays["next_observations"],
        episode_ids=episode_ids_from_ends(ends),
        action_low=low,
        action_high=high,
        keep=keep,
        condition=task.condition if task else "return",
        success_reward=task.success_reward if task else None,
        mc_available=task.mc_returns if task else None,
        gamma=gamma,
        info=info,
        source=str(path),
        task=task.name if task else None,
    )


# ----------------------------------------------------------------------------- D4RL
def load_d4rl_hdf5(path: str | os.PathLike, task: str | None = None, *, gamma: float = 0.99) -> Dataset:
    path = Path(path)
    with _open_h5(path) as f:
        raw = {k: _read(path, f, k) for k in REQUIRED_D4RL}
        has_timeouts = "timeouts" in f
        if has_timeouts:
            raw["timeouts"] = _read(path, f, "timeouts")
        has_next = "next_observations" in f
        if has_next:
            raw["next_observations"] = _read(path, f, "next_observations")
        infos_keys = sorted(f["infos"].keys()) if isinstance(f.get("infos"), h5py.Group) else []
        attrs = dict(f.attrs)
    t = _resolve_task(task, attrs.get("task"), task_from_name(path))

    for k, a in raw.items():
        _check_numeric(path, k, a)
    obs = _as_2d(path, "observations", raw["observations"])
    act = _as_2d(path, "actions", raw["actions"])
    arrays = {
        "observations": obs,
        "actions": act,
        "rewards": _as_1d(path, "rewards", raw["rewards"]),
        "terminals": _as_1d(path, "terminals", raw["terminals"]).astype(bool),
    }
    if has_timeouts:
        arrays["timeouts"] = _as_1d(path, "timeouts", raw["timeouts"]).astype(bool)
    if has_next:
        arrays["next_observations"] = _as_2d(path, "next_observations", raw["next_observations"])
        if arrays["next_observations"].shape[1] != obs.shape[1]:
            raise DatasetError(
                path,
                "next_observations",
                f"dim {arrays['next_observations'].shape[1]}, observations have {obs.shape[1]}",
            )
    n = _check_lengths(path, arrays)
    for k in ("observations", "actions", "rewards", "next_observations"):
        if k in arrays:
            _check_finite(path, k, arrays[k])
    _check_task_dims(path, t, obs.shape[1], act.shape[1])
    file_bounds = None
    if "action_low" in attrs and "action_high" in attrs:
        file_bounds = (attrs["action_low"], attrs["action_high"])
    low, high = _bounds(path, t, act.shape[1], file_bounds)
    _check_action_bounds(path, act, low, high)

    info: dict[str, Any] = {"format": "d4rl", "infos_keys": infos_keys}
    info["attrs"] = {k: (v.item() if hasattr(v, "item") and np.ndim(v) == 0 else v) for k, v in attrs.items()}
    info["attrs"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in info["attrs"].items()}
    info["attrs"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in info["attrs"].items()}
    terminals = arrays["terminals"]
    if has_timeouts:
        timeouts = arrays["timeouts"] & ~terminals
        info["timeouts"] = "from file"
    else:
        timeouts = np.zeros(n, dtype=bool)
        if has_next:
            jump = np.any(arrays["next_observations"][:-1] != obs[1:], axis=1)
            timeouts[:-1] = jump & ~terminals[:-1]
            info["timeouts"] = "absent; episode ends inferred where next_observations[i] != observations[i+1]"
        else:
            info["timeouts"] = "absent; episodes split at terminals only"
    ends = terminals | timeouts
    if not ends[-1]:
        timeouts[-1] = True
        ends[-1] = True
        info["unterminated_tail"] = 1
    arrays["timeouts"] = timeouts

    keep = np.ones(n, dtype=bool)
    if not has_next:
        nxt = np.empty_like(obs)
        nxt[:-1] = obs[1:]
        nxt[-1] = obs[-1]
        term_end = terminals & ends
        nxt[term_end] = obs[term_end]
        timeout_end = timeouts & ~terminals
        keep &= ~timeout_end
        arrays["next_observations"] = nxt
        info["next_observations"] = "from observations[i+1] within each episode"
        info["terminal_next_obs_filled"] = int(term_end.sum())
        info["timeout_steps_without_next_obs"] = int(timeout_end.sum())
    else:
        info["next_observations"] = "from file"
    return _finish(path, t, arrays, ends, keep, low, high, info, gamma)


# ----------------------------------------------------------------------------- Minari
def flatten_obs_group(path: Path, node: h5py.Group | h5py.Dataset, where: str) -> np.ndarray:
    """[T+1, dim] from a Minari observation entry: an array, or a (nested) group flattened in sorted key order."""
    if isinstance(node, h5py.Dataset):
        a = np.asarray(node[()])
        _check_numeric(path, where, a)
        return a.reshape(len(a), -1).astype(np.float64)
    parts = [flatten_obs_group(path, node[k], f"{where}/{k}") for k in sorted(node.keys())]
    if not parts:
        raise DatasetError(path, where, "empty observation group")
    lengths = {len(p) for p in parts}
    if len(lengths) != 1:
        raise DatasetError(path, where, f"ragged lengths among observation keys: {sorted(lengths)}")
    return np.concatenate(parts, axis=1)


def _minari_files(folder: Path) -> tuple[Path, Path]:
    for d in (folder, folder / "data"):
        if (d / "main_data.hdf5").exists() or (d / "metadata.json").exists():
            main, meta = d / "main_data.hdf5", d / "metadata.json"
            if not main.exists():
                raise DatasetError(main, "file", "missing main_data.hdf5 in Minari dataset folder")
            if not meta.exists():
                raise DatasetError(meta, "file", "missing metadata.json in Minari dataset folder")
            return main, meta
    raise DatasetError(folder, "file", "folder is not a Minari dataset (no main_data.hdf5 / metadata.json)")


def _space_bounds(meta_path: Path, meta: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    space = meta.get("action_space")
    if space is None:
        return None
    try:
        s = json.loads(space) if isinstance(space, str) else space
        if s.get("type") != "Box":
            raise DatasetError(meta_path, "action_space", f"is {s.get('type')}, smacrl needs Box")
        return np.asarray(s["low"], dtype=np.float64), np.asarray(s["high"], dtype=np.float64)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise DatasetError(meta_path, "action_space", f"unreadable: {e}") from e


def _env_spec_id(meta: dict[str, Any]) -> str | None:
    spec = meta.get("env_spec")
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError:
            return None
    return spec.get("id") if isinstance(spec, dict) else None


def load_minari(folder: str | os.PathLike, task: str | None = None, *, gamma: float = 0.99) -> Dataset:
    folder = Path(folder)
    main, meta_path = _minari_files(folder)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DatasetError(meta_path, "file", f"not valid JSON: {e}") from e
    if not isinstance(meta, dict):
        raise DatasetError(meta_path, "file", "expected a JSON object")
    t = _resolve_task(
        task,
        None,
        task_from_name(str(meta.get("dataset_id", "")).replace("/", "-")) or task_from_env(_env_spec_id(meta)),
    )

    obs_l, next_l, act_l, rew_l, term_l, trunc_l, ends_l = [], [], [], [], [], [], []
    with _open_h5(main) as f:
        names = sorted((k for k in f.keys() if k.startswith("episode_")), key=lambda k: int(k.split("_")[-1]))
        if not names:
            raise DatasetError(main, "episodes", "dataset is empty (no episode_* groups)")
        for name in names:
            ep = f[name]
            if not isinstance(ep, h5py.Group):
                raise DatasetError(main, name, "is not a group")
            if "observations" not in ep:
                raise DatasetError(main, f"{name}/observations", "missing key")
            o = flatten_obs_group(main, ep["observations"], f"{name}/observations")
            a = _as_2d(main, f"{name}/actions", _read(main, ep, "actions", f"{name}/actions"))
            r = _as_1d(main, f"{name}/rewards", _read(main, ep, "rewards", f"{name}/rewards"))
            te = _as_1d(main, f"{name}/terminations", _read(main, ep, "terminations", f"{name}/terminations"))
            tr = _as_1d(main, f"{name}/truncations", _read(main, ep, "truncations", f"{name}/truncations"))
            steps = len(a)
            for k, x in (("rewards", r), ("terminations", te), ("truncations", tr)):
                if len(x) != steps:
                    raise DatasetError(main, f"{name}/{k}", f"ragged lengths: {len(x)} steps, actions have {steps}")
            if len(o) != steps + 1:
                raise DatasetError(
                    main, f"{name}/observations", f"ragged lengths: {len(o)} rows, expected actions + 1 = {steps + 1}"
                )
            if steps == 0:
                continue
            _check_finite(main, f"{name}/observations", o)
            _check_finite(main, f"{name}/actions", a)
            _check_finite(main, f"{name}/rewards", r)
            end = np.zeros(steps, dtype=bool)
            end[-1] = True
            obs_l.append(o[:-1])
            next_l.append(o[1:])
            act_l.append(a)
            rew_l.append(r)
            term_l.append(te.astype(bool))
            trunc_l.append(tr.astype(bool))
            ends_l.append(end)
    if not act_l:
        raise DatasetError(main, "episodes", "dataset is empty (every episode has zero steps)")
    dims = {x.shape[1] for x in obs_l}
    if len(dims) != 1:
        raise DatasetError(main, "observations", f"observation dim differs between episodes: {sorted(dims)}")
    adims = {x.shape[1] for x in act_l}
    if len(adims) != 1:
        raise DatasetError(main, "actions", f"action dim differs between episodes: {sorted(adims)}")
    arrays = {
        "observations": np.concatenate(obs_l),
        "next_observations": np.concatenate(next_l),
        "actions": np.concatenate(act_l),
        "rewards": np.concatenate(rew_l),
        "terminals": np.concatenate(term_l),
    }
    truncs = np.concatenate(trunc_l) & ~arrays["terminals"]
    ends = np.concatenate(ends_l)
    info: dict[str, Any] = {
        "format": "minari",
        "dataset_id": meta.get("dataset_id"),
        "minari_version": meta.get("minari_version"),
        "obs_flatten_order": "dict keys sorted, recursively",
    }
    # An episode's last step that is neither terminated nor truncated (collection stopped) is a timeout.
    open_end = ends & ~arrays["terminals"] & ~truncs
    info["unterminated_episodes"] = int(open_end.sum())
    arrays["timeouts"] = truncs | open_end
    _check_task_dims(main, t, arrays["observations"].shape[1], arrays["actions"].shape[1])
    low, high = _bounds(meta_path, t, arrays["actions"].shape[1], _space_bounds(meta_path, meta))
    _check_action_bounds(main, arrays["actions"], low, high)
    return _finish(folder, t, arrays, ends, np.ones(len(ends), dtype=bool), low, high, info, gamma)

"""The common actor-critic checkpoint: one safetensors file with JSON metadata in its header.

Layout of a checkpoint file (``*.safetensors``):

- tensors ``ac.<name>``: the :class:`~smacrl.nets.ActorCritic` state (``ac.obs_norm.*``,
  ``ac.actor.*``, ``ac.critic.*``, ``ac.critic_target.*``);
- tensors ``extra.<module>.<name>``: anything else an algorithm needs to resume or that an online
  algorithm may reuse (IQL's ``value``, SMAC's ``alpha_net``, SAC's ``ent_coef``, ...);
- tensors ``optim.<optimizer>.<param index>.<state key>``: optimizer states, whose non-tensor parts
  (param groups, scalar state) are kept in the metadata;
- header metadata key ``smacrl``: a JSON document with the format version, obs/action dims, action
  bounds, network spec, observation-normalizer stats, producing algorithm, step, resolved config,
  package and torch versions, and a SHA-256 of all tensor data.

Nothing is ever unpickled. Files are written atomically (temp file, then rename). Every problem on
load is a :class:`~smacrl.errors.CheckpointError` with a one-line message naming the file and field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

import smacrl
from smacrl.errors import CheckpointError
from smacrl.io import atomic_write_bytes
from smacrl.nets.actor_critic import ActorCritic, ActorCriticSpec

FORMAT = "smacrl.actor_critic"
FORMAT_VERSION = 1
META_KEY = "smacrl"
_AC, _EXTRA, _OPTIM = "ac.", "extra.", "optim."
LEGACY_EXTRAS = {"temperature": "ent_coef"}
"""Extra modules and optimizers renamed since older checkpoints were written, read under the new name."""


@dataclasses.dataclass
class Checkpoint:
    path: Path
    meta: dict[str, Any]
    actor_critic: ActorCritic
    extras: dict[str, dict[str, torch.Tensor]]
    """Extra modules' state dicts, by name (e.g. ``extras["value"]``)."""
    optimizers: dict[str, dict[str, Any]]
    """Optimizer state dicts, by name, ready for ``Optimizer.load_state_dict``."""

    @property
    def algo(self) -> str:
        return self.meta["algo"]

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def config(self) -> dict[str, Any]:
        return self.meta.get("config") or {}

    def restore_into(self, learner: Any) -> None:
        """Resume a learner: its actor-critic, its extra modules and its optimizer states."""
        learner.ac.load_state_dict(self.actor_critic.state_dict())
        for name, module in learner.extras().items():
            if name in self.extras:
                module.load_state_dict(self.extras[name])
        for name, opt in learner.optimizers().items():
            if name in self.optimizers:
                opt.load_state_dict(self.optimizers[name])


# ----------------------------------------------------------------------------- saving
def save_checkpoint(
    path: str | os.PathLike,
    ac: ActorCritic,
    *,
    algo: str,
    step: int,
    config: Mapping[str, Any] | None = None,
    env_id: str | None = None,
    extras: Mapping[str, nn.Module | Mapping[str, torch.Tensor]] | None = None,
    optimizers: Mapping[str, torch.optim.Optimizer | Mapping[str, Any]] | None = None,
    info: Mapping[str, Any] | None = None,
    actor_only: bool = False,
) -> Path:
    """Write ``ac`` (plus extras and optimizer states) to ``path`` atomically. Returns the path.

    ``actor_only`` writes just the observation normalizer and the actor (what a rollout depends
    on): the light snapshots of a run's checkpoint trajectory. Loading one gives an ActorCritic
    whose critic is freshly initialized, and ``meta["actor_only"]`` is true.
    """
    tensors: dict[str, torch.Tensor] = {}
    for k, v in (ac.actor_state() if actor_only else ac.state_dict()).items():
        tensors[_AC + k] = v
    extra_names = []
    for name, mod in (extras or {}).items():
        _check_name(name)
        sd = mod.state_dict() if isinstance(mod, nn.Module) else mod
        for k, v in sd.items():
            tensors[f"{_EXTRA}{name}.{k}"] = v
        extra_names.append(name)
    optim_meta: dict[str, Any] = {}
    for name, opt in (optimizers or {}).items():
        _check_name(name)
        sd = opt.state_dict() if isinstance(opt, torch.optim.Optimizer) else opt
        optim_meta[name] = _flatten_optimizer(name, sd, tensors)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}

    spec = ac.spec
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "smacrl_version": smacrl.__version__,
        "torch_version": torch.__version__,
        "algo": algo,
        "step": int(step),
        "env_id": env_id,
        "obs_dim": spec.obs_dim,
        "act_dim": spec.act_dim,
        "action_low": list(spec.action_low),
        "action_high": list(spec.action_high),
        "nets": spec.to_dict(),
        "obs_norm": {
            "mean": ac.obs_norm.mean.detach().cpu().tolist(),
            "std": ac.obs_norm.std.detach().cpu().tolist(),
        },
        "config": dict(config) if config is not None else None,
        "extras": sorted(extra_names),
        "optimizers": optim_meta,
        "info": dict(info or {}),
        "actor_only": bool(actor_only),
        "sha256": tensor_digest(tensors),
    }
    text = json.dumps(meta, sort_keys=True, default=_jsonable)
    return atomic_write_bytes(path, st_save(tensors, metadata={META_KEY: text}))


def _check_name(name: str) -> None:
    if not name or "." in name:
        raise ValueError(f"checkpoint module names must be non-empty and contain no '.': {name!r}")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    if isinstance(obj, tuple | set | Path):
        return list(obj) if not isinstance(obj, Path) else str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def _flatten_optimizer(name: str, sd: Mapping[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPTIM}{name}.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    groups = [{k: _jsonable(v) if isinstance(v, torch.Tensor) else v for k, v in g.items()} for g in sd["param_groups"]]
    return {"param_groups": groups, "scalars": scalars}


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and raw bytes, in name order."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().to("cpu").contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- loading
def _read_file(path: Path) -> bytes:
    if not path.exists():
        raise CheckpointError(path, "file", "does not exist")
    if path.is_dir():
        raise CheckpointError(path, "file", "is a directory, not a checkpoint file")
    try:
        return path.read_bytes()
    except OSError as e:
        raise CheckpointError(path, "file", f"cannot be read ({e.strerror})") from e


def _header_metadata(path: Path, data: bytes) -> dict[str, Any]:
    if len(data) < 8:
        raise CheckpointError(path, "header", f"file is {len(data)} bytes: truncated or not a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise CheckpointError(path, "header", "header length exceeds file size: truncated or not a checkpoint")
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(path, "header", f"not valid safetensors JSON ({type(e).__name__})") from e
    if not isinstance(header, dict):
        raise CheckpointError(path, "header", "not a safetensors header")
    raw = (header.get("__metadata__") or {}).get(META_KEY)
    if raw is None:
        raise CheckpointError(path, f"metadata.{META_KEY}", "missing: not a smacrl checkpoint")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise CheckpointError(path, f"metadata.{META_KEY}", f"invalid JSON ({e.msg})") from e
    if not isinstance(meta, dict):
        raise CheckpointError(path, f"metadata.{META_KEY}", "is not a JSON object")
    return meta


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a checkpoint, without building any network."""
    path = Path(path)
    meta = _header_metadata(path, _read_file(path))
    check_format(path, meta)
    return meta


def check_format(
    path: Path,
    meta: dict[str, Any],
    fmt: str = FORMAT,
    version: int = FORMAT_VERSION,
    required: tuple[str, ...] = ("algo", "step", "obs_dim", "act_dim", "nets", "sha256"),
    what: str = "",
) -> None:
    """Metadata of the expected format and version, with every required key (one-line errors)."""
    if meta.get("format") != fmt:
        raise CheckpointError(path, "format", f"is {meta.get('format')!r}, expected {fmt!r}{what}")
    if meta.get("format_version") != version:
        raise CheckpointError(path, "format_version", f"is {meta.get('format_version')!r}; this smacrl reads {version}")
    for key in required:
        if key not in meta:
            raise CheckpointError(path, key, "missing from metadata")


def load_checkpoint(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    obs_dim: int | None = None,
    act_dim: int | None = None,
    env_id: str | None = None,
    verify: bool = True,
) -> Checkpoint:
    """Load and validate a checkpoint file.

    ``obs_dim``/``act_dim``/``env_id``, when given, must match what the checkpoint was trained on;
    a mismatch is a one-line :class:`CheckpointError`. ``verify`` checks the SHA-256 of the tensor
    data, so a corrupted file is caught rather than loaded as garbage weights.
    """
    path = Path(path)
    data = _read_file(path)
    meta = _header_metadata(path, data)
    check_format(path, meta)
    try:
        tensors = st_load(data)
    except Exception as e:  # safetensors raises its own error type for any malformed body
        raise CheckpointError(path, "tensors", f"cannot be decoded: truncated or corrupted ({e})") from e
    if verify and tensor_digest(tensors) != meta["sha256"]:
        raise CheckpointError(path, "sha256", "tensor data does not match the recorded hash: the file is corrupted")

    expect = {"obs_dim": obs_dim, "act_dim": act_dim}
    for key, want in expect.items():
        if want is not None and int(meta[key]) != int(want):
            raise CheckpointError(path, key, f"checkpoint has {meta[key]} but the env/dataset has {want}")
    if env_id is not None and meta.get("env_id") not in (None, env_id):
        raise CheckpointError(path, "env_id", f"checkpoint is for '{meta['env_id']}', not '{env_id}'")

    try:
        spec = ActorCriticSpec.from_dict(meta["nets"])
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(path, "nets", f"invalid network spec ({e})") from e
    if spec.obs_dim != meta["obs_dim"] or spec.act_dim != meta["act_dim"]:
        raise CheckpointError(path, "nets", "network spec disagrees with obs_dim/act_dim")

    ac = ActorCritic(spec)
    ac_sd = {k[len(_AC) :]: v for k, v in tensors.items() if k.startswith(_AC)}
    actor_only = bool(meta.get("actor_only", False))
    own = ac.actor_state() if actor_only else ac.state_dict()
    for k, v in own.items():
        if k not in ac_sd:
            raise CheckpointError(path, f"tensors.{_AC}{k}", "missing")
        if tuple(ac_sd[k].shape) != tuple(v.shape):
            raise CheckpointError(
                path, f"tensors.{_AC}{k}", f"has shape {tuple(ac_sd[k].shape)}, spec needs {tuple(v.shape)}"
            )
    unexpected = sorted(set(ac_sd) - set(own))
    if unexpected:
        raise CheckpointError(path, f"tensors.{_AC}{unexpected[0]}", "not part of the actor-critic spec")
    for k, v in tensors.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(path, f"tensors.{k}", "contains NaN or Inf")
    ac.load_state_dict(ac_sd, strict=not actor_only)
    ac.to(device)

    extras: dict[str, dict[str, torch.Tensor]] = {}
    for name in meta.get("extras", []):
        prefix = f"{_EXTRA}{name}."
        extras[name] = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    optimizers = {name: _unflatten_optimizer(name, m, tensors) for name, m in meta.get("optimizers", {}).items()}
    extras = {LEGACY_EXTRAS.get(k, k): v for k, v in extras.items()}
    optimizers = {LEGACY_EXTRAS.get(k, k): v for k, v in optimizers.items()}
    return Checkpoint(path=path, meta=meta, actor_critic=ac, extras=extras, optimizers=optimizers)


def _unflatten_optimizer(name: str, m: dict[str, Any], tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    prefix = f"{_OPTIM}{name}."
    for k, v in tensors.items():
        if k.startswith(prefix):
            pid, key = k[len(prefix) :].split(".", 1)
            state.setdefault(int(pid), {})[key] = v
    for pid, scal in m.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(scal)
    return {"state": state, "param_groups": m["param_groups"]}

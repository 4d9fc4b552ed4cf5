"""Score-model checkpoints: one safetensors file with a JSON document in its header.

Layout (``<run>/score.safetensors``):

- tensors ``model.<name>``: the EMA weights of the :class:`~smacrl.score.ScoreModel` plus its
  observation-normalizer buffers (``model.obs_norm.mean``/``std``); the noise schedule is rebuilt
  from the config and is not stored;
- header metadata key ``smacrl``: JSON with the format (``smacrl.score_model``) and version, obs and
  action dims, the rvs flag and inference w, the training step, the SHA-256 of the dataset it was
  trained on (so a pipeline can tell whether it may reuse the model), the resolved
  :class:`~smacrl.configs.ScoreConfig`, package/torch versions, and a SHA-256 of all tensor data.

The header parsing, tensor hashing and error style are those of the actor-critic checkpoint
(:mod:`smacrl.checkpoint`). Nothing is unpickled; writes are atomic; every problem on load is a
one-line :class:`~smacrl.errors.CheckpointError` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

import smacrl
from smacrl.checkpoint import META_KEY, _header_metadata, _jsonable, _read_file, check_format, tensor_digest
from smacrl.configs import ScoreConfig, config_from_dict, config_to_dict
from smacrl.errors import CheckpointError, SmacrlError
from smacrl.io import atomic_write_bytes
from smacrl.score.model import ScoreModel

FORMAT = "smacrl.score_model"
FORMAT_VERSION = 1
DEFAULT_NAME = "score.safetensors"
_MODEL = "model."
_REQUIRED = ("obs_dim", "act_dim", "rvs", "step", "config", "sha256")


@dataclasses.dataclass
class ScoreCheckpoint:
    path: Path
    meta: dict[str, Any]
    model: ScoreModel
    """The EMA weights, in eval mode."""

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def dataset_sha256(self) -> str | None:
        return self.meta.get("dataset_sha256")

    @property
    def config(self) -> ScoreConfig:
        return config_from_dict("score", self.meta["config"], source=str(self.path))


def resolve_score_path(path: str | os.PathLike) -> Path:
    """A score checkpoint file, or a directory holding ``score.safetensors``."""
    p = Path(path)
    return p / DEFAULT_NAME if p.is_dir() else p


def save_score_model(
    path: str | os.PathLike,
    model: ScoreModel,
    cfg: ScoreConfig,
    *,
    step: int,
    dataset_sha256: str | None = None,
    info: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` (normally the EMA copy) and its metadata to ``path`` atomically."""
    if bool(cfg.rvs) != model.rvs or int(cfg.diffusion_steps) != model.n_steps:
        raise ValueError("cfg does not describe this model (rvs or diffusion_steps differ)")
    tensors = {_MODEL + k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "smacrl_version": smacrl.__version__,
        "torch_version": torch.__version__,
        "obs_dim": model.obs_dim,
        "act_dim": model.act_dim,
        "rvs": model.rvs,
        "rvs_w": model.default_w,
        "step": int(step),
        "dataset_sha256": dataset_sha256,
        "config": config_to_dict(cfg),
        "info": dict(info or {}),
        "sha256": tensor_digest(tensors),
    }
    text = json.dumps(meta, sort_keys=True, default=_jsonable)
    return atomic_write_bytes(path, st_save(tensors, metadata={META_KEY: text}))


def read_score_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a score checkpoint, without building the network."""
    p = resolve_score_path(path)
    meta = _header_metadata(p, _read_file(p))
    _check_format(p, meta)
    return meta


def _check_format(path: Path, meta: dict[str, Any]) -> None:
    check_format(path, meta, FORMAT, FORMAT_VERSION, _REQUIRED, what=" (a score model)")


def load_score_checkpoint(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    obs_dim: int | None = None,
    act_dim: int | None = None,
    dataset_sha256: str | None = None,
    verify: bool = True,
) -> ScoreCheckpoint:
    """Load and validate a score checkpoint (a file or a directory holding ``score.safetensors``).

    ``obs_dim``/``act_dim``/``dataset_sha256``, when given, must match what the model was trained on;
    a mismatch is a one-line :class:`CheckpointError`. ``verify`` checks the tensor-data hash.
    """
    path = resolve_score_path(path)
    data = _read_file(path)
    meta = _header_metadata(path, data)
    _check_format(path, meta)
    for key, want in (("obs_dim", obs_dim), ("act_dim", act_dim)):
        if want is not None and int(meta[key]) != int(want):
            raise CheckpointError(path, key, f"score model has {meta[key]} but the dataset/env has {want}")
    if dataset_sha256 is not None and meta.get("dataset_sha256") != dataset_sha256:
        raise CheckpointError(
            path,
            "dataset_sha256",
            f"model was trained on dataset {str(meta.get('dataset_sha256'))[:12]}..., not {dataset_sha256[:12]}...",
        )
    try:
        tensors = st_load(data)
    except Exception as e:  # safetensors raises its own error type for any malformed body
        raise CheckpointError(path, "tensors", f"cannot be decoded: truncated or corrupted ({e})") from e
    if verify and tensor_digest(tensors) != meta["sha256"]:
        raise CheckpointError(path, "sha256", "tensor data does not match the recorded hash: the file is corrupted")

    try:
        cfg = config_from_dict("score", dict(meta["config"]), source=str(path))
    except (SmacrlError, TypeError, ValueError) as e:
        raise CheckpointError(path, "config", f"invalid score config ({e})") from e
    if bool(cfg.rvs) != bool(meta["rvs"]):
        raise CheckpointError(path, "rvs", "disagrees with config.rvs")
    try:
        model = ScoreModel(int(meta["obs_dim"]), int(meta["act_dim"]), cfg)
    except (TypeError, ValueError) as e:
        raise CheckpointError(path, "config", f"cannot build the network ({e})") from e
    sd = {k[len(_MODEL) :]: v for k, v in tensors.items() if k.startswith(_MODEL)}
    own = model.state_dict()
    for k, v in own.items():
        if k not in sd:
            raise CheckpointError(path, f"tensors.{_MODEL}{k}", "missing")
        if tuple(sd[k].shape) != tuple(v.shape):
            raise CheckpointError(
                path, f"tensors.{_MODEL}{k}", f"has shape {tuple(sd[k].shape)}, the config needs {tuple(v.shape)}"
            )
    unexpected = sorted(set(tensors) - {_MODEL + k for k in own})
    if unexpected:
        raise CheckpointError(path, f"tensors.{unexpected[0]}", "not part of the score model")
    for k, v in tensors.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(path, f"tensors.{k}", "contains NaN or Inf")
    model.load_state_dict(sd)
    model.default_w = float(meta.get("rvs_w", cfg.rvs_w))
    model.to(device).eval().requires_grad_(False)
    return ScoreCheckpoint(path=path, meta=meta, model=model)


def load_score_model(path: str | os.PathLike, **kwargs: Any) -> ScoreModel:
    """:func:`load_score_checkpoint` returning just the model (EMA weights, eval mode, frozen)."""
    return load_score_checkpoint(path, **kwargs).model

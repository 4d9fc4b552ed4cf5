"""Run directories: ``runs/<name>/`` with the resolved config, metrics, and checkpoints.

::

    runs/<name>/
      config.json              resolved config (+ algo, preset, smacrl version, command line)
      metrics.jsonl            one JSON object per logged step, namespaced keys
      checkpoints/
        step_000001000.safetensors ...   periodic, the last ``keep`` of them are kept
        final.safetensors                  written at the end, never pruned
        latest                             name of the newest checkpoint (text)
      trajectory/
        step_000000000.safetensors ...   actor-only snapshots, ``trajectory_points`` per run
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import smacrl
from smacrl.checkpoint import save_checkpoint
from smacrl.configs import config_to_dict
from smacrl.errors import CheckpointError, ConfigError
from smacrl.io import atomic_write_json, atomic_write_text


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.metrics_path = self.path / "metrics.jsonl"
        self.ckpt_dir = self.path / "checkpoints"

    def create(self) -> RunDir:
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        return self

    # -- config ------------------------------------------------------------------------------
    def save_config(self, algo: str, cfg: Any, preset: str | None = None, **extra: Any) -> Path:
        doc = {
            "algo": algo,
            "preset": preset,
            "config": config_to_dict(cfg),
            "smacrl_version": smacrl.__version__,
            "command": sys.argv,
            **extra,
        }
        return atomic_write_json(self.config_path, doc)

    def load_config(self) -> dict[str, Any]:
        try:
            return json.loads(self.config_path.read_text())
        except FileNotFoundError:
            raise ConfigError(self.config_path, "file", "does not exist: not a run directory") from None
        except json.JSONDecodeError as e:
            raise ConfigError(self.config_path, "json", f"invalid ({e.msg})") from e

    def truncate_metrics(self, after_step: int) -> None:
        """Drop metric rows logged after ``after_step`` (a resumed run re-logs them), atomically."""
        if not self.metrics_path.exists():
            return
        kept = [
            line
            for line in self.metrics_path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= after_step
        ]
        atomic_write_text(self.metrics_path, "".join(line + "\n" for line in kept))

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoint_path(self, step: int, final: bool = False) -> Path:
        return self.ckpt_dir / ("final.safetensors" if final else f"step_{int(step):09d}.safetensors")

    def save_checkpoint(self, ac: Any, step: int, *, final: bool = False, keep: int = 3, **kwargs: Any) -> Path:
        """Write a checkpoint, point ``latest`` at it, and prune old periodic ones (keep the last ``keep``)."""
        self.create()
        path = save_checkpoint(self.checkpoint_path(step, final), ac, step=step, **kwargs)
        atomic_write_text(self.ckpt_dir / "latest", path.name + "\n")
        self.prune(keep)
        return path

    @property
    def trajectory_dir(self) -> Path:
        return self.path / "trajectory"

    def save_snapshot(self, ac: Any, step: int, **kwargs: Any) -> Path:
        """An actor-only checkpoint in ``trajectory/`` (never pruned), for reward landscapes."""
        return save_checkpoint(
            self.trajectory_dir / f"step_{int(step):09d}.safetensors", ac, step=step, actor_only=True, **kwargs
        )

    def snapshots(self) -> list[Path]:
        return sorted(self.trajectory_dir.glob("step_*.safetensors"))

    def periodic_checkpoints(self) -> list[Path]:
        return sorted(self.ckpt_dir.glob("step_*.safetensors"))

    def prune(self, keep: int) -> None:
        if keep <= 0:
            return
        for old in self.periodic_checkpoints()[:-keep]:
            old.unlink(missing_ok=True)

    def latest_checkpoint(self) -> Path | None:
        marker = self.ckpt_dir / "latest"
        if marker.exists():
            p = self.ckpt_dir / marker.read_text().strip()
            if p.exists():
                return p
        final = self.checkpoint_path(0, final=True)
        if final.exists():
            return final
        periodic = self.periodic_checkpoints()
        return periodic[-1] if periodic else None


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run directory (its latest checkpoint)."""
    p = Path(path)
    if p.is_dir():
        latest = RunDir(p).latest_checkpoint()
        if latest is None:
            raise CheckpointError(p, "checkpoints", "run directory holds no checkpoint")
        return latest
    return p


def default_run_name(algo: str, task: str, seed: int) -> str:
    return f"{algo}-{task.replace('/', '_')}-s{seed}"

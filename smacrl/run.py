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

:class:`TrainingRun` is the one run driver: the offline loop (:mod:`smacrl.offline.train`) and the
online loop (:mod:`smacrl.online.loop`) both checkpoint, resume, snapshot and log through it, so the
two phases write the same files the same way and differ only in how they get their batches.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
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

    def lock(self):
        """Hold ``.lock`` while this process writes the run; a second writer exits with one line naming
        the holder, and a lock left by a killed process is taken over (the kernel released it)."""
        from smacrl.io import exclusive_lock

        return exclusive_lock(self.path / ".lock", wait=False, what="another process is writing this run")

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


STREAMS = "rng"
"""The checkpoint extra holding a run's random streams."""


class TrainingRun:
    """Checkpoints, resume, trajectory snapshots and metric logging of one training run.

    ``run`` may be None (nothing is written: a throw-away run such as the medium-replay generator's).
    Every checkpoint and snapshot records ``info`` and the ``phase``; resuming checks that the run
    directory's latest checkpoint was made by the same algorithm in the same phase.
    """

    def __init__(
        self,
        run: RunDir | None,
        learner: Any,
        cfg: Any,
        *,
        algo: str,
        phase: str,
        env_id: str | None,
        info: dict[str, Any] | None = None,
        updates_per_step: int = 1,
        on_save: Callable[[RunDir], None] | None = None,
    ):
        from smacrl.logger import MetricLogger
        from smacrl.nets.streams import RandomStreams

        self.run, self.learner, self.cfg = run, learner, cfg
        self.streams = RandomStreams()
        """The loop's random streams (register its samplers with ``streams.add``); saved in every
        checkpoint, restored by :meth:`resume`."""
        self.exact = False
        """Whether :meth:`resume` restored the random streams (checkpoints older than them have none)."""
        self.algo, self.phase, self.env_id = algo, phase, env_id
        self.info = {"phase": phase, **(info or {})}
        self.updates_per_step = updates_per_step
        self.on_save = on_save
        self.snap_every = max(1, cfg.steps // cfg.trajectory_points) if cfg.trajectory_points > 0 else 0
        self.logger = MetricLogger(
            run.path if run else None, tensorboard=cfg.tensorboard, wandb=cfg.wandb, wandb_config=config_to_dict(cfg)
        )
        self._t0, self._last = time.perf_counter(), 0

    # -- resume ----------------------------------------------------------------------------------
    def resume(self) -> int:
        """Restore the learner from the run's latest checkpoint (weights, extras, optimizer states), drop
        the metric rows logged after it, and return its step; 0 when the run has no checkpoint."""
        from smacrl.checkpoint import load_checkpoint
        from smacrl.registry import canonical

        latest = self.run.latest_checkpoint() if self.run is not None else None
        if latest is None:
            if self.run is not None:
                self.run.truncate_metrics(-1)  # a run killed before its first checkpoint starts over
            return 0
        spec = self.learner.ac.spec
        ck = load_checkpoint(latest, obs_dim=spec.obs_dim, act_dim=spec.act_dim)
        phase = ck.meta.get("info", {}).get("phase", "offline")
        if phase != self.phase:
            raise CheckpointError(latest, "phase", f"run holds a {phase} checkpoint; this is a {self.phase} run")
        if canonical(ck.algo, phase) != self.algo:  # type: ignore[arg-type]
            raise CheckpointError(latest, "algo", f"run was made by '{ck.algo}', not '{self.algo}'")
        ck.restore_into(self.learner)
        if STREAMS in ck.extras:
            self.streams.load_state_dict(ck.extras[STREAMS])
            self.exact = True
        assert self.run is not None
        self.run.truncate_metrics(ck.step)
        self._last = ck.step
        return ck.step

    # -- writing ---------------------------------------------------------------------------------
    def save(self, step: int, final: bool = False) -> Path | None:
        """A checkpoint of the actor-critic, the learner's extras and its optimizer states."""
        if self.run is None:
            return None
        self.logger.flush()  # the rows up to this step go with it: a resumed run re-logs only later ones
        self._guard()
        self._check_parameters(step)
        if self.on_save is not None:
            self.on_save(self.run)
        return self.run.save_checkpoint(
            self.learner.ac,
            step,
            final=final,
            keep=self.cfg.keep_checkpoints,
            algo=self.algo,
            config=config_to_dict(self.cfg),
            env_id=self.env_id,
            extras={**self.learner.extras(), STREAMS: self.streams},
            optimizers=self.learner.optimizers(),
            info=self.info,
        )

    def _check_parameters(self, step: int) -> None:
        """No checkpoint of a diverged learner: a non-finite parameter stops the run before it is written."""
        import torch

        modules = {"ac": self.learner.ac, **self.learner.extras()}
        for name, module in modules.items():
            for pname, p in module.named_parameters():
                if not bool(torch.isfinite(p).all()):
                    self._diverged(step, f"{name}.{pname}", float("nan"))

    def maybe_save(self, step: int) -> None:
        """The periodic checkpoint, every ``cfg.checkpoint_every`` steps before the last."""
        if self.cfg.checkpoint_every > 0 and step % self.cfg.checkpoint_every == 0 and step < self.cfg.steps:
            self.save(step)

    def snapshot(self, step: int) -> None:
        """An actor-only snapshot every ``cfg.steps // cfg.trajectory_points`` steps (and at step 0)."""
        if self.run is not None and self.snap_every and step % self.snap_every == 0:
            self.run.save_snapshot(self.learner.ac, step, algo=self.algo, env_id=self.env_id, info=self.info)

    # -- logging ---------------------------------------------------------------------------------
    def log(self, step: int, metrics: dict[str, Any]) -> None:
        self.logger.log(step, metrics)

    def log_update(self, step: int, metrics: dict[str, Any]) -> None:
        """A learner's metrics, namespaced by the phase (``offline/loss_td``, ``online/loss_td``)."""
        self.logger.log(step, {f"{self.phase}/{k}": v for k, v in metrics.items()})

    def flush(self, step: int, bar: Any, keys: Iterable[str]) -> dict[str, float]:
        """Log the update rate since the last flush, write the pending metrics (the loop's host sync),
        and show ``keys`` on the progress bar."""
        from smacrl.logger import postfix

        now = time.perf_counter()
        rate = (step - self._last) * self.updates_per_step / max(now - self._t0, 1e-9)
        self.logger.log(step, {"time/updates_per_s": rate})
        self._t0, self._last = now, step
        latest = self.logger.flush()
        self._guard()
        bar.set_postfix(postfix(latest, keys), refresh=False)
        return latest

    # -- stopping ----------------------------------------------------------------------------------
    def check_stop(self, step: int) -> None:
        """After a step: on SIGINT or SIGTERM received meanwhile, checkpoint this step and exit with the
        conventional status (130, 143); the next run resumes from here exactly."""
        if self.stop_signal is None:
            return
        path = self.save(step)
        name = signal.Signals(self.stop_signal).name
        where = f"; checkpoint {path}" if path else ""
        print(f"smacrl: {name}: stopped at step {step}{where}", file=sys.stderr, flush=True)
        raise SystemExit(128 + self.stop_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop_signal = signum

    def check_finite(self, step: int, metrics: dict[str, Any]) -> bool:
        """``on_nonfinite="skip"``: whether this update's metrics are finite (one host sync per step);
        the caller then restores the state from before the update. Always True under "stop"."""
        if getattr(self.cfg, "on_nonfinite", "stop") != "skip":
            return True
        import torch

        values = [v.float().reshape(()) for v in metrics.values() if isinstance(v, torch.Tensor)]
        if not values or bool(torch.isfinite(torch.stack(values)).all()):
            return True
        self.skipped += 1
        self.logger.log(step, {f"{self.phase}/skipped_updates": self.skipped})
        return False

    def _guard(self) -> None:
        """Stop on the first non-finite learner metric the last flush wrote (losses, Q, temperature...)."""
        for step, key, value in self.logger.nonfinite:
            if key.startswith(f"{self.phase}/"):
                self._diverged(step, key, value)

    def update(self, step: int, fn: Any) -> dict[str, Any] | None:
        """One learner update ``fn()``. Under ``on_nonfinite="skip"`` the state before it is kept and put
        back when the update's metrics are not finite (then None is returned and nothing is logged)."""
        if getattr(self.cfg, "on_nonfinite", "stop") != "skip":
            return fn()
        import copy

        before = copy.deepcopy(self._state())
        metrics = fn()
        if self.check_finite(step, metrics):
            return metrics
        ac, extras, optimizers = before
        self.learner.ac.load_state_dict(ac)
        for name, module in self.learner.extras().items():
            module.load_state_dict(extras[name])
        for name, opt in self.learner.optimizers().items():
            opt.load_state_dict(optimizers[name])
        return None

    def _state(self) -> tuple[dict, dict, dict]:
        return (
            self.learner.ac.state_dict(),
            {name: m.state_dict() for name, m in self.learner.extras().items()},
            {name: o.state_dict() for name, o in self.learner.optimizers().items()},
        )

    def _diverged(self, step: int, key: str, value: float) -> None:
        from smacrl.errors import DivergenceError

        latest = self.run.latest_checkpoint() if self.run is not None else None
        keep = f"; the last good checkpoint is {latest}" if latest else ""
        where = self.run.path if self.run is not None else self.algo
        raise DivergenceError(where, key, f"is {value} at step {step}: stopped{keep}")

    def __enter__(self) -> TrainingRun:
        self._t0 = time.perf_counter()
        self.stop_signal: int | None = None
        self.skipped = 0
        self._handlers: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._handlers[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)
        self.logger.close()

"""The offline pre-training loop, shared by every offline algorithm.

``pretrain`` builds the common actor-critic from the dataset's dims and the config, copies the
dataset to the device once (:class:`~smacrl.data.replay.DatasetBuffer`), then runs
``learner.update(batch)`` for ``cfg.steps`` steps. Metrics stay tensors until the logger flushes
them every ``cfg.log_every`` steps (the loop's only host sync besides evaluation). It evaluates the
deterministic policy every ``cfg.eval_every`` steps, checkpoints every ``cfg.checkpoint_every``
steps and at the end, and resumes from the run directory's latest checkpoint (weights, extras and
optimizer states; the random streams restart from the seed and step).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from smacrl.checkpoint import load_checkpoint, read_metadata
from smacrl.configs import config_to_dict
from smacrl.data.dataset import Dataset
from smacrl.data.replay import DatasetBuffer
from smacrl.errors import CheckpointError
from smacrl.eval.rollout import eval_metrics
from smacrl.logger import MetricLogger, postfix, progress
from smacrl.nets.actor_critic import ActorCritic, ActorCriticSpec
from smacrl.nets.compile import compile_learner
from smacrl.run import RunDir
from smacrl.runtime import resolve_device, seed_everything


class Learner(Protocol):
    name: str
    ac: ActorCritic

    def update(self, batch: dict[str, torch.Tensor], diagnostics: bool = False) -> dict[str, torch.Tensor]: ...
    def extras(self) -> dict[str, nn.Module]: ...
    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...


LearnerFactory = Callable[[ActorCritic, Any, Dataset], Learner]


def build_actor_critic(cfg: Any, dataset: Dataset, device: torch.device) -> ActorCritic:
    spec = ActorCriticSpec.from_config(cfg, dataset.obs_dim, dataset.action_low, dataset.action_high)
    ac = ActorCritic(spec).to(device)
    if getattr(cfg, "normalize_obs", True):
        ac.obs_norm.set_stats(torch.as_tensor(dataset.obs_mean), torch.as_tensor(dataset.obs_std))
    return ac


def _resume(run: RunDir, learner: Learner, dataset: Dataset) -> int:
    latest = run.latest_checkpoint()
    if latest is None:
        return 0
    ck = load_checkpoint(latest, obs_dim=dataset.obs_dim, act_dim=dataset.act_dim)
    if ck.algo != learner.name:
        raise CheckpointError(latest, "algo", f"run was made by '{ck.algo}', not '{learner.name}'")
    ck.restore_into(learner)
    return ck.step


def pretrain(
    algo: str,
    learner_factory: LearnerFactory,
    dataset: Dataset,
    cfg: Any,
    run_dir: str | Path,
    *,
    preset: str | None = None,
    resume: bool = True,
    info: dict[str, Any] | None = None,
) -> Path:
    """Run offline pre-training; returns the path of the final checkpoint."""
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    run = RunDir(run_dir).create()
    final = run.checkpoint_path(cfg.steps, final=True)
    if resume and final.exists() and read_metadata(final)["step"] >= cfg.steps:
        return final  # finished: don't build the learner (for SMAC that would load or train a score model)
    ac = build_actor_critic(cfg, dataset, device)
    learner = learner_factory(ac, cfg, dataset)
    compile_learner(learner, cfg.compile)
    start = _resume(run, learner, dataset) if resume else 0
    if start:
        run.truncate_metrics(start)
    run.save_config(algo, cfg, preset=preset, dataset=dataset.source, dataset_sha256=dataset.sha256, task=dataset.task)
    torch.manual_seed(cfg.seed + start)
    gen = torch.Generator(device=device).manual_seed(cfg.seed + start)
    buffer = DatasetBuffer(dataset, device=device, generator=gen)
    ckpt_kwargs = dict(
        algo=algo,
        config=config_to_dict(cfg),
        env_id=dataset.task,
        info={"dataset": dataset.source, "dataset_sha256": dataset.sha256, "preset": preset, **(info or {})},
    )

    def save(step: int, is_final: bool = False) -> Path:
        return run.save_checkpoint(
            ac,
            step,
            final=is_final,
            keep=cfg.keep_checkpoints,
            extras=learner.extras(),
            optimizers=learner.optimizers(),
            **ckpt_kwargs,
        )

    snap_every = max(1, cfg.steps // cfg.trajectory_points) if cfg.trajectory_points > 0 else 0

    def snapshot(step: int) -> None:
        if snap_every and step % snap_every == 0:
            run.save_snapshot(ac, step, algo=algo, env_id=dataset.task, info={"phase": "offline", "preset": preset})

    logger = MetricLogger(run.path, tensorboard=cfg.tensorboard, wandb=cfg.wandb, wandb_config=config_to_dict(cfg))
    keys = ("offline/loss_ac", "offline/loss_actor", "offline/q_mean", "eval/return_mean")
    t0, last_step = time.perf_counter(), start
    with logger, progress(cfg.steps, f"pretrain {algo}", cfg.progress, initial=start) as bar:
        if start == 0:
            snapshot(0)
            if cfg.eval_every > 0:
                logger.log(0, eval_metrics(ac, dataset.task, cfg.eval_episodes, cfg.seed))
        for step in range(start + 1, cfg.steps + 1):
            batch = buffer.sample(cfg.batch_size)
            diagnostics = step % cfg.log_every == 0
            metrics = learner.update(batch, diagnostics=diagnostics)
            logger.log(step, {f"offline/{k}": v for k, v in metrics.items()})
            if cfg.eval_every > 0 and (step % cfg.eval_every == 0 or step == cfg.steps):
                logger.log(step, eval_metrics(ac, dataset.task, cfg.eval_episodes, cfg.seed))
            if diagnostics or step == cfg.steps:
                now = time.perf_counter()
                logger.log(step, {"time/updates_per_s": (step - last_step) / max(now - t0, 1e-9)})
                t0, last_step = now, step
                bar.set_postfix(postfix(logger.flush(), keys), refresh=False)
            if cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                save(step)
            snapshot(step)
            bar.update(1)
        return save(cfg.steps, is_final=True)

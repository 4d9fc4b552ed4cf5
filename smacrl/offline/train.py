"""The offline pre-training loop, shared by every offline algorithm.

``pretrain`` builds the common actor-critic from the dataset's dims and the config, copies the
dataset to the device once (:class:`~smacrl.data.replay.DatasetBuffer`), then runs
``learner.update(batch)`` for ``cfg.steps`` steps, with checkpoints, resume and logs through the
one run driver (:class:`~smacrl.run.TrainingRun`). Metrics stay tensors until the logger flushes
them every ``cfg.log_every`` steps (the loop's only host sync besides evaluation). It evaluates the
deterministic policy every ``cfg.eval_every`` steps, checkpoints every ``cfg.checkpoint_every``
steps and at the end, and resumes from the run directory's latest checkpoint exactly: weights, extras,
optimizer states, the random streams (torch's, python's and the batch sampler's) and the metric rows
up to the checkpoint, so a run killed at any moment and started again ends as the uninterrupted run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from smacrl.checkpoint import read_metadata
from smacrl.data.dataset import Dataset
from smacrl.data.replay import DatasetBuffer
from smacrl.errors import ConfigError
from smacrl.eval.rollout import eval_metrics
from smacrl.logger import progress
from smacrl.nets.actor_critic import ActorCritic, ActorCriticSpec
from smacrl.nets.compile import compile_learner
from smacrl.registry import Learner
from smacrl.run import RunDir, TrainingRun
from smacrl.runtime import resolve_device, seed_everything


def build_actor_critic(cfg: Any, dataset: Dataset, device: torch.device) -> ActorCritic:
    spec = ActorCriticSpec.from_config(cfg, dataset.obs_dim, dataset.action_low, dataset.action_high)
    ac = ActorCritic(spec).to(device)
    if getattr(cfg, "normalize_obs", True):
        ac.obs_norm.set_stats(torch.as_tensor(dataset.obs_mean), torch.as_tensor(dataset.obs_std))
    return ac


def pretrain(
    algo: str,
    dataset: Dataset,
    cfg: Any,
    run_dir: str | Path,
    *,
    preset: str | None = None,
    resume: bool = True,
    info: dict[str, Any] | None = None,
) -> Path:
    """Pre-train the registered offline algorithm ``algo`` on ``dataset``; returns the final checkpoint.

    The algorithm's ``prepare`` adapts the config to the dataset first (Cal-QL without Monte-Carlo
    returns runs as CQL), so the Python API and ``smacrl pretrain`` run the same thing.
    """
    from smacrl.registry import get

    spec = get(algo, "offline")
    if dataset.task is None and cfg.eval_every > 0:
        raise ConfigError(
            dataset.source,
            "task",
            "no task is bound to this data, so the run could not evaluate: name it with --task TASK "
            "(smacrl data info lists what the file says) or train without evaluation with --eval-every 0",
        )
    info = dict(info or {})
    if spec.prepare is not None:
        cfg, recorded = spec.prepare(cfg, dataset)
        info.update(recorded)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    run = RunDir(run_dir).create()
    with run.lock():  # one writer per run directory
        final = run.checkpoint_path(cfg.steps, final=True)
        if resume and final.exists() and read_metadata(final)["step"] >= cfg.steps:
            return final  # finished: don't build the learner (for SMAC that would load or train a score model)
        ac = build_actor_critic(cfg, dataset, device)
        assert spec.build is not None
        learner: Learner = spec.build(ac, cfg, dataset=dataset, preset=preset)
        compile_learner(learner, cfg.compile)
        info = {"dataset": dataset.source, "dataset_sha256": dataset.sha256, "preset": preset, **info}
        driver = TrainingRun(run, learner, cfg, algo=spec.name, phase="offline", env_id=dataset.task, info=info)
        gen = torch.Generator(device=device)
        driver.streams.add("batches", gen)
        start = driver.resume() if resume else 0
        run.save_config(
            spec.name, cfg, preset=preset, dataset=dataset.source, dataset_sha256=dataset.sha256, task=dataset.task
        )
        if not driver.exact:  # a fresh run, or one resumed from a checkpoint without its random streams
            torch.manual_seed(cfg.seed + start)
            gen.manual_seed(cfg.seed + start)
        buffer = DatasetBuffer(dataset, device=device, generator=gen)
        keys = ("offline/loss_td", "offline/loss_actor", "offline/q_mean", "eval/return_mean")
        with driver, progress(cfg.steps, f"pretrain {spec.name}", cfg.progress, initial=start) as bar:
            if start == 0:
                driver.snapshot(0)
                if cfg.eval_every > 0:
                    driver.log(0, eval_metrics(ac, dataset.task, cfg.eval_episodes, cfg.seed))
            for step in range(start + 1, cfg.steps + 1):
                batch = buffer.sample(cfg.batch_size)
                diagnostics = step % cfg.log_every == 0
                metrics = driver.update(step, lambda: learner.update(batch, diagnostics=diagnostics))  # noqa: B023
                if metrics is not None:
                    driver.log_update(step, metrics)
                if cfg.eval_every > 0 and (step % cfg.eval_every == 0 or step == cfg.steps):
                    driver.log(step, eval_metrics(ac, dataset.task, cfg.eval_episodes, cfg.seed))
                if diagnostics or step == cfg.steps:
                    driver.flush(step, bar, keys)
                driver.maybe_save(step)
                driver.snapshot(step)
                bar.update(1)
                driver.check_stop(step)
            path = driver.save(cfg.steps, final=True)
        assert path is not None
        return path

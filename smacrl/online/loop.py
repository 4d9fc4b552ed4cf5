"""The offline-to-online protocol (paper sections 3 and 4.2).

1. Load a common actor-critic checkpoint (any offline algorithm) and check it fits the task's env.
2. Evaluate it: J(pi_0), logged at online step 0.
3. Warm start: collect ``cfg.warmup_steps`` transitions with the loaded policy into the online
   buffer, without updates (5,000 in the paper).
4. Train for ``cfg.steps`` env steps, ``cfg.updates_per_step`` updates each, every batch drawn
   ``cfg.dataset_fraction`` from the offline dataset and the rest from online replay (50/50).
5. Evaluate right after the first ``cfg.eval_after_first`` updates (J(pi_1)), then every
   ``cfg.eval_every`` updates, and at the end.

A terminal (``terminated``) stops bootstrapping; a timeout (``truncated``) is not a terminal: the
transition is stored with ``terminal = 0`` and the episode restarts. Metric steps are online updates
(0 = the checkpoint as loaded). Checkpoints carry the learner's extras and optimizer states and the
random streams (torch's, python's, the dataset sampler's, the warm-up's); the online replay is saved
beside them (``checkpoints/replay.safetensors``), so a killed run resumes from its last checkpoint with
all of that exactly as it was.

What resume does not restore is the environment: gymnasium has no general way to save an env's
state, so a resumed run starts a new episode (reset with seed ``cfg.seed + step``), and from there
its transitions, and so its updates, differ from the uninterrupted run's. The promise is: the
learner, its optimizers, the replay and the metric rows are those of the uninterrupted run up to the
checkpoint, and the run then continues from a fresh episode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smacrl.checkpoint import load_checkpoint, read_metadata
from smacrl.data.dataset import Dataset
from smacrl.data.replay import DatasetBuffer, MixedSampler, ReplayBuffer
from smacrl.data.tasks import make_env
from smacrl.errors import CheckpointError
from smacrl.eval.rollout import eval_metrics
from smacrl.logger import progress
from smacrl.nets.actor_critic import ActorCritic
from smacrl.nets.compile import compile_learner
from smacrl.registry import OnlineLearner
from smacrl.run import RunDir, TrainingRun, resolve_checkpoint
from smacrl.runtime import resolve_device, seed_everything

REPLAY_FILE = "replay.safetensors"


def online_loop(
    learner: OnlineLearner,
    cfg: Any,
    task: str,
    *,
    run: RunDir | None = None,
    dataset: Dataset | None = None,
    algo: str = "sac",
    random_warmup: bool = False,
    stop_when: Callable[[dict[str, float]], bool] | None = None,
    resume: bool = True,
    ckpt_info: dict[str, Any] | None = None,
    bar: Any = None,
) -> tuple[Path | None, ReplayBuffer, dict[str, Any]]:
    """Run warm start + online training. Returns (final checkpoint or None, online buffer, summary).

    ``random_warmup`` collects the warm-start transitions with uniform random actions (training from
    scratch) instead of the loaded policy. ``stop_when(eval_metrics)`` ends training early after an
    evaluation (the medium-replay dataset protocol uses it). ``bar`` replaces the loop's own progress
    bar (it is updated by env steps, not closed). The online buffer also stores ``timeouts``.
    """
    ac: ActorCritic = learner.ac
    device = next(ac.parameters()).device
    obs_dim, act_dim = ac.spec.obs_dim, ac.spec.act_dim
    online = ReplayBuffer(cfg.warmup_steps + cfg.steps, obs_dim, act_dim, device, extra=("timeouts",))
    sampler: Any = online
    if dataset is not None and cfg.dataset_fraction > 0:
        gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        offline = DatasetBuffer(dataset, device=device, generator=gen, include_w=False, include_mc=False)
        sampler = MixedSampler(offline, online, cfg.dataset_fraction)

    driver = TrainingRun(
        run,
        learner,
        cfg,
        algo=algo,
        phase="online",
        env_id=task,
        info=ckpt_info,
        updates_per_step=cfg.updates_per_step,
        on_save=lambda r: online.save(r.ckpt_dir / REPLAY_FILE),
    )
    rng = np.random.default_rng(cfg.seed)  # the random warm-up's actions
    driver.streams.add("warmup", rng)
    if sampler is not online:
        driver.streams.add("dataset_batches", gen)
    start = 0
    if run is not None and resume:
        start = driver.resume()
        if start and (run.ckpt_dir / REPLAY_FILE).exists():
            online.load(run.ckpt_dir / REPLAY_FILE)
    final_path = run.checkpoint_path(cfg.steps, final=True) if run is not None else None
    if final_path is not None and start >= cfg.steps and final_path.exists():
        return final_path, online, {}

    env = make_env(task)
    if not driver.exact:  # a fresh run, or one resumed from a checkpoint without its random streams
        rng.bit_generator.state = np.random.default_rng(cfg.seed + start).bit_generator.state
        torch.manual_seed(cfg.seed + start)
    obs, _ = env.reset(seed=cfg.seed + start)  # a resumed run starts a new episode (module docstring)
    ep_return, ep_len, summary = 0.0, 0, {"evals": []}

    def evaluate_now(step: int) -> bool:
        m = eval_metrics(ac, task, cfg.eval_episodes, cfg.seed)  # the seeds of the offline evaluations
        driver.log(step, m)
        summary["evals"].append((step, m.get("eval/return_mean")))
        return stop_when is not None and stop_when(m)

    warm = cfg.warmup_steps if start == 0 else 0
    total = warm + cfg.steps - start
    keys = ("online/loss_td", "online/loss_actor", "online/episode_return", "eval/return_mean")
    stopped = False
    own_bar = progress(total, f"online {algo}", cfg.progress) if bar is None else contextlib.nullcontext(bar)
    with driver, own_bar as bar:
        if start == 0:
            driver.snapshot(0)
            if cfg.eval_episodes > 0:
                stopped = evaluate_now(0)
        step = start
        for t in range(total):
            if stopped:
                break
            warming = t < warm
            if warming and random_warmup:
                a = torch.as_tensor(rng.uniform(-1, 1, size=(1, act_dim)), dtype=torch.float32, device=device)
            else:
                x = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(1, -1), device=device)
                a = learner.explore(ac.obs_norm(x))
            env_a = ac.to_env_action(a)[0].cpu().numpy().astype(env.action_space.dtype)
            next_obs, reward, terminated, truncated, _ = env.step(env_a)
            online.add(obs, a[0], reward, next_obs, float(terminated), timeouts=float(truncated and not terminated))
            ep_return += float(reward)
            ep_len += 1
            if terminated or truncated:
                driver.log(step, {"online/episode_return": ep_return, "online/episode_length": ep_len})
                obs, _ = env.reset()
                ep_return, ep_len = 0.0, 0
            else:
                obs = next_obs
            bar.update(1)
            if warming:
                continue
            step += 1
            metrics = None
            for _ in range(cfg.updates_per_step):
                metrics = driver.update(step, lambda: learner.update(sampler.sample(cfg.batch_size))) or metrics
            if metrics is not None:
                driver.log_update(step, metrics)
            if step == cfg.eval_after_first or step % cfg.eval_every == 0 or step == cfg.steps:
                stopped = evaluate_now(step)
            if step % cfg.log_every == 0 or step == cfg.steps or stopped:
                driver.flush(step, bar, keys)
            driver.maybe_save(step)
            driver.snapshot(step)
            driver.check_stop(step)
        env.close()
        summary["steps"] = step
        summary["stopped_early"] = stopped
        path = driver.save(step, final=True)
    return path, online, summary


def finetune(
    algo: str,
    checkpoint: str | Path,
    cfg: Any,
    run_dir: str | Path,
    *,
    task: str | None = None,
    dataset: Dataset | None = None,
    preset: str | None = None,
) -> Path:
    """Fine-tune a checkpoint online with the registered online algorithm ``algo``; returns the final
    checkpoint path."""
    from smacrl.data.tasks import env_dims
    from smacrl.registry import get

    spec = get(algo, "online")
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    path = resolve_checkpoint(checkpoint)
    meta_task = read_metadata(path).get("env_id")  # header only; the full load below validates the rest
    task = task or meta_task
    if not task:
        raise CheckpointError(path, "env_id", "checkpoint names no task; pass --task")
    env = make_env(task)
    obs_dim, low, _ = env_dims(env)
    env.close()
    ckpt = load_checkpoint(path, device=device, obs_dim=obs_dim, act_dim=len(low))
    assert spec.build is not None
    learner = spec.build(ckpt.actor_critic, cfg, checkpoint=ckpt, preset=preset, dataset=dataset)
    compile_learner(learner, cfg.compile)
    run = RunDir(run_dir).create()
    with run.lock():  # one writer per run directory
        offline_label = ckpt.config.get("label") or ckpt.algo  # a variant (smac-score-free) keeps its name
        run.save_config(
            spec.name, cfg, preset=preset, checkpoint=str(path), offline_algo=ckpt.algo, offline_label=offline_label,
            task=task,
        )  # fmt: skip
        info = {"offline_algo": ckpt.algo, "offline_label": offline_label, "offline_checkpoint": str(path),
                "preset": preset}  # fmt: skip
        final, _, _ = online_loop(learner, cfg, task, run=run, dataset=dataset, algo=spec.name, ckpt_info=info)
    assert final is not None
    return final

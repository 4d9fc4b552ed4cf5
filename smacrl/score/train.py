"""Training the dataset score model on tensors (independent of how the dataset was loaded)."""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from pathlib import Path

import torch
from torch.nn.utils import get_total_norm
from torch.optim.swa_utils import get_ema_multi_avg_fn

from smacrl.configs import ScoreConfig
from smacrl.logger import MetricLogger, postfix
from smacrl.logger import progress as progress_bar
from smacrl.score.checkpoint import save_score_model
from smacrl.score.model import ScoreModel

CHECKPOINT_NAME = "score.safetensors"


@dataclasses.dataclass
class ScoreTrainResult:
    model: ScoreModel
    """The EMA weights, in eval mode: the model to use for scores and samples."""
    raw: ScoreModel
    """The last optimizer iterate (not averaged)."""
    steps: int
    seconds: float
    checkpoint: Path | None

    @property
    def steps_per_second(self) -> float:
        return self.steps / max(self.seconds, 1e-9)


def train_score_model(
    obs: torch.Tensor,
    actions: torch.Tensor,
    w: torch.Tensor | None,
    cfg: ScoreConfig,
    *,
    device: str | torch.device = "cpu",
    out_dir: str | os.PathLike | None = None,
    dataset_sha256: str | None = None,
    obs_mean: torch.Tensor | None = None,
    obs_std: torch.Tensor | None = None,
    progress: bool = True,
    logger: MetricLogger | None = None,
    generator: torch.Generator | None = None,
    info: dict | None = None,
) -> ScoreTrainResult:
    """Fit a :class:`ScoreModel` to ``(obs [N, obs_dim], actions [N, act_dim] in [-1, 1], w [N])``.

    Minibatches are drawn by uniform random index from the tensors, moved to ``device`` once. The
    optimizer is AdamW (``cfg.lr``, ``cfg.weight_decay``); an EMA copy (decay ``cfg.ema_decay``) is
    updated after every step and is what gets checkpointed and returned as ``result.model``.
    ``obs_mean``/``obs_std`` default to the statistics of ``obs``.

    Metrics (``score/loss``, ``score/grad_norm``, ``score/lr``) are logged every ``cfg.log_every``
    steps; the logger buffers tensors, so the loop's only host syncs are its flushes. With
    ``out_dir``, ``out_dir/score.safetensors`` is written every ``cfg.checkpoint_every`` steps and at
    the end (atomically; the same file is replaced) and metrics go to ``out_dir/metrics.jsonl``
    unless a ``logger`` is given.
    """
    device = torch.device(device)
    obs = torch.as_tensor(obs, dtype=torch.float32).to(device)
    actions = torch.as_tensor(actions, dtype=torch.float32).to(device)
    n, obs_dim = obs.shape
    if actions.ndim != 2 or actions.shape[0] != n:
        raise ValueError(f"actions must be [N={n}, act_dim], got {tuple(actions.shape)}")
    act_dim = actions.shape[1]
    if cfg.rvs:
        if w is None:
            raise ValueError("an RvS score model (cfg.rvs=True) needs w; pass rvs=False for the unconditional one")
        w = torch.as_tensor(w, dtype=torch.float32).to(device).reshape(-1)
        if w.shape[0] != n:
            raise ValueError(f"w must have N={n} entries, got {w.shape[0]}")
    else:
        w = None

    model = ScoreModel(obs_dim, act_dim, cfg)
    mean = obs.mean(0) if obs_mean is None else torch.as_tensor(obs_mean, dtype=torch.float32)
    std = obs.std(0) if obs_std is None else torch.as_tensor(obs_std, dtype=torch.float32)
    model.set_obs_stats(mean.cpu(), std.cpu())
    model.to(device).train()
    # EMA with torch's own update rule (a foreach lerp). It is applied to the parameter lists directly
    # rather than through AveragedModel.update_parameters, which branches on its step counter tensor
    # (a host sync per step on GPU); the deep copy plays the role of its first "copy" update.
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    ema_update = get_ema_multi_avg_fn(cfg.ema_decay)
    ema_params, live_params = list(ema.parameters()), list(model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    own_logger = logger is None and out_dir is not None
    if own_logger:
        logger = MetricLogger(out_dir)
    ckpt_path = Path(out_dir) / CHECKPOINT_NAME if out_dir is not None else None

    def save(step: int) -> None:
        if ckpt_path is not None:
            save_score_model(ckpt_path, ema, cfg, step=step, dataset_sha256=dataset_sha256, info=info)

    log_every = max(1, int(cfg.log_every))
    loss_sum = torch.zeros((), device=device)
    gnorm_sum = torch.zeros((), device=device)
    start = time.perf_counter()
    with progress_bar(cfg.steps, "score", enabled=progress) as bar:
        for step in range(1, cfg.steps + 1):
            idx = torch.randint(n, (cfg.batch_size,), device=device, generator=generator)
            loss = model.loss(obs[idx], actions[idx], None if w is None else w[idx], generator=generator)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm_sum += get_total_norm([p.grad for p in live_params if p.grad is not None])
            opt.step()
            ema_update(ema_params, live_params, None)
            loss_sum += loss.detach()
            if step % log_every == 0 or step == cfg.steps:
                count = log_every if step % log_every == 0 else step % log_every
                if logger is not None:
                    logger.log(
                        step,
                        {"score/loss": loss_sum / count, "score/grad_norm": gnorm_sum / count, "score/lr": cfg.lr},
                    )
                    bar.set_postfix(postfix(logger.flush(), ["score/loss"]), refresh=False)
                loss_sum.zero_()
                gnorm_sum.zero_()
            if ckpt_path is not None and step % cfg.checkpoint_every == 0 and step != cfg.steps:
                save(step)
            bar.update(1)
    seconds = time.perf_counter() - start
    save(cfg.steps)
    if own_logger:
        logger.close()
    elif logger is not None:
        logger.flush()
    return ScoreTrainResult(model=ema, raw=model.eval(), steps=cfg.steps, seconds=seconds, checkpoint=ckpt_path)

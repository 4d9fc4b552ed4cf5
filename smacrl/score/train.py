"""Training the dataset score model on tensors (independent of how the dataset was loaded)."""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from pathlib import Path

import torch
from torch.nn.utils import get_total_norm

from smacrl.configs import ScoreConfig
from smacrl.logger import MetricLogger, postfix
from smacrl.logger import progress as progress_bar
from smacrl.registry import Algorithm
from smacrl.score.checkpoint import save_score_model
from smacrl.score.model import ScoreModel

CHECKPOINT_NAME = "score.safetensors"
TRAINING_VERSION = 2
"""Bumped when training changes what a model of the same config is (2: the EMA warm-up); recorded in
each checkpoint and part of the score cache's key, so models from older code are never reused."""
EMA_WARMUP = 10
"""The EMA decay ramps as ``(1 + n) / (EMA_WARMUP + n)`` before it reaches ``cfg.ema_decay``."""


def ema_decay_at(step: int, decay: float, warmup: int = EMA_WARMUP) -> float:
    """The EMA decay used at optimizer step ``step`` (1, 2, ...): ``min(decay, (1 + n) / (warmup + n))``.

    A constant decay keeps ``decay ** n`` of the random initialisation in the average after ``n`` steps
    (22% after 3,000 steps at 0.9995), so a short training budget would return a largely untrained
    model. The ramp forgets the initialisation within a few steps (its share is below 1% from step 4
    on) and reaches the configured decay after ``(warmup * decay - 1) / (1 - decay)`` steps (about
    18,000 at 0.9995).
    """
    return min(float(decay), (1.0 + step) / (warmup + step))


@torch.no_grad()
def ema_update(ema_params: list[torch.Tensor], live_params: list[torch.Tensor], step: int, decay: float) -> None:
    """``ema <- d ema + (1 - d) live`` with ``d = ema_decay_at(step, decay)``: one foreach lerp, no host sync."""
    torch._foreach_lerp_(ema_params, live_params, 1.0 - ema_decay_at(step, decay))


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


def _split(n: int, cfg: ScoreConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(training indices, held-out indices or None)``: a seeded random ``cfg.heldout_fraction`` of the
    rows (at most 10,000, and only when at least 100 rows remain for training). Transitions are held out
    one by one, so neighbours of a held-out step may be trained on: the held-out loss tells a model that
    fits the data's action distribution from one that has not learned it, not generalization to new
    trajectories."""
    n_out = min(int(n * cfg.heldout_fraction), 10_000)
    if n_out < 1 or n - n_out < 100:
        return torch.arange(n, device=device), None
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 7919)).to(device)
    return perm[n_out:].sort().values, perm[:n_out]


def _fixed_noise(actions: torch.Tensor, cfg: ScoreConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Diffusion steps and noise drawn once for the held-out rows, so the held-out loss of different
    steps (and runs) is measured on the same noised actions."""
    g = torch.Generator().manual_seed(cfg.seed + 104729)
    k = torch.randint(1, cfg.diffusion_steps + 1, (actions.shape[0],), generator=g)
    noise = torch.randn(actions.shape, generator=g)
    return k.to(actions.device), noise.to(actions.device)


@torch.no_grad()
def heldout_loss(
    model: ScoreModel,
    obs: torch.Tensor,
    actions: torch.Tensor,
    w: torch.Tensor | None,
    k: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    """The denoising loss of :meth:`ScoreModel.loss` at fixed steps ``k`` and noise."""
    return model.loss(obs, actions, w, k=k, noise=noise)


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
    optimizer is AdamW (``cfg.lr``, ``cfg.weight_decay``); an EMA copy (decay ``cfg.ema_decay`` after a
    warm-up, :func:`ema_decay_at`) is updated after every step and is what gets checkpointed and
    returned as ``result.model``.
    ``obs_mean``/``obs_std`` default to the statistics of ``obs``.

    Metrics (``score/loss``, ``score/grad_norm``, ``score/lr`` and, unless ``cfg.heldout_fraction`` is
    0, ``score/heldout_loss``: the EMA model on held-out rows, see :func:`_split`) are logged every
    ``cfg.log_every`` steps; the logger buffers tensors, so the loop's only host syncs are its flushes. With
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

    train_idx, heldout = _split(n, cfg, device)
    if heldout is not None:
        heldout = (obs[heldout], actions[heldout], None if w is None else w[heldout])
        heldout_noise = _fixed_noise(heldout[1], cfg)

    model = ScoreModel(obs_dim, act_dim, cfg)
    mean = obs.mean(0) if obs_mean is None else torch.as_tensor(obs_mean, dtype=torch.float32)
    std = obs.std(0) if obs_std is None else torch.as_tensor(obs_std, dtype=torch.float32)
    model.set_obs_stats(mean.cpu(), std.cpu())
    model.to(device).train()
    # The EMA is a foreach lerp on the parameter lists, its decay a Python float of the step (no host
    # sync); torch's get_ema_multi_avg_fn has a fixed decay and no warm-up.
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    ema_params, live_params = list(ema.parameters()), list(model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    log_every = max(1, int(cfg.log_every))
    loss_sum = torch.zeros((), device=device)
    gnorm_sum = torch.zeros((), device=device)
    state = TrainState(out_dir, model, ema, opt, generator, (loss_sum, gnorm_sum), cfg, dataset_sha256)
    first = state.resume() + 1  # 1 unless an interrupted training left its state in out_dir
    own_logger = logger is None and out_dir is not None
    if own_logger:
        logger = MetricLogger(out_dir)
    ckpt_path = Path(out_dir) / CHECKPOINT_NAME if out_dir is not None else None

    def save(step: int) -> None:
        if ckpt_path is not None:
            save_score_model(
                ckpt_path,
                ema,
                cfg,
                step=step,
                dataset_sha256=dataset_sha256,
                info={**(info or {}), "training_version": TRAINING_VERSION},
            )

    start = time.perf_counter()
    with progress_bar(cfg.steps, "score", enabled=progress, initial=first - 1) as bar:
        for step in range(first, cfg.steps + 1):
            idx = train_idx[torch.randint(len(train_idx), (cfg.batch_size,), device=device, generator=generator)]
            loss = model.loss(obs[idx], actions[idx], None if w is None else w[idx], generator=generator)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm_sum += get_total_norm([p.grad for p in live_params if p.grad is not None])
            opt.step()
            ema_update(ema_params, live_params, step, cfg.ema_decay)
            loss_sum += loss.detach()
            if step % log_every == 0 or step == cfg.steps:
                count = log_every if step % log_every == 0 else step % log_every
                if logger is not None:
                    metrics = {"score/loss": loss_sum / count, "score/grad_norm": gnorm_sum / count, "score/lr": cfg.lr}
                    if heldout is not None:
                        metrics["score/heldout_loss"] = heldout_loss(ema, *heldout, *heldout_noise)
                    logger.log(step, metrics)
                    bar.set_postfix(postfix(logger.flush(), ["score/loss", "score/heldout_loss"]), refresh=False)
                loss_sum.zero_()
                gnorm_sum.zero_()
            if ckpt_path is not None and step % cfg.checkpoint_every == 0 and step != cfg.steps:
                if logger is not None:
                    logger.flush()  # the rows up to this step go with the state
                save(step)
                state.save(step)
            bar.update(1)
    seconds = time.perf_counter() - start
    save(cfg.steps)
    state.clear()
    if own_logger:
        logger.close()
    elif logger is not None:
        logger.flush()
    return ScoreTrainResult(model=ema, raw=model.eval(), steps=cfg.steps, seconds=seconds, checkpoint=ckpt_path)


# ----------------------------------------------------------------------------- registration
_CPU = dict(
    hidden_dim=128,
    n_blocks=2,
    cond_hidden=(128, 128),
    time_emb_dim=32,
    obs_emb_dim=32,
    steps=3_000,
    batch_size=256,
    log_every=250,
    checkpoint_every=1_000,
)
_LAPTOP = dict(
    hidden_dim=256,
    n_blocks=2,
    cond_hidden=(256, 256),
    steps=10_000,
    batch_size=256,
    log_every=1_000,
    checkpoint_every=5_000,
)
_LARGE = dict(n_blocks=5, cond_hidden=(256, 256, 256), steps=3_000_000, batch_size=1024)
ALGORITHMS = (
    Algorithm(
        "score",
        "score",
        ScoreConfig,
        {"locomotion": {}, "adroit": dict(_LARGE), "kitchen": dict(_LARGE), "laptop": _LAPTOP, "cpu": _CPU},
        summary="the RvS diffusion model of the dataset's actions (table 6); no learner",
    ),
)


# ----------------------------------------------------------------------------- resume
STATE_NAME = "train_state.safetensors"


class TrainState:
    """What an interrupted score training needs to continue exactly: the live model, its EMA, AdamW's
    state, the random streams (torch's global one, which dropout draws from, and the batch generator),
    the loss accumulators between two logs, and the step; written to ``out_dir/train_state.safetensors``
    beside each periodic checkpoint and removed when the training ends. A state made for another
    dataset or config is ignored (the training starts over)."""

    def __init__(self, out_dir, model, ema, opt, generator, accumulators, cfg, dataset_sha256) -> None:
        from smacrl.nets.streams import RandomStreams

        self.path = Path(out_dir) / STATE_NAME if out_dir is not None else None
        self.model, self.ema, self.opt, self.acc = model, ema, opt, accumulators
        self.streams = RandomStreams()
        if generator is not None:
            self.streams.add("batches", generator)
        self.key = {"config": _resume_key(cfg), "dataset_sha256": dataset_sha256}

    def save(self, step: int) -> None:
        if self.path is None:
            return
        import json

        from safetensors.torch import save as st_save

        from smacrl.checkpoint import _flatten_optimizer, _jsonable
        from smacrl.io import atomic_write_bytes

        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        tensors.update({f"rng.{k}": v for k, v in self.streams.state_dict().items()})
        tensors.update({"acc.loss": self.acc[0], "acc.gnorm": self.acc[1]})
        optim = _flatten_optimizer("adamw", self.opt.state_dict(), tensors)
        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
        meta = json.dumps({"step": step, "optimizer": optim, **self.key}, default=_jsonable)
        atomic_write_bytes(self.path, st_save(tensors, metadata={"smacrl": meta}))

    def resume(self) -> int:
        """Load the state if there is one for this dataset and config; returns its step (else 0)."""
        if self.path is None:
            return 0
        from smacrl.run import RunDir

        if not self.path.exists():
            RunDir(self.path.parent).truncate_metrics(-1)  # a fresh training: no rows of an earlier one
            return 0
        import json

        from safetensors import safe_open

        from smacrl.checkpoint import _jsonable, _unflatten_optimizer

        with safe_open(str(self.path), framework="pt") as f:
            meta = json.loads(f.metadata()["smacrl"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no items()
        if {k: meta.get(k) for k in self.key} != json.loads(json.dumps(self.key, default=_jsonable)):
            print(f"{self.path}: made for another dataset or config; training from the start")
            RunDir(self.path.parent).truncate_metrics(-1)
            return 0
        device = next(self.model.parameters()).device

        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) :]: v.to(device) for k, v in tensors.items() if k.startswith(prefix)}

        self.model.load_state_dict(part("model."))
        self.ema.load_state_dict(part("ema."))
        self.opt.load_state_dict(_unflatten_optimizer("adamw", meta["optimizer"], part("")))
        self.streams.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("rng.")})
        self.acc[0].copy_(tensors["acc.loss"])
        self.acc[1].copy_(tensors["acc.gnorm"])
        step = int(meta["step"])
        RunDir(self.path.parent).truncate_metrics(step)
        return step

    def clear(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _resume_key(cfg: ScoreConfig) -> dict:
    """The config fields a resumed training must share with the interrupted one (all that change what
    it computes; not its length, logging or progress display)."""
    skip = {"steps", "progress", "out", "tensorboard", "wandb", "checkpoint_every", "device"}
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in skip}

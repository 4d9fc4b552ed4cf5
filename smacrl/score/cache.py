"""Reuse a trained score model for a dataset, matched by the dataset's content hash.

``ensure_score_model`` looks in ``$SMACRL_CACHE/score/<sha256[:16]>-<preset>-<rvs|norvs>-v<N>/``
(default ``~/.cache/smacrl``; ``N`` is :data:`~smacrl.score.train.TRAINING_VERSION`); if a checkpoint
there was trained on exactly this dataset (same SHA-256) by the same training version for at least the
configured steps it is loaded, otherwise the model is trained and written there. A pipeline can
therefore call it freely.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from smacrl.configs import make_config
from smacrl.io import exclusive_lock
from smacrl.score.checkpoint import load_score_model, read_score_metadata
from smacrl.score.model import ScoreModel
from smacrl.score.train import CHECKPOINT_NAME, TRAINING_VERSION, train_score_model


def cache_root() -> Path:
    return Path(os.environ.get("SMACRL_CACHE", Path.home() / ".cache" / "smacrl"))


def score_cache_dir(dataset_sha256: str, preset: str, rvs: bool) -> Path:
    kind = "rvs" if rvs else "norvs"
    return cache_root() / "score" / f"{dataset_sha256[:16]}-{preset}-{kind}-v{TRAINING_VERSION}"


def ensure_score_model(
    dataset,
    preset: str,
    *,
    rvs: bool = True,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    steps: int | None = None,
) -> tuple[ScoreModel, Path]:
    """The score model of ``dataset`` (a :class:`smacrl.data.Dataset`): cached, or trained now."""
    folder = score_cache_dir(dataset.sha256, preset, rvs)
    path = folder / CHECKPOINT_NAME
    # two runs that need the same model at once: one trains it, the other waits for the lock and reuses it
    with exclusive_lock(folder.with_name(folder.name + ".lock"), wait=True, what="score model being trained"):
        overrides = {"rvs": rvs, "seed": seed, "progress": progress}
        if steps is not None:
            overrides["steps"] = steps
        cfg = make_config("score", preset, **overrides)
        if path.exists():
            meta = read_score_metadata(path)
            if (
                meta.get("dataset_sha256") == dataset.sha256
                and bool(meta.get("rvs")) == rvs
                and int(meta.get("step", -1)) >= cfg.steps
                and (meta.get("info") or {}).get("training_version") == TRAINING_VERSION
            ):
                model = load_score_model(
                    path, device=device, obs_dim=dataset.obs_dim, act_dim=dataset.act_dim, dataset_sha256=dataset.sha256
                )
                return model, path
        generator = torch.Generator(device=torch.device(device)).manual_seed(seed)
        result = train_score_model(
            dataset.observations,
            dataset.actions,
            dataset.w if rvs else None,
            cfg,
            device=device,
            out_dir=folder,
            dataset_sha256=dataset.sha256,
            obs_mean=torch.as_tensor(dataset.obs_mean),
            obs_std=torch.as_tensor(dataset.obs_std),
            progress=progress,
            generator=generator,
            info={"dataset": dataset.source, "task": dataset.task},
        )
        return result.model, path

"""The dataset score model: an RvS-conditioned diffusion model of the dataset's actions.

``ScoreModel.score(s, a, w, k=1)`` estimates ``grad_a log pi_D(a | s, w)`` as ``-eps_hat / sigma_k``
(it points toward higher data density); see :mod:`smacrl.score.model` for the conventions.
"""

from smacrl.score.checkpoint import (
    ScoreCheckpoint,
    load_score_checkpoint,
    load_score_model,
    read_score_metadata,
    resolve_score_path,
    save_score_model,
)
from smacrl.score.model import DiffusionPolicy, ScoreModel, SinusoidalEmbedding, cosine_alpha_bar
from smacrl.score.train import ScoreTrainResult, train_score_model

__all__ = [
    "DiffusionPolicy",
    "ScoreCheckpoint",
    "ScoreModel",
    "ScoreTrainResult",
    "SinusoidalEmbedding",
    "cosine_alpha_bar",
    "load_score_checkpoint",
    "load_score_model",
    "read_score_metadata",
    "resolve_score_path",
    "save_score_model",
    "train_score_model",
]

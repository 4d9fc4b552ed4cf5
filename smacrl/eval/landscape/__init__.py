"""Reward landscapes over actor parameters: lines, planes and t-SNE of checkpoint trajectories.

These reproduce the pictures of the paper's section 5 (figures 3, 4 and 5, appendix M).

The package is split by job:

``params``
    actor parameters as vectors: :class:`Policy` and :func:`load_policy`, flattening, the
    normalizer check, line points and the orthonormal :class:`PlaneBasis` (what is varied, and how
    the plane is parametrized, is described there);
``evaluate``
    the vmapped batch evaluation and its process pool, the per-point JSON result cache, and
    :class:`EvalSettings` (cost and caching);
``experiments``
    :func:`line_landscape`, :func:`plane_landscape` and :func:`tsne_landscape`, with the discovery
    of runs' snapshot trajectories;
``plot``
    the figures, drawn from the JSON summaries.

Every public name is re-exported here: ``from smacrl.eval.landscape import line_landscape``.
"""

from smacrl.eval.landscape.evaluate import (
    CACHE_NAME,
    CACHE_VERSION,
    EvalSettings,
    ResultCache,
    cache_key,
    evaluate_cached,
    evaluate_checkpoints,
    evaluate_states,
    point_key,
)
from smacrl.eval.landscape.experiments import (
    Trajectory,
    collect_trajectories,
    line_landscape,
    plane_landscape,
    tsne_landscape,
)
from smacrl.eval.landscape.params import (
    ACTOR_PREFIX,
    NORM_PREFIX,
    PlaneBasis,
    Policy,
    actor_keys,
    check_compatible,
    flatten_actor,
    line_thetas,
    load_policy,
    unflatten_actor,
)
from smacrl.eval.landscape.plot import plot_line, plot_plane, plot_tsne

__all__ = [
    "ACTOR_PREFIX",
    "CACHE_NAME",
    "CACHE_VERSION",
    "NORM_PREFIX",
    "EvalSettings",
    "PlaneBasis",
    "Policy",
    "ResultCache",
    "Trajectory",
    "actor_keys",
    "cache_key",
    "check_compatible",
    "collect_trajectories",
    "evaluate_cached",
    "evaluate_checkpoints",
    "evaluate_states",
    "flatten_actor",
    "line_landscape",
    "line_thetas",
    "load_policy",
    "plane_landscape",
    "plot_line",
    "plot_plane",
    "plot_tsne",
    "point_key",
    "tsne_landscape",
    "unflatten_actor",
]

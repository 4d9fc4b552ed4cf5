"""Actor parameters as vectors: checkpoints as :class:`Policy`, flattening, lines and planes.

What is varied
    A rollout depends only on the observation normalizer and the actor (``ActorCritic.actor_state``).
    The landscapes move the actor's tensors (``actor.*``), flattened in state-dict order into one
    vector ``theta``. The normalizer is not a learned parameter: checkpoints placed on one line or
    plane must carry identical normalizer stats (a mismatch is an error, never averaged), and every
    point of the line/plane uses those stats. Arithmetic on ``theta`` is done in float64 and the
    result cast to the network's float32, so ``t = 0`` reproduces the endpoint bit for bit.

Line
    ``theta(t) = (1 - t) theta_A + t theta_B`` (:func:`line_thetas`).

Plane (figure 3, appendix M)
    ``u = theta_1 - theta`` and ``v = theta_2 - theta``; ``w = v - (u.v / u.u) u`` is ``v`` with its
    component along ``u`` removed (the appendix's printed formula has a typo). With the orthonormal
    basis ``u_hat = u / |u|`` and ``v_hat = w / |w|``, the point of in-plane coordinates ``(x, y)``
    is ``theta + x u_hat + y v_hat``. Coordinates are Euclidean distances in parameter space, so the
    plot does not distort angles or lengths. The checkpoints sit at ``theta: (0, 0)``,
    ``theta_1: (|u|, 0)`` and ``theta_2: (u.v / |u|, |w|)``. The appendix's ``(l, t)`` with
    ``theta + l u + t w`` are ``l = x / |u|`` and ``t = y / |w|``. The grid spans the
    three points' bounding box, stretched by ``range``: ``x = x_min + r (x_max - x_min)`` for
    ``r`` in ``linspace(lo, hi, grid)``, and the same for ``y``. When ``theta_2`` projects inside
    the segment ``[theta, theta_1]``, the default ``(-0.2, 1.2)`` is the appendix's
    ``[-0.2, 1.2]^2`` in ``(l, t)``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smacrl.checkpoint import load_checkpoint, tensor_digest
from smacrl.errors import CheckpointError
from smacrl.nets.actor_critic import ActorCriticSpec

ACTOR_PREFIX = "actor."
NORM_PREFIX = "obs_norm."


# ----------------------------------------------------------------------------- policies as vectors
@dataclasses.dataclass
class Policy:
    """The rollout-relevant part of a checkpoint: spec, normalizer and actor tensors."""

    path: Path
    meta: dict[str, Any]
    spec: ActorCriticSpec
    state: dict[str, torch.Tensor]
    """``ActorCritic.actor_state()``: ``obs_norm.*`` and ``actor.*`` tensors (CPU)."""
    digest: str
    """SHA-256 of ``state``: the same actor in a full checkpoint and in a snapshot shares it."""

    @property
    def algo(self) -> str:
        return str(self.meta.get("algo"))

    @property
    def step(self) -> int:
        return int(self.meta.get("step", 0))

    @property
    def env_id(self) -> str | None:
        return self.meta.get("env_id")

    @property
    def label(self) -> str:
        """``algo`` for offline checkpoints, ``offline -> online`` for fine-tuned ones; a variant's
        ``--label`` (smac-score-free, sac-matched) in place of its algorithm's name."""
        from smacrl.registry import canonical

        info = self.meta.get("info") or {}
        phase = info.get("phase", "offline")
        algo = (self.meta.get("config") or {}).get("label") or canonical(self.algo, phase)
        offline = info.get("offline_label") or info.get("offline_algo")
        return f"{offline} → {algo}" if offline and phase == "online" else algo

    def flat(self) -> torch.Tensor:
        return flatten_actor(self.state)

    def norm_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state.items() if k.startswith(NORM_PREFIX)}


def load_policy(path: str | os.PathLike) -> Policy:
    """A checkpoint file or run directory (its latest checkpoint), as a :class:`Policy`."""
    from smacrl.run import resolve_checkpoint

    ckpt = load_checkpoint(resolve_checkpoint(path))
    state = {k: v.detach().cpu().clone() for k, v in ckpt.actor_critic.actor_state().items()}
    return Policy(ckpt.path, ckpt.meta, ckpt.actor_critic.spec, state, tensor_digest(state))


def actor_keys(state: dict[str, torch.Tensor]) -> list[str]:
    return [k for k in state if k.startswith(ACTOR_PREFIX)]


def flatten_actor(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """The ``actor.*`` tensors, in state-dict order, as one float64 vector."""
    return torch.cat([state[k].reshape(-1).to(torch.float64) for k in actor_keys(state)])


def unflatten_actor(theta: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`flatten_actor`: ``actor.*`` tensors shaped and typed as in ``like``."""
    out, i = {}, 0
    for k in actor_keys(like):
        n = like[k].numel()
        out[k] = theta[i : i + n].reshape(like[k].shape).to(like[k].dtype)
        i += n
    if i != theta.numel():
        raise ValueError(f"parameter vector has {theta.numel()} entries, the actor {i}")
    return out


def check_compatible(ref: Policy, other: Policy) -> None:
    """Two checkpoints can share a line or plane: same network spec and identical normalizers."""
    if ref.spec != other.spec:
        diff = sorted(k for k, v in ref.spec.to_dict().items() if other.spec.to_dict().get(k) != v)
        raise CheckpointError(other.path, "nets", f"network spec differs from {ref.path} ({', '.join(diff)})")
    for k, v in ref.norm_state().items():
        if not torch.equal(v, other.state[k]):
            raise CheckpointError(
                other.path,
                k,
                f"observation normalizer differs from {ref.path}; landscapes need checkpoints trained "
                "with the same normalizer (it is never averaged)",
            )


# ----------------------------------------------------------------------------- lines and planes
def line_thetas(a: Policy, b: Policy, ts: Sequence[float]) -> list[dict[str, torch.Tensor]]:
    """The actor states at ``theta(t) = (1 - t) theta_A + t theta_B`` (normalizer of A)."""
    ta, tb = a.flat(), b.flat()
    norm = a.norm_state()
    return [{**norm, **unflatten_actor((1.0 - t) * ta + t * tb, a.state)} for t in ts]


@dataclasses.dataclass
class PlaneBasis:
    """An orthonormal basis of the plane through ``base``, ``theta_1`` and ``theta_2`` (float64)."""

    base: torch.Tensor
    u_hat: torch.Tensor
    v_hat: torch.Tensor
    u_norm: float
    """``|u|``, ``u = theta_1 - theta``."""
    w_norm: float
    """``|w|``, ``w = v - (u.v / u.u) u``: the part of ``v = theta_2 - theta`` orthogonal to ``u``."""
    uv: float
    """``u.v``."""

    @classmethod
    def from_points(cls, base: torch.Tensor, theta1: torch.Tensor, theta2: torch.Tensor) -> PlaneBasis:
        base, theta1, theta2 = (x.to(torch.float64) for x in (base, theta1, theta2))
        u, v = theta1 - base, theta2 - base
        uu = float(u @ u)
        if uu == 0.0:
            raise ValueError("theta_1 equals theta: u = 0 spans no direction")
        uv = float(u @ v)
        w = v - (uv / uu) * u
        w_norm = float(w.norm())
        if w_norm <= 1e-9 * max(math.sqrt(uu), float(v.norm())):
            raise ValueError("theta_2 lies on the line through theta and theta_1: the three points span no plane")
        u_norm = math.sqrt(uu)
        return cls(base, u / u_norm, w / w_norm, u_norm, w_norm, uv)

    def anchors(self) -> dict[str, tuple[float, float]]:
        """Exact in-plane coordinates of the three checkpoints."""
        return {"base": (0.0, 0.0), "theta1": (self.u_norm, 0.0), "theta2": (self.uv / self.u_norm, self.w_norm)}

    def point(self, x: float, y: float) -> torch.Tensor:
        return self.base + x * self.u_hat + y * self.v_hat

    def coords(self, theta: torch.Tensor) -> tuple[float, float]:
        """Orthogonal projection of ``theta`` onto the plane, in in-plane coordinates."""
        d = theta.to(torch.float64) - self.base
        return float(d @ self.u_hat), float(d @ self.v_hat)

    def grid(self, n: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        """Grid axes over the anchors' bounding box stretched to ``[lo, hi]`` of its sides."""
        xs_a, ys_a = zip(*self.anchors().values())
        r = np.linspace(lo, hi, n)
        x0, x1, y0, y1 = min(xs_a), max(xs_a), min(ys_a), max(ys_a)
        return x0 + r * (x1 - x0), y0 + r * (y1 - y0)

"""Replay buffers on a device: the offline dataset, the online ring buffer, and the mixed sampler.

All storage is preallocated once. ``sample`` draws indices with ``torch.randint`` on the buffer's
device and gathers every field with one ``index_select`` each: no Python loop per transition and no
host sync (the current size lives in a Python int updated by ``add``/``add_batch``, never read back from
the device).

A batch is a dict of tensors: ``obs``, ``actions``, ``rewards``, ``next_obs``, ``terminals`` (float 0/1),
plus ``w`` and ``mc_returns`` when the buffer holds them. Rewards, terminals, ``w`` and ``mc_returns``
have shape ``[B]``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from smacrl.data.dataset import Dataset

Batch = dict[str, torch.Tensor]
CORE_FIELDS = ("obs", "actions", "rewards", "next_obs", "terminals")


def _as_tensor(x, device: torch.device, dtype=torch.float32) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


class ReplayBuffer:
    """A ring buffer of fixed capacity; once full, new transitions overwrite the oldest ones.

    ``extra`` names optional per-transition scalar fields (``w``, ``mc_returns``) that are stored and
    sampled alongside the core ones.
    """

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        act_dim: int,
        device: str | torch.device = "cpu",
        extra: tuple[str, ...] = (),
        generator: torch.Generator | None = None,
    ):
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = int(capacity)
        self.device = torch.device(device)
        self.generator = generator
        f = dict(dtype=torch.float32, device=self.device)
        self.storage: dict[str, torch.Tensor] = {
            "obs": torch.zeros(capacity, obs_dim, **f),
            "actions": torch.zeros(capacity, act_dim, **f),
            "rewards": torch.zeros(capacity, **f),
            "next_obs": torch.zeros(capacity, obs_dim, **f),
            "terminals": torch.zeros(capacity, **f),
        }
        for name in extra:
            self.storage[name] = torch.zeros(capacity, **f)
        self.size = 0
        self.pos = 0

    def __len__(self) -> int:
        return self.size

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.storage)

    def add(self, obs, action, reward, next_obs, terminal, **extra) -> None:
        """One transition (arrays/tensors of one row, scalars for reward and terminal)."""
        batch = {
            "obs": _as_tensor(obs, self.device).reshape(1, -1),
            "actions": _as_tensor(action, self.device).reshape(1, -1),
            "rewards": _as_tensor(reward, self.device).reshape(1),
            "next_obs": _as_tensor(next_obs, self.device).reshape(1, -1),
            "terminals": _as_tensor(terminal, self.device).reshape(1),
        }
        batch.update({k: _as_tensor(v, self.device).reshape(1) for k, v in extra.items()})
        self.add_batch(batch)

    def add_batch(self, batch: Mapping[str, object]) -> None:
        """Rows of a batch dict with the buffer's field names (all of them), written at the ring position."""
        missing = set(self.storage) - set(batch)
        if missing:
            raise KeyError(f"batch lacks fields {sorted(missing)}")
        n = len(batch["obs"])
        if n == 0:
            return
        if n > self.capacity:  # only the last `capacity` rows survive anyway
            batch = {k: v[-self.capacity :] for k, v in batch.items()}
            n = self.capacity
        first = min(n, self.capacity - self.pos)
        for name, buf in self.storage.items():
            v = _as_tensor(batch[name], self.device).reshape(n, *buf.shape[1:])
            buf[self.pos : self.pos + first] = v[:first]
            if first < n:
                buf[: n - first] = v[first:]
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample_indices(self, batch_size: int) -> torch.Tensor:
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        return torch.randint(0, self.size, (batch_size,), device=self.device, generator=self.generator)

    def gather(self, idx: torch.Tensor) -> Batch:
        return {name: buf.index_select(0, idx) for name, buf in self.storage.items()}

    def sample(self, batch_size: int) -> Batch:
        return self.gather(self.sample_indices(batch_size))

    # -- persistence (for resumable online runs) -------------------------------------------------
    def save(self, path) -> None:
        """Write the filled rows and the ring position to a safetensors file, atomically."""
        from safetensors.torch import save

        from smacrl.io import atomic_write_bytes

        tensors = {name: buf[: self.size].contiguous().cpu() for name, buf in self.storage.items()}
        meta = {"size": str(self.size), "pos": str(self.pos), "capacity": str(self.capacity)}
        atomic_write_bytes(path, save(tensors, metadata=meta))

    def load(self, path) -> None:
        """Restore rows saved by :meth:`save` (same fields and widths; capacity may differ if large enough)."""
        from safetensors import safe_open

        from smacrl.errors import CheckpointError

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:
            raise CheckpointError(path, "replay", f"cannot be read ({e})") from e
        if set(tensors) != set(self.storage):
            raise CheckpointError(path, "replay", f"fields {sorted(tensors)} differ from {sorted(self.storage)}")
        size = int(meta.get("size", 0))
        if size > self.capacity:
            raise CheckpointError(path, "replay.size", f"{size} rows exceed the buffer's capacity {self.capacity}")
        for name, buf in self.storage.items():
            if tensors[name].shape[1:] != buf.shape[1:] or len(tensors[name]) != size:
                raise CheckpointError(path, f"replay.{name}", f"has shape {tuple(tensors[name].shape)}")
            buf[:size] = tensors[name].to(buf.device)
        self.size = size
        self.pos = int(meta.get("pos", size)) % self.capacity if int(meta.get("capacity", 0)) == self.capacity else size


class DatasetBuffer(ReplayBuffer):
    """The offline dataset, copied once to the device; full from the start."""

    def __init__(
        self,
        dataset: Dataset,
        device: str | torch.device = "cpu",
        generator: torch.Generator | None = None,
        include_w: bool = True,
        include_mc: bool = True,
    ):
        extra = tuple(
            name for name, on in (("w", include_w), ("mc_returns", include_mc and dataset.mc_returns is not None)) if on
        )
        super().__init__(len(dataset), dataset.obs_dim, dataset.act_dim, device, extra=extra, generator=generator)
        batch = {
            "obs": dataset.observations,
            "actions": dataset.actions,
            "rewards": dataset.rewards,
            "next_obs": dataset.next_observations,
            "terminals": dataset.terminals.astype(np.float32),
        }
        if "w" in extra:
            batch["w"] = dataset.w
        if "mc_returns" in extra:
            batch["mc_returns"] = dataset.mc_returns
        self.add_batch(batch)


class MixedSampler:
    """Draws ``round(fraction * B)`` rows from the dataset buffer and the rest from the online buffer.

    Only the fields both buffers hold are returned (the online buffer usually has no ``w``). The paper's
    online phase uses ``fraction = 0.5`` (section 4.2). While the online buffer is empty, the whole batch
    comes from the dataset.
    """

    def __init__(self, offline: ReplayBuffer, online: ReplayBuffer, fraction: float = 0.5):
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must lie in [0, 1]")
        if offline.device != online.device:
            raise ValueError("offline and online buffers must live on the same device")
        self.offline, self.online, self.fraction = offline, online, fraction
        self.fields = tuple(k for k in offline.fields if k in online.storage)

    def sample(self, batch_size: int) -> Batch:
        n_off = int(round(self.fraction * batch_size))
        if len(self.online) == 0:
            n_off = batch_size
        n_on = batch_size - n_off
        parts = []
        if n_off:
            idx = self.offline.sample_indices(n_off)
            parts.append({k: self.offline.storage[k].index_select(0, idx) for k in self.fields})
        if n_on:
            idx = self.online.sample_indices(n_on)
            parts.append({k: self.online.storage[k].index_select(0, idx) for k in self.fields})
        if len(parts) == 1:
            return parts[0]
        return {k: torch.cat([p[k] for p in parts]) for k in self.fields}

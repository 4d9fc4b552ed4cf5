"""Seeding and device selection, shared by every command."""

from __future__ import annotations

import ctypes
import os
import random
import sys

import numpy as np
import torch

from smacrl.errors import ConfigError


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch from one integer; return a torch generator seeded the same way.

    Environments are seeded separately through ``env.reset(seed=...)`` by the code that makes them.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    return torch.Generator().manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU. Asking for CUDA without one is a clear error."""
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device", "device", f"'{device}' requested but torch reports no CUDA device")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ConfigError("--device", "device", f"unknown device '{device}' (use cpu, cuda or auto)") from e


_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameter codes


def tune_allocator(enable: bool | None = None) -> bool:
    """Keep freed tensor memory in the process instead of handing it back to the OS (glibc only).

    By default glibc serves large blocks with ``mmap`` and trims the heap after big frees, so a
    training step that frees and reallocates the same megabyte-sized activations page-faults them in
    again on every update (thousands of minor faults per update at paper sizes). Raising the mmap and
    trim thresholds keeps that memory mapped; the process's RSS stays at its peak working set.
    ``SMACRL_MALLOC_TUNING=0`` turns this off. Returns whether the settings were applied.
    """
    if enable is None:
        enable = os.environ.get("SMACRL_MALLOC_TUNING", "1") != "0"
    if not enable or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: nothing to tune
        return False
    big = 1 << 30
    settings = ((_M_MMAP_THRESHOLD, big), (_M_TRIM_THRESHOLD, big), (_M_TOP_PAD, 64 << 20))
    applied = [mallopt(param, value) == 1 for param, value in settings]  # each one, even if another fails
    return all(applied)

"""Seeding and device selection, shared by every command."""

from __future__ import annotations

import os
import random

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

"""The random streams of a run, saved in its checkpoint so that a resumed run draws what the
uninterrupted one would have drawn."""

from __future__ import annotations

import json
import random

import numpy as np
import torch
from torch import nn


def _bytes(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(text.encode()), dtype=torch.uint8).clone()


def _text(t: torch.Tensor) -> str:
    return bytes(t.cpu().numpy().tobytes()).decode()


class RandomStreams(nn.Module):
    """torch's global CPU (and CUDA) generator, python's ``random``, and the named ``torch.Generator``s
    and ``numpy`` Generators a loop draws from (its batch samplers, its exploration), as uint8
    tensors in the checkpoint (numpy's and python's states as JSON bytes)."""

    def __init__(self) -> None:
        super().__init__()
        self.torch_generators: dict[str, torch.Generator] = {}
        self.numpy_generators: dict[str, np.random.Generator] = {}

    def add(self, name: str, generator: torch.Generator | np.random.Generator) -> None:
        if isinstance(generator, np.random.Generator):
            self.numpy_generators[name] = generator
        else:
            self.torch_generators[name] = generator

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:  # noqa: ANN001
        destination[prefix + "torch"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            for i, state in enumerate(torch.cuda.get_rng_state_all()):
                destination[f"{prefix}cuda.{i}"] = state
        destination[prefix + "python"] = _bytes(json.dumps(random.getstate()))
        for name, g in self.torch_generators.items():
            destination[f"{prefix}gen.{name}"] = g.get_state()
        for name, g in self.numpy_generators.items():
            destination[f"{prefix}numpy.{name}"] = _bytes(json.dumps(g.bit_generator.state))

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ) -> None:  # noqa: ANN001
        def get(key: str) -> torch.Tensor | None:
            t = state_dict.get(prefix + key)
            if t is None and strict:
                missing_keys.append(prefix + key)
            return t

        if (t := get("torch")) is not None:
            torch.set_rng_state(t.cpu())
        cuda = sorted(k for k in state_dict if k.startswith(prefix + "cuda."))
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([state_dict[k].cpu() for k in cuda])
        if (t := get("python")) is not None:
            version, state, gauss = json.loads(_text(t))
            random.setstate((version, tuple(state), gauss))
        for name, g in self.torch_generators.items():
            if (t := get(f"gen.{name}")) is not None:
                g.set_state(t.cpu())
        for name, g in self.numpy_generators.items():
            if (t := get(f"numpy.{name}")) is not None:
                g.bit_generator.state = json.loads(_text(t))

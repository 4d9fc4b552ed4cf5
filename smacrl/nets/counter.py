"""A learner's step counter that travels in its checkpoint."""

from __future__ import annotations

import torch
from torch import nn


class StepCounter(nn.Module):
    """A Python int (``value``) saved as a one-element tensor, so a resumed learner continues a
    schedule (TD3's delayed actor step) in phase. The int, not a tensor, is what the update reads:
    reading a device tensor every step would be a host sync."""

    def __init__(self) -> None:
        super().__init__()
        self.value = 0

    def increment(self) -> int:
        self.value += 1
        return self.value

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:  # noqa: ANN001
        destination[prefix + "value"] = torch.tensor(self.value, dtype=torch.int64)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ) -> None:  # noqa: ANN001
        key = prefix + "value"
        if key in state_dict:
            self.value = int(state_dict[key])
        elif strict:
            missing_keys.append(key)

"""smacrl: offline-to-online reinforcement learning built around SMAC (Score-Matched Actor-Critic)."""

__version__ = "0.1.0"

from smacrl.errors import SmacrlError  # noqa: E402

__all__ = ["SmacrlError", "__version__"]

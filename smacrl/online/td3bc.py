"""TD3+BC fine-tuning (Fujimoto & Gu 2021): TD3 whose actor is also pulled toward the batch's actions.

Actor loss, in the paper's table-10 form (see :func:`smacrl.losses.td3bc_actor_loss`)::

    -mean Q(s, mu(s)) / sg(mean |Q|)  +  bc_weight * mean ||mu(s) - a||^2

The Q normalization by ``mean |Q|`` is Fujimoto & Gu's ``lambda``. ``bc_weight`` comes from the
table of the offline algorithm that made the checkpoint (5.0 for SMAC's locomotion, ...). Online,
the batch is half dataset and half online replay, so the BC term pulls toward both.
"""

from __future__ import annotations

import torch

from smacrl.configs import TD3BCOnlineConfig
from smacrl.configs.presets import online_presets
from smacrl.losses import td3bc_actor_loss
from smacrl.nets.actor_critic import ActorCritic
from smacrl.online.td3 import TD3
from smacrl.registry import Algorithm


class TD3BC(TD3):
    name = "td3bc"

    def __init__(self, ac: ActorCritic, cfg: TD3BCOnlineConfig):
        super().__init__(ac, cfg)

    def actor_loss(self, obs_n: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        q_pi, pi = self.q_pi(obs_n)
        loss, _ = td3bc_actor_loss(q_pi, pi, batch["actions"], self.cfg.bc_weight)
        return loss


ALGORITHMS = (
    Algorithm(
        "td3bc",
        "online",
        TD3BCOnlineConfig,
        online_presets(),
        lambda ac, cfg, **_: TD3BC(ac, cfg),
        legacy_names=("td3bc_online",),
        summary="TD3+BC fine-tuning (TD3 with a BC term in the actor loss)",
    ),
)

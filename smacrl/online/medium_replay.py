"""D4RL's medium-replay protocol with the project's own SAC (``smacrl data make <task>-medium-replay``).

D4RL made ``*-medium-replay`` by training SAC online from scratch and keeping its *whole* replay
buffer up to the point where the policy reached the "medium" level. We do the same: SAC (two
[256, 256] critics, [256, 256] tanh-Gaussian actor, batch 256, lr 3e-4, target entropy -|A|, uniform
random actions for the first warm-up steps) trains on the task's env; it is evaluated every
``EVAL_EVERY`` steps; training stops at the first evaluation whose mean return reaches the task's
medium threshold, and every transition collected so far (random warm-up included) is the dataset.

Medium thresholds, one third of the way from a random to an expert policy:

- hopper: 1064 (one third of D4RL's reference range, -20.3 to 3234.3);
- walker2d: 1532 (D4RL: 1.6 to 4592.3);
- pendulum: -870 (random policy about -1230, SAC expert about -150; no D4RL reference exists).
"""

from __future__ import annotations

import numpy as np

from smacrl.configs import make_config
from smacrl.data.generators import Rollouts, register_generator
from smacrl.data.tasks import Task, env_dims, make_env
from smacrl.nets.actor_critic import ActorCritic, ActorCriticSpec
from smacrl.online.loop import online_loop
from smacrl.online.sac import SAC
from smacrl.runtime import seed_everything

MEDIUM_THRESHOLD = {"pendulum-medium-replay": -870.0, "hopper-medium-replay": 1064.0, "walker2d-medium-replay": 1532.0}
MAX_STEPS = {"pendulum-medium-replay": 30_000, "hopper-medium-replay": 1_000_000, "walker2d-medium-replay": 1_000_000}
EVAL_EVERY = {"pendulum-medium-replay": 250, "hopper-medium-replay": 5_000, "walker2d-medium-replay": 5_000}
WARMUP = {"pendulum-medium-replay": 1_000, "hopper-medium-replay": 5_000, "walker2d-medium-replay": 5_000}


def sac_medium_replay(task: Task, seed: int, steps: int | None, bar) -> Rollouts:
    seed_everything(seed)
    env = make_env(task.name)
    obs_dim, low, high = env_dims(env)
    env.close()
    spec = ActorCriticSpec(
        obs_dim, len(low), tuple(low), tuple(high), (256, 256), "relu", "exp", True, True, (256, 256), "relu", 2
    )
    ac = ActorCritic(spec)
    max_steps = steps or MAX_STEPS[task.name]
    warmup = min(WARMUP[task.name], max_steps // 2)
    cfg = make_config(
        "sac",
        "locomotion",
        seed=seed,
        device="cpu",
        steps=max_steps - warmup,
        warmup_steps=warmup,
        batch_size=256,
        actor_lr=3e-4,
        critic_lr=3e-4,
        target_entropy_scale=-1.0,
        eval_every=EVAL_EVERY[task.name],
        eval_after_first=EVAL_EVERY[task.name],
        eval_episodes=5,
        log_every=1_000,
        dataset_fraction=0.0,
        progress=False,
    )
    threshold = MEDIUM_THRESHOLD[task.name]
    bar.total = max_steps
    _, buffer, summary = online_loop(
        SAC(ac, cfg),
        cfg,
        task.name,
        algo="sac",
        random_warmup=True,
        stop_when=lambda m: m.get("eval/return_mean", -np.inf) >= threshold,
        bar=bar,
    )
    n = buffer.size
    st = {k: v[:n].cpu().numpy() for k, v in buffer.storage.items()}
    timeouts = st["timeouts"] > 0.5
    terminals = st["terminals"] > 0.5
    if n and not (terminals[-1] or timeouts[-1]):
        timeouts[-1] = True  # the run stopped mid-episode: close that episode as a timeout
    actions = ac.to_env_action(buffer.storage["actions"][:n]).cpu().numpy()
    evals = [r for _, r in summary["evals"] if r is not None]
    return Rollouts(
        observations=st["obs"],
        actions=actions,
        rewards=st["rewards"],
        terminals=terminals,
        timeouts=timeouts,
        next_observations=st["next_obs"],
        attrs={
            "protocol": "sac_medium_replay: SAC from scratch, whole replay buffer until eval return >= threshold",
            "medium_threshold": threshold,
            "reached_threshold": bool(summary.get("stopped_early", False)),
            "final_policy_return": float(evals[-1]) if evals else float("nan"),
            "best_policy_return": float(max(evals)) if evals else float("nan"),
            "sac_updates": int(summary.get("steps", 0)),
        },
    )


register_generator("sac_medium_replay", sac_medium_replay)

"""Measurements on experiments/smac_ab.py's checkpoints (kept locally, not committed): how far plain SAC moves
each critic (`drift`), the final policies sampled against their mean (`sampled`), the critics' own argmax
as a policy (`greedy`), and the pendulum score model's mode as a policy (`score-mode`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from smac_ab_design import DRIFT_EVERY, DRIFT_STEPS, RESULTS, SEEDS
from smac_ab_tables import mean_se


def sampled(task: str, variants: list[str]) -> None:
    """Re-evaluate the final offline checkpoints (kept locally, not committed) on 20 fresh episodes,
    the policy's mean against its samples: is a variant's return a matter of taking the mode?"""
    import torch

    from smacrl.checkpoint import load_checkpoint
    from smacrl.eval.rollout import evaluate

    torch.set_num_threads(1)
    for v in variants:
        res = {True: [], False: []}
        for s in SEEDS:
            ac = load_checkpoint(RESULTS / task / v / f"s{s}" / "offline" / "checkpoints" / "final.safetensors")
            for det in res:
                res[det].append(evaluate(ac.actor_critic, task, 20, 100 + s, deterministic=det).return_mean)
        print(f"{v}: deterministic {mean_se(res[True])}, sampled {mean_se(res[False])}", flush=True)


def shifted_copy(src: Path, dst: Path, shift: float) -> None:
    """``src``'s final checkpoint with its critic and target critic moved by ``shift`` (the output layers' biases),
    as run ``dst`` for `arms` to fine-tune: every action gradient, the actor and the optimizer states as they were.
    An existing copy is kept."""
    import torch

    from smacrl.checkpoint import load_checkpoint, save_checkpoint

    out = dst / "checkpoints" / "final.safetensors"
    if out.exists():
        return
    ck = load_checkpoint(src / "checkpoints" / "final.safetensors")
    ac = ck.actor_critic
    with torch.no_grad():
        for net in (ac.critic, ac.critic_target):
            net.net.net[-1].bias += shift
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "config.json", dst / "config.json")
    meta = ck.meta
    save_checkpoint(
        out,
        ac,
        algo=ck.algo,
        step=ck.step,
        config=ck.config,
        env_id=meta.get("env_id"),
        extras=ck.extras,
        optimizers=ck.optimizers,
        info={**meta.get("info", {}), "q_shift": shift},
    )


def bellman_rms(q, mu, batch, gamma: float) -> float:
    """RMS Bellman residual ``Q(s, a) - (r + gamma (1 - d) Q(s', mu(s')))`` over a batch of transitions
    ``(s, a, r, s', 1 - d)``, bootstrapped from the same ``q`` at the policy's mean action ``mu`` (no target
    network, no entropy term): how far a critic is from its own TD fixed point."""
    import torch

    obs, act, rew, next_obs, not_done = batch
    with torch.no_grad():
        y = rew + gamma * not_done * q(next_obs, mu(next_obs))
        return (q(obs, act) - y).square().mean().sqrt().item()


def write_drift(task: str, variants: list[str], phase: str = "online1k_drift") -> None:
    """How far SAC's first 1,000 updates (run ``phase``) move each critic: at 2,048 dataset states and the handover
    actor's mean actions, the cosine between grad_a of the ensemble-mean Q now and at the handover, and the
    mean Q, and the critic's RMS Bellman residual on dataset transitions. One drift.jsonl per run, beside its
    metrics."""
    import torch

    from smacrl.checkpoint import load_checkpoint
    from smacrl.data import load_dataset
    from smacrl.io import atomic_write_text
    from smacrl.offline.smac import action_gradient

    torch.set_num_threads(1)
    data = load_dataset(task)
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(len(data.observations), (2048,), generator=g)
    obs, act, rew, next_obs = (
        torch.as_tensor(x)[idx] for x in (data.observations, data.actions, data.rewards, data.next_observations)
    )
    not_done = 1.0 - torch.as_tensor(data.terminals)[idx].float()

    def grad_q(ac, obs_n, a):  # grad_a and value of the ensemble-mean Q
        grad, q = action_gradient(ac.critic, obs_n, a, ac.spec.ensemble_size)
        return grad.mean(0).detach(), q.mean(0).detach()

    def td_rms(ac, gamma: float) -> float:
        def q(o, act_):
            return ac.critic(ac.obs_norm(o), act_).mean(0)

        return bellman_rms(
            q, lambda o: ac.actor.deterministic(ac.obs_norm(o)), (obs, act, rew, next_obs, not_done), gamma
        )

    def reading(ac, a, g0, gamma: float, step: int) -> dict:
        """At the handover actor's mean actions ``a``: cos(grad_a Q, the handover's g0), mean Q and |grad_a Q|."""
        gk, qk = grad_q(ac, ac.obs_norm(obs), a)
        cos = torch.nn.functional.cosine_similarity(gk, g0, dim=-1).mean().item()
        row = {"step": step, "cos": cos, "q_mean": qk.mean().item(), "grad_norm": gk.norm(dim=-1).mean().item()}
        return {**row, "td_rms": td_rms(ac, gamma)}

    for v in variants:
        for s in SEEDS:
            run = RESULTS / task / v / f"s{s}" / phase
            hand = load_checkpoint(RESULTS / task / v / f"s{s}" / "offline" / "checkpoints" / "final.safetensors")
            ac0 = hand.actor_critic
            obs_n = ac0.obs_norm(obs)
            with torch.no_grad():
                a = ac0.actor.deterministic(obs_n)
            g0, _ = grad_q(ac0, obs_n, a)
            gamma = json.loads((run / "config.json").read_text())["config"]["gamma"]

            rows = [reading(ac0, a, g0, gamma, 0)]
            for k in range(DRIFT_EVERY, DRIFT_STEPS + 1, DRIFT_EVERY):
                path = run / "checkpoints" / f"step_{k:09d}.safetensors"
                if not path.exists() and k == DRIFT_STEPS:  # the last one is saved as final
                    path = run / "checkpoints" / "final.safetensors"
                if path.exists():
                    rows.append(reading(load_checkpoint(path).actor_critic, a, g0, gamma, k))
            atomic_write_text(run / "drift.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def _grid(act_dim: int, n: int):
    import itertools

    import torch

    g = torch.linspace(-1.0, 1.0, n).tolist()
    return torch.tensor(list(itertools.product(g, repeat=act_dim)))


def _score_of(task: str, result) -> float:
    return result.metrics()["eval/success_rate" if "pointmaze" in task else "eval/return_mean"]


def greedy(task: str, variants: list[str]) -> None:
    """Is a poor offline return the critic's doing or the actor's? Each final checkpoint's actor (its mean)
    against the critic's own argmax over a grid of actions (101 per dimension for 1-D actions, 21 for
    2-D), the ensemble reduced by its min, on 20 fresh episodes."""
    import torch

    from smacrl.checkpoint import load_checkpoint
    from smacrl.eval.rollout import evaluate, run_episodes, task_pool

    torch.set_num_threads(1)
    for v in variants:
        res = {"actor": [], "critic argmax": []}
        for s in SEEDS:
            ac = load_checkpoint(RESULTS / task / v / f"s{s}" / "offline" / "checkpoints" / "final.safetensors")
            ac = ac.actor_critic
            grid = _grid(ac.spec.act_dim, 101 if ac.spec.act_dim == 1 else 21)

            @torch.no_grad()
            def greedy(obs, ac=ac, grid=grid):
                x, k = ac.obs_norm(obs), grid.shape[0]
                q = ac.critic(x.repeat_interleave(k, 0), grid.repeat(x.shape[0], 1)).min(0).values
                return ac.to_env_action(grid[q.reshape(x.shape[0], k).argmax(1)])

            res["actor"].append(_score_of(task, evaluate(ac, task, 20, 100 + s)))
            episodes = run_episodes(greedy, task_pool(task), range(100 + s, 120 + s))
            res["critic argmax"].append(_score_of(task, episodes))
        print(f"{v}: " + ", ".join(f"{k} {mean_se(x)}" for k, x in res.items()), flush=True)


def mode_on_grid(score_fn, obs, n_grid: int = 201):
    """The mode of a 1-D action density in [-1, 1] at each state, from its score alone: log p up to a
    constant is the score integrated over a grid (a cumulative sum), and the mode is its argmax.
    ``score_fn(obs [B, obs], actions [B, 1]) -> [B, 1]``; returns actions ``[n, 1]``."""
    import torch

    grid = _grid(1, n_grid)
    n = obs.shape[0]
    score = score_fn(obs.repeat_interleave(n_grid, 0), grid.repeat(n, 1)).reshape(n, n_grid)
    log_p = torch.cumsum(score * (2.0 / (n_grid - 1)), 1)
    return grid[log_p.argmax(1)]


def score_mode(score_model: str, ks: list[int], ws: list[float] = (1.0,)) -> None:
    """The pendulum's score model as a policy that takes the mode of p(a | s, w): log p up to a constant
    is the score integrated over a grid of 201 actions (1-D, so the integral is a cumulative sum); the
    policy acts at its argmax. SMAC's critic, matched to this score with a small temperature, pulls its
    policy toward that mode (at w = 1, the paper's condition); sampling the same model is ``smacrl score
    eval``'s diffusion-BC return. Other ``ws`` show how much the return condition moves the mode."""
    import torch

    from smacrl.data.tasks import task_dims
    from smacrl.eval.rollout import run_episodes, task_pool
    from smacrl.score import load_score_model

    torch.set_num_threads(1)
    task = "pendulum-medium-replay"
    obs_dim, low, high = task_dims(task)
    model = load_score_model(score_model, obs_dim=obs_dim, act_dim=1)
    center = torch.tensor((high + low) / 2, dtype=torch.float32)
    half = torch.tensor((high - low) / 2, dtype=torch.float32)

    for w in ws:
        for k in ks:

            @torch.no_grad()
            def mode(obs, k=k, w=w):
                return center + half * mode_on_grid(lambda o, a: model.score(o, a, w=w, k=k), obs)

            rets = [run_episodes(mode, task_pool(task), range(100 + s, 120 + s)).return_mean for s in SEEDS]
            print(f"mode of p(a | s, w={w:g}) at diffusion step k={k}: return {mean_se(rets)}", flush=True)

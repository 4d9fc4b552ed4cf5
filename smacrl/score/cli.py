"""``smacrl score train`` and ``smacrl score eval``: fit the dataset score model, and roll it out as a policy."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from smacrl.cli import _config_from_cli, _no_extra, _print_help_with_config, _wants_help, add_command
from smacrl.errors import DatasetError, SmacrlError


def _load_dataset(source: str, task: str | None = None):
    try:
        from smacrl.data import load_dataset
    except ImportError as e:
        raise SmacrlError(source, "dataset", f"the data package cannot load datasets here ({e})") from e
    return load_dataset(source, task)


def _dataset_return_mean(ds) -> float | None:
    try:
        return float(ds.episode_returns().mean())
    except (AttributeError, TypeError, ValueError):
        return None


def cmd_train(args: argparse.Namespace, rest: list[str]) -> int:
    """Train the RvS-conditioned diffusion model of a dataset's actions and write its checkpoint."""
    import numpy as np
    import torch

    from smacrl.run import RunDir
    from smacrl.runtime import resolve_device, seed_everything
    from smacrl.score.train import train_score_model

    prog = "smacrl score train"
    if _wants_help(args, rest):
        return _print_help_with_config(args.parser, "score", args.preset, prog)
    if not args.dataset or not args.out:
        args.parser.error("--dataset and --out are required")
    cfg = _config_from_cli("score", args.preset, rest, prog)
    cfg = dataclasses.replace(cfg, out=str(args.out))
    generator = seed_everything(cfg.seed)
    device = resolve_device(cfg.device)

    ds = _load_dataset(args.dataset, args.task)
    obs = np.asarray(ds.observations, dtype=np.float32)
    actions = np.asarray(ds.actions, dtype=np.float32)
    w = np.asarray(ds.w, dtype=np.float32).reshape(-1)
    if obs.ndim != 2 or actions.ndim != 2 or not (len(obs) == len(actions) == len(w)) or len(obs) == 0:
        raise DatasetError(args.dataset, "shape", "observations, actions and w must be non-empty with equal length")
    if np.abs(actions).max() > 1.0 + 1e-5:
        raise DatasetError(args.dataset, "actions", "are not normalized to [-1, 1]")
    if cfg.rvs and (w.min() < -1e-6 or w.max() > 1 + 1e-6):
        raise DatasetError(args.dataset, "w", f"must lie in [0, 1], got [{w.min():.3g}, {w.max():.3g}]")

    info = {
        "dataset": str(args.dataset),
        "task": getattr(ds, "task", None),
        "action_low": np.asarray(ds.action_low, dtype=np.float64).tolist(),
        "action_high": np.asarray(ds.action_high, dtype=np.float64).tolist(),
        "dataset_size": len(obs),
        "dataset_return_mean": _dataset_return_mean(ds),
    }
    RunDir(args.out).save_config("score", cfg, preset=args.preset, dataset_sha256=ds.sha256, **info)
    # Minibatch indices use the device's default generator (seeded above); a CPU generator would not
    # be usable with CUDA tensors.
    result = train_score_model(
        torch.from_numpy(obs),
        torch.from_numpy(actions),
        torch.from_numpy(w),
        cfg,
        device=device,
        out_dir=args.out,
        dataset_sha256=ds.sha256,
        obs_mean=torch.as_tensor(np.asarray(ds.obs_mean, dtype=np.float32)),
        obs_std=torch.as_tensor(np.asarray(ds.obs_std, dtype=np.float32)),
        progress=cfg.progress,
        generator=generator if device.type == "cpu" else None,
        info={**info, "preset": args.preset},
    )
    n_params = sum(p.numel() for p in result.model.parameters())
    print(
        f"wrote {result.checkpoint} ({n_params:,} parameters, {result.steps} steps at "
        f"{result.steps_per_second:.0f} steps/s on {device}, rvs={cfg.rvs}, dataset {ds.sha256[:12]})"
    )
    _report_fit(Path(args.out), info, cfg, result, device)
    return 0


def _report_fit(out: Path, info: dict, cfg, result, device) -> None:
    """End of ``score train``: the held-out denoising loss, then the model rolled out as a diffusion-BC
    policy (``score eval``) beside the data's mean return, so a weak score model shows before SMAC uses it."""
    from smacrl.logger import MetricLogger, read_metrics

    held = [r["score/heldout_loss"] for r in read_metrics(out / "metrics.jsonl") if "score/heldout_loss" in r]
    if held:
        print(f"held-out denoising loss {held[-1]:.4f} (first logged {held[0]:.4f}; 1.0 is an untrained model)")
    task = info.get("task")
    if not task or cfg.eval_episodes <= 0:
        why = "no task is known for this dataset" if not task else "--eval-episodes 0"
        print(f"diffusion-BC return not measured ({why}); `smacrl score eval --model {out} --task T` measures it")
        return
    bounds = (info["action_low"], info["action_high"])  # the dataset's, which its loader checked against the task
    metrics, line = evaluate_score_model(
        result.model, task, bounds, cfg.eval_episodes, cfg.seed, info, progress=cfg.progress
    )
    with MetricLogger(out) as log:
        log.log(result.steps, metrics)
    print(line)


def evaluate_score_model(model, task: str, bounds, episodes: int, seed: int, info: dict, w=None, progress: bool = True):
    """Roll out ``model`` as a diffusion-BC policy at condition ``w`` on ``task``'s env, whose action box
    is ``bounds = (low, high)`` and whose dims the caller has checked against the model. Returns
    ``(metrics with eval/score_bc_* keys, a one-line summary)``."""
    from smacrl.data.tasks import env_factory
    from smacrl.eval.rollout import evaluate
    from smacrl.logger import progress as progress_bar
    from smacrl.score.model import DiffusionPolicy

    low, high = bounds
    w = model.default_w if w is None else float(w)
    policy = DiffusionPolicy(model, low, high, w=w).to(next(model.parameters()).device)
    with progress_bar(episodes, f"score eval {task}", enabled=progress) as bar:
        result = evaluate(policy, episodes=episodes, seed=seed, make_env=env_factory(task), on_episode=bar.update)
    metrics = {k.replace("eval/", "eval/score_bc_"): v for k, v in result.metrics("eval").items()}
    ref = info.get("dataset_return_mean")
    vs = f" (dataset mean return {ref:.2f})" if isinstance(ref, int | float) else ""
    line = (
        f"diffusion-BC policy (w={w:g}) on {task}: return {result.return_mean:.2f} ± {result.return_std:.2f} over "
        f"{episodes} episodes{vs}, success rate {result.successes.mean():.2f}"
    )
    return metrics, line


def cmd_eval(args: argparse.Namespace, rest: list[str]) -> int:
    """Roll out the diffusion model as a policy (w fixed, default the checkpoint's rvs_w) and report its return."""
    from smacrl.data.tasks import env_dims, make_env
    from smacrl.logger import MetricLogger
    from smacrl.runtime import resolve_device, seed_everything
    from smacrl.score.checkpoint import load_score_checkpoint, read_score_metadata, resolve_score_path

    _no_extra(rest, args.parser)
    path = resolve_score_path(args.model)
    meta = read_score_metadata(path)
    info = meta.get("info") or {}
    task = args.task or info.get("task")
    if not task:
        raise SmacrlError(path, "info.task", "score model names no task; pass --task")
    seed_everything(args.seed)
    env = make_env(task)
    obs_dim, low, high = env_dims(env)
    env.close()
    # the dims are checked here so that a mismatch names the checkpoint file and field
    ckpt = load_score_checkpoint(path, device=resolve_device(args.device), obs_dim=obs_dim, act_dim=len(low))
    metrics, line = evaluate_score_model(
        ckpt.model, task, (low, high), args.episodes, args.seed, info, w=args.w, progress=not args.no_progress
    )
    if args.out:
        with MetricLogger(args.out) as log:
            log.log(ckpt.step, metrics)
    if args.json:
        w = ckpt.model.default_w if args.w is None else float(args.w)
        ref = info.get("dataset_return_mean")
        print(
            json.dumps(
                {"model": str(path), "step": ckpt.step, "task": task, "w": w, "dataset_return_mean": ref, **metrics}
            )
        )
    else:
        print(f"{path} (step {ckpt.step}): {line}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from smacrl.configs import PRESET_NAMES

    top = add_command(subparsers, "score", lambda a, r: (a.parser.print_help(), 2)[1], "the dataset score model")
    sub = top.add_subparsers(dest="score_command", metavar="COMMAND", required=True)

    p = add_command(
        sub,
        "train",
        cmd_train,
        "train the RvS diffusion model of a dataset's actions (any ScoreConfig field is a flag)",
        add_help=False,
    )
    p.add_argument("--dataset", help="dataset file or registered task name")
    p.add_argument("--task", default=None, help="the task the data belong to, when the file does not say")
    p.add_argument("--out", type=Path, help="output directory (score.safetensors, config.json, metrics.jsonl)")
    p.add_argument("--preset", default="locomotion", choices=PRESET_NAMES)

    p = add_command(sub, "eval", cmd_eval, "roll out the diffusion model as a policy and report its return")
    p.add_argument("--model", required=True, help="score.safetensors or the directory holding it")
    p.add_argument("--task", default=None, help="task or gymnasium env id (default: the model's dataset task)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--w", type=float, default=None, help="RvS condition (default: the checkpoint's rvs_w, 1.0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="directory whose metrics.jsonl receives the eval metrics")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.add_argument("--no-progress", action="store_true")

"""``smacrl pretrain``: offline pre-training of the common actor-critic."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from smacrl.cli import _config_from_cli, _print_help_with_config, _wants_help, add_command
from smacrl.configs import PRESET_NAMES


def _smac_factory(args: argparse.Namespace, preset: str):
    def factory(ac, cfg, dataset):
        import torch

        from smacrl.offline.smac import SMAC, make_score_fn
        from smacrl.score import load_score_model
        from smacrl.score.cache import ensure_score_model

        if cfg.score_free:
            return SMAC(ac, cfg, None)
        device = next(ac.parameters()).device
        # Loading and training draw from torch's global RNG in different amounts; isolating them keeps
        # the learner's own initialisation (alpha_psi) the same whether the score model was cached or not.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if args.score:
                model = load_score_model(args.score, device=device, obs_dim=dataset.obs_dim, act_dim=dataset.act_dim)
            else:
                model, _ = ensure_score_model(
                    dataset,
                    preset,
                    rvs=cfg.rvs,
                    seed=cfg.seed,
                    device=device,
                    progress=cfg.progress,
                    steps=args.score_steps,
                )

        return SMAC(ac, cfg, make_score_fn(model, cfg))

    return factory


def _iql_factory(args: argparse.Namespace, preset: str):
    def factory(ac, cfg, dataset):
        from smacrl.offline.iql import IQL

        return IQL(ac, cfg)

    return factory


def _cql_factory(args: argparse.Namespace, preset: str):
    """CQL and Cal-QL: one learner; ``cfg.calibrated`` (set by the calql presets) switches."""

    def factory(ac, cfg, dataset):
        from smacrl.offline.cql import CQL

        return CQL(ac, cfg, name=args.algo)

    return factory


def _td3bc_factory(args: argparse.Namespace, preset: str):
    def factory(ac, cfg, dataset):
        from smacrl.offline.td3bc import TD3BC

        return TD3BC(ac, cfg)

    return factory


LEARNERS = {
    "smac": _smac_factory,
    "iql": _iql_factory,
    "cql": _cql_factory,
    "calql": _cql_factory,
    "td3bc": _td3bc_factory,
}


def _calql_fallback(algo: str, cfg, dataset) -> tuple[object, dict[str, str]]:
    """Cal-QL needs Monte-Carlo returns; a dataset of truncated infinite-horizon episodes has none, and
    then CQL runs instead (the paper's N.3). Returns the config to run and what the checkpoint records."""
    if algo not in ("cql", "calql"):
        return cfg, {}
    if cfg.calibrated and dataset.mc_returns is None:
        print(f"{algo}: the dataset has no Monte-Carlo returns (truncated episodes); running CQL instead of Cal-QL")
        cfg = dataclasses.replace(cfg, calibrated=False)
    return cfg, {"ran": "calql" if cfg.calibrated else "cql"}


def cmd_pretrain(args: argparse.Namespace, rest: list[str]) -> int:
    """Pre-train an actor-critic offline and write the common checkpoint."""
    from smacrl.data import load_dataset
    from smacrl.offline.train import pretrain
    from smacrl.run import default_run_name

    prog = "smacrl pretrain"
    if _wants_help(args, rest):
        return _print_help_with_config(args.parser, args.algo, args.preset or "cpu", prog)
    if not args.dataset:
        args.parser.error("the following arguments are required: --dataset")
    dataset = load_dataset(args.dataset)
    preset = args.preset or _family_preset(dataset)
    cfg = _config_from_cli(args.algo, preset, rest, prog)
    name = default_run_name(args.algo, dataset.task or Path(args.dataset).stem, cfg.seed)
    out = Path(cfg.out) if cfg.out else Path("runs") / name
    cfg = dataclasses.replace(cfg, out=str(out))
    cfg, info = _calql_fallback(args.algo, cfg, dataset)
    path = pretrain(args.algo, LEARNERS[args.algo](args, preset), dataset, cfg, out, preset=preset, info=info)
    print(f"wrote {path}")
    return 0


def _family_preset(dataset) -> str:
    from smacrl.data.tasks import get_task

    try:
        return get_task(dataset.task).family if dataset.task else "cpu"
    except Exception:
        return "cpu"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "pretrain", cmd_pretrain, "pre-train an actor-critic offline", add_help=False)
    p.add_argument("--algo", default="smac", choices=sorted(LEARNERS))
    p.add_argument("--dataset", help="dataset file, Minari folder, or task name (required)")
    p.add_argument("--preset", default=None, choices=PRESET_NAMES, help="default: the task's family, else cpu")
    p.add_argument("--score", default=None, help="SMAC: score model checkpoint (default: train or reuse by hash)")
    p.add_argument("--score-steps", type=int, default=None, help="SMAC: steps when the score model is trained here")

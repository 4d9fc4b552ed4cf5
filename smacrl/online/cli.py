"""``smacrl finetune``: fine-tune any offline checkpoint online (SAC, TD3, TD3+BC, AWR)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from smacrl import registry
from smacrl.cli import _config_from_cli, _print_help_with_config, _wants_help, add_command
from smacrl.configs import PRESET_NAMES


def _preset_for(meta: dict, task: str | None) -> str:
    from smacrl.data.tasks import task_preset

    return (meta.get("info") or {}).get("preset") or task_preset(task)


def _offline_algo(meta: dict) -> str | None:
    """The registered offline algorithm behind a checkpoint (its online values apply), if any: a
    fine-tuned checkpoint names the offline one it started from; an untrained one (``init``) none."""
    name = (meta.get("info") or {}).get("offline_algo") or meta["algo"]
    return name if name in registry.names("offline") else None


def cmd_finetune(args: argparse.Namespace, rest: list[str]) -> int:
    """Fine-tune a checkpoint online with the paper's protocol (warm start, 50/50 batches)."""
    from smacrl.checkpoint import read_metadata
    from smacrl.data import load_dataset
    from smacrl.online.loop import finetune
    from smacrl.run import default_run_name, resolve_checkpoint

    prog = "smacrl finetune"
    algo = args.algo
    if _wants_help(args, rest):
        return _print_help_with_config(args.parser, algo, args.preset or "cpu", prog, phase="online")
    if not args.checkpoint:
        args.parser.error("the following arguments are required: --checkpoint")
    path = resolve_checkpoint(args.checkpoint)
    meta = read_metadata(path)
    task = args.task or meta.get("env_id")
    preset = args.preset or _preset_for(meta, task)
    cfg = _config_from_cli(algo, preset, rest, prog, offline_algo=_offline_algo(meta), phase="online")
    source = args.dataset or (meta.get("info") or {}).get("dataset")
    dataset = None
    if source and source != "none" and (cfg.dataset_fraction > 0 or getattr(cfg, "score_matching_kappa", 0) > 0):
        dataset = load_dataset(source)
    name = default_run_name(f"{meta['algo']}-{args.algo}", task or "task", cfg.seed)
    out = Path(cfg.out) if cfg.out else Path("runs") / name
    cfg = dataclasses.replace(cfg, out=str(out))
    final = finetune(algo, path, cfg, out, task=task, dataset=dataset, preset=preset)
    print(f"wrote {final}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "finetune", cmd_finetune, "fine-tune a checkpoint online", add_help=False)
    p.add_argument("--algo", default="sac", choices=registry.names("online"))
    p.add_argument("--checkpoint", help="checkpoint file or run directory (its latest checkpoint); required")
    p.add_argument("--task", default=None, help="task or gym id (default: the checkpoint's)")
    p.add_argument(
        "--dataset", default=None, help="offline data for the 50/50 batches (default: the checkpoint's; 'none')"
    )
    p.add_argument("--preset", default=None, choices=PRESET_NAMES, help="default: the checkpoint's preset")

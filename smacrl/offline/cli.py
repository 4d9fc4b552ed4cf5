"""``smacrl pretrain``: offline pre-training of the common actor-critic."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from smacrl import registry
from smacrl.cli import _config_from_cli, _print_help_with_config, _wants_help, add_command
from smacrl.configs import PRESET_NAMES


def cmd_pretrain(args: argparse.Namespace, rest: list[str]) -> int:
    """Pre-train an actor-critic offline and write the common checkpoint."""
    from smacrl.data import load_dataset
    from smacrl.data.tasks import task_preset
    from smacrl.offline.train import pretrain
    from smacrl.run import default_run_name

    prog = "smacrl pretrain"
    if _wants_help(args, rest):
        return _print_help_with_config(args.parser, args.algo, args.preset or "cpu", prog)
    if not args.dataset:
        args.parser.error("the following arguments are required: --dataset")
    dataset = load_dataset(args.dataset, args.task)
    preset = args.preset or task_preset(dataset.task)
    cfg = _config_from_cli(args.algo, preset, rest, prog)
    name = default_run_name(args.algo, dataset.task or Path(args.dataset).stem, cfg.seed)
    out = Path(cfg.out) if cfg.out else Path("runs") / name
    cfg = dataclasses.replace(cfg, out=str(out))
    path = pretrain(args.algo, dataset, cfg, out, preset=preset)
    print(f"wrote {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "pretrain", cmd_pretrain, "pre-train an actor-critic offline", add_help=False)
    p.add_argument("--algo", default="smac", choices=registry.names("offline"))
    p.add_argument("--dataset", help="dataset file, Minari folder, or task name (required)")
    p.add_argument("--task", default=None, help="the task the data belong to, when the file does not say")
    p.add_argument("--preset", default=None, choices=PRESET_NAMES, help="default: the task's family, else cpu")

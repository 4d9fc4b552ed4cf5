"""The ``smacrl`` command line.

Each subcommand takes a few fixed flags (``--algo``, ``--preset``, ...) and passes every other
``--field value`` to the algorithm's typed config, so any config field can be overridden. Errors in
user input print one line (``smacrl: error: FILE: FIELD: problem``) and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from smacrl.errors import SmacrlError

Handler = Callable[[argparse.Namespace, list[str]], int]


# ----------------------------------------------------------------------------- helpers
def _config_from_cli(
    algo: str, preset: str, rest: list[str], prog: str, offline_algo: str | None = None, phase: str | None = None
):
    from smacrl.configs import make_config, parse_overrides

    cfg = make_config(algo, preset, offline_algo=offline_algo, phase=phase)
    return parse_overrides(cfg, rest, prog=prog)


def _wants_help(args: argparse.Namespace, rest: Sequence[str]) -> bool:
    return bool(getattr(args, "help", False)) or any(a in ("-h", "--help") for a in rest)


def _print_help_with_config(
    parser: argparse.ArgumentParser, algo: str, preset: str, prog: str, phase: str | None = None
) -> int:
    from smacrl.configs import make_config, parse_overrides

    parser.print_help()
    print(f"\nConfig fields of '{algo}' with preset '{preset}' (each is a --flag):\n")
    sys.stdout.flush()
    try:
        parse_overrides(make_config(algo, preset, phase=phase), ["--help"], prog=prog)
    except SystemExit:
        pass
    return 0


def _no_extra(rest: list[str], parser: argparse.ArgumentParser) -> None:
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")


# ----------------------------------------------------------------------------- commands
def cmd_config(args: argparse.Namespace, rest: list[str]) -> int:
    """Print a fully resolved config as JSON."""
    from smacrl.configs import config_to_dict

    if _wants_help(args, rest):
        return _print_help_with_config(args.parser, args.algo, args.preset, "smacrl config", args.phase)
    cfg = _config_from_cli(args.algo, args.preset, rest, "smacrl config", args.offline_algo, args.phase)
    print(json.dumps({"algo": args.algo, "preset": args.preset, "config": config_to_dict(cfg)}, indent=2))
    return 0


def cmd_init(args: argparse.Namespace, rest: list[str]) -> int:
    """Build an untrained actor-critic for an env and write it as a run's step-0 checkpoint."""
    import torch

    from smacrl.configs import config_to_dict
    from smacrl.data.tasks import env_dims, make_env
    from smacrl.nets import ActorCritic, ActorCriticSpec
    from smacrl.run import RunDir, default_run_name
    from smacrl.runtime import resolve_device, seed_everything

    if _wants_help(args, rest):
        return _print_help_with_config(args.parser, args.algo, args.preset, "smacrl init")
    if not args.env:
        args.parser.error("the following arguments are required: --env")
    cfg = _config_from_cli(args.algo, args.preset, rest, "smacrl init")
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    env = make_env(args.env)
    obs_dim, low, high = env_dims(env)
    env.close()
    spec = ActorCriticSpec.from_config(cfg, obs_dim, low, high)
    ac = ActorCritic(spec).to(device)
    run = RunDir(cfg.out or Path("runs") / default_run_name("init", args.env, cfg.seed)).create()
    run.save_config(args.algo, cfg, preset=args.preset, env_id=args.env)
    path = run.save_checkpoint(
        ac,
        0,
        algo="init",
        config=config_to_dict(cfg),
        env_id=args.env,
        keep=cfg.keep_checkpoints,
        info={"nets_from": args.algo, "preset": args.preset},
    )
    n_params = sum(p.numel() for p in ac.parameters())
    print(
        f"wrote {path} ({n_params:,} parameters, obs_dim={obs_dim}, act_dim={spec.act_dim}, "
        f"device={device}, torch {torch.__version__})"
    )
    return 0


def cmd_eval(args: argparse.Namespace, rest: list[str]) -> int:
    """Evaluate a checkpoint's deterministic policy on vectorized envs."""
    from smacrl.checkpoint import load_checkpoint, read_metadata
    from smacrl.data.tasks import env_dims, make_env
    from smacrl.eval.rollout import evaluate
    from smacrl.logger import MetricLogger, progress
    from smacrl.run import resolve_checkpoint
    from smacrl.runtime import resolve_device, seed_everything

    _no_extra(rest, args.parser)
    path = resolve_checkpoint(args.checkpoint)
    meta = read_metadata(path)
    env_id = args.env or meta.get("env_id")
    if not env_id:
        raise SmacrlError(path, "env_id", "checkpoint names no env; pass --env")
    seed_everything(args.seed)
    env = make_env(env_id)
    obs_dim, low, _ = env_dims(env)
    env.close()
    ckpt = load_checkpoint(path, device=resolve_device(args.device), obs_dim=obs_dim, act_dim=len(low))
    with progress(args.episodes, f"eval {env_id}", enabled=not args.no_progress) as bar:
        result = evaluate(ckpt.actor_critic, env_id, args.episodes, args.seed, on_episode=bar.update)
    metrics = result.metrics("eval")
    if args.out:
        with MetricLogger(args.out) as log:
            log.log(ckpt.step, metrics)
    if args.json:
        print(json.dumps({"checkpoint": str(path), "step": ckpt.step, "env_id": env_id, **metrics}))
    else:
        print(
            f"{path} (step {ckpt.step}) on {env_id}: return {result.return_mean:.2f} ± "
            f"{result.return_std:.2f} over {args.episodes} episodes, mean length "
            f"{metrics['eval/length_mean']:.0f}"
        )
    return 0


def cmd_ckpt_info(args: argparse.Namespace, rest: list[str]) -> int:
    """Print a checkpoint's metadata (no network is built, nothing is unpickled)."""
    from smacrl.checkpoint import load_checkpoint
    from smacrl.run import resolve_checkpoint

    _no_extra(rest, args.parser)
    ckpt = load_checkpoint(resolve_checkpoint(args.path))  # full validation, hash included
    meta = dict(ckpt.meta)
    if not args.full:
        meta.pop("obs_norm", None)
        meta.pop("optimizers", None)
    print(json.dumps(meta, indent=2, sort_keys=True))
    return 0


# ----------------------------------------------------------------------------- parser
# Modules that add subcommands: each defines ``register(subparsers)`` and calls :func:`add_command`.
COMMAND_MODULES: tuple[str, ...] = (
    "smacrl.data.cli",
    "smacrl.score.cli",
    "smacrl.offline.cli",
    "smacrl.online.cli",
    "smacrl.eval.cli",
    "smacrl.eval.diagnose",
    "smacrl.eval.landscape_cli",
    "smacrl.pipeline",
    "smacrl.demo",
    "smacrl.bench",
    "smacrl.sweep.cli",
)


def add_command(
    subparsers: argparse._SubParsersAction, name: str, handler: Handler, help_: str, add_help: bool = True
) -> argparse.ArgumentParser:
    """Add a subcommand whose ``handler(args, rest)`` returns an exit code; ``rest`` holds the
    arguments argparse did not recognise (config overrides, for commands that take them)."""
    p = subparsers.add_parser(name, help=help_, description=help_, add_help=add_help)
    p.set_defaults(handler=handler, parser=p)
    if not add_help:  # the handler prints argparse's help and then the config's (tyro) help
        p.add_argument("-h", "--help", action="store_true", help="show this help message and exit")
    return p


def build_parser() -> argparse.ArgumentParser:
    from smacrl import __version__, registry
    from smacrl.configs import PRESET_NAMES

    parser = argparse.ArgumentParser(
        prog="smacrl",
        description="Offline-to-online RL with SMAC (Score-Matched Actor-Critic).",
        epilog="Config fields of any algorithm are flags too: e.g. `smacrl config --algo smac --kappa 10`.",
    )
    parser.add_argument("--version", action="version", version=f"smacrl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, handler: Handler, help_: str, sub_=sub, add_help: bool = True) -> argparse.ArgumentParser:
        return add_command(sub_, name, handler, help_, add_help)

    p = add("config", cmd_config, "print a resolved config (any field can be overridden)", add_help=False)
    p.add_argument("--algo", default="smac", choices=registry.names())
    p.add_argument("--preset", default="locomotion", choices=PRESET_NAMES)
    p.add_argument(
        "--phase",
        default=None,
        choices=registry.PHASES,
        help="for a name in two phases (td3bc): which one (default: offline, or online with --offline-algo)",
    )
    p.add_argument(
        "--offline-algo",
        default=None,
        choices=registry.names("offline"),
        help="for online algorithms: the offline algorithm whose online values apply",
    )

    p = add("init", cmd_init, "write an untrained actor-critic checkpoint for an env", add_help=False)
    p.add_argument("--env", help="gymnasium env id, e.g. Pendulum-v1 (required)")
    p.add_argument("--algo", default="smac", choices=registry.names("offline"), help="whose network shapes to use")
    p.add_argument("--preset", default="cpu", choices=PRESET_NAMES)

    p = add("eval", cmd_eval, "evaluate a checkpoint's deterministic policy")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run directory")
    p.add_argument("--env", default=None, help="env id (default: the one recorded in the checkpoint)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="run directory whose metrics.jsonl receives eval/ metrics")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.add_argument("--no-progress", action="store_true")

    ck = add("ckpt", lambda a, r: (a.parser.print_help(), 2)[1], "inspect checkpoints")
    cksub = ck.add_subparsers(dest="ckpt_command", metavar="COMMAND", required=True)
    p = add("info", cmd_ckpt_info, "validate a checkpoint and print its metadata", sub_=cksub)
    p.add_argument("path", help="checkpoint file or run directory")
    p.add_argument("--full", action="store_true", help="include normalizer stats and optimizer groups")

    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    from smacrl.runtime import tune_allocator

    tune_allocator()  # fewer page faults in the update loops; SMACRL_MALLOC_TUNING=0 turns it off
    try:
        return int(args.handler(args, rest) or 0)
    except SmacrlError as e:
        print(f"smacrl: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("smacrl: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        if e.filename is None:
            raise
        # e.g. a failed write (disk full, quota): writes are atomic, so the file it replaces, and a run's
        # `latest`, are intact
        print(f"smacrl: error: {e.filename}: {e.strerror}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

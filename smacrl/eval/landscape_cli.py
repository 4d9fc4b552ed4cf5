"""``smacrl landscape line|plane|tsne``: reward landscapes over actor parameters (see
:mod:`smacrl.eval.landscape` for the parametrizations)."""

from __future__ import annotations

import argparse

from smacrl.cli import add_command


def _settings(args: argparse.Namespace):
    from smacrl.eval.landscape import EvalSettings

    return EvalSettings(
        episodes=args.episodes,
        seed=args.seed,
        max_envs=args.max_envs,
        workers=args.workers,
        progress=not args.no_progress,
    )


def cmd_line(args: argparse.Namespace, rest: list[str]) -> int:
    """Reward along theta(t) = (1 - t) theta_A + t theta_B (figure 4)."""
    from smacrl.cli import _no_extra
    from smacrl.errors import SmacrlError
    from smacrl.eval.landscape import line_landscape

    _no_extra(rest, args.parser)
    if len(args.frm) != len(args.to):
        raise SmacrlError("--from/--to", "count", f"got {len(args.frm)} --from and {len(args.to)} --to; pair them")
    summary = line_landscape(
        list(zip(args.frm, args.to)), args.out, points=args.points, env=args.env, settings=_settings(args)
    )
    for label, g in summary["groups"].items():
        mean = g["mean"]
        print(
            f"{label} ({g['pairs']} pair{'s' * (g['pairs'] > 1)}): t=0 {mean[0]:.1f}  min {min(mean):.1f}  "
            f"t=1 {mean[-1]:.1f}"
        )
    print(f"wrote {args.out}/line.png, line.json")
    return 0


def cmd_plane(args: argparse.Namespace, rest: list[str]) -> int:
    """Reward on the plane through three checkpoints (figure 3, appendix M)."""
    from smacrl.cli import _no_extra
    from smacrl.eval.landscape import plane_landscape

    _no_extra(rest, args.parser)
    summary = plane_landscape(
        args.base,
        args.a,
        args.b,
        args.out,
        grid=args.grid,
        lo=args.range[0],
        hi=args.range[1],
        env=args.env,
        settings=_settings(args),
        labels=args.labels,
    )
    for c in summary["checkpoints"]:
        x, y = c["coords"]
        print(f"{c['name']}: ({x:.4g}, {y:.4g}) return {c['return_mean']:.1f}")
    print(f"wrote {args.out}/plane.png, plane.json")
    return 0


def cmd_tsne(args: argparse.Namespace, rest: list[str]) -> int:
    """t-SNE of the runs' checkpoint trajectories, coloured by return (figure 5)."""
    from smacrl.cli import _no_extra
    from smacrl.eval.landscape import tsne_landscape

    _no_extra(rest, args.parser)
    summary = tsne_landscape(
        args.runs,
        args.out,
        env=args.env,
        settings=_settings(args),
        perplexity=args.perplexity,
        include_parents=not args.no_parents,
    )
    runs = dict.fromkeys(r["label"] for r in summary["points"])
    print(f"{len(summary['points'])} snapshots from {len(runs)} runs ({', '.join(runs)})")
    print(f"wrote {args.out}/tsne.png, tsne.json")
    return 0


def _common(p: argparse.ArgumentParser, episodes: int) -> None:
    p.add_argument("--episodes", type=int, default=episodes, help="episodes per point (seeds SEED, SEED+1, ...)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--env", default=None, help="task or gym id (default: the checkpoints')")
    p.add_argument("--max-envs", type=int, default=64, help="sub-envs per vector env (points x episodes)")
    p.add_argument("--workers", type=int, default=1, help="processes evaluating chunks of points in parallel")
    p.add_argument("--out", required=True, help="output folder (plots, JSON, and the evaluation cache)")
    p.add_argument("--no-progress", action="store_true")


def register(subparsers: argparse._SubParsersAction) -> None:
    top = add_command(subparsers, "landscape", lambda a, r: (a.parser.print_help(), 2)[1], "reward landscapes")
    sub = top.add_subparsers(dest="landscape_command", metavar="COMMAND", required=True)

    p = add_command(sub, "line", cmd_line, "reward along the line between checkpoint pairs (figure 4)")
    p.add_argument("--from", dest="frm", action="append", required=True, help="pre-trained checkpoint (repeatable)")
    p.add_argument("--to", action="append", required=True, help="fine-tuned checkpoint, paired with --from in order")
    p.add_argument("--points", type=int, default=11, help="values of t in [0, 1]")
    _common(p, episodes=5)

    p = add_command(sub, "plane", cmd_plane, "reward on the plane through three checkpoints (figure 3)")
    p.add_argument("--base", required=True, help="theta: the pre-trained checkpoint (origin)")
    p.add_argument("--a", required=True, help="theta_1, e.g. SAC fine-tuned (sets the x axis)")
    p.add_argument("--b", required=True, help="theta_2, e.g. TD3+BC fine-tuned")
    p.add_argument("--grid", type=int, default=15, help="points per axis")
    p.add_argument(
        "--range",
        type=float,
        nargs=2,
        default=(-0.2, 1.2),
        metavar=("LO", "HI"),
        help="grid extent as fractions of the three checkpoints' bounding box",
    )
    p.add_argument("--labels", nargs=3, default=None, metavar=("BASE", "A", "B"), help="names on the plot")
    _common(p, episodes=5)

    p = add_command(sub, "tsne", cmd_tsne, "t-SNE of checkpoint trajectories coloured by return (figure 5)")
    p.add_argument("runs", nargs="+", help="run directories with trajectory/ snapshots")
    p.add_argument("--perplexity", type=float, default=30.0, help="capped at (snapshots - 1) / 3")
    p.add_argument("--no-parents", action="store_true", help="do not add the offline runs online runs started from")
    _common(p, episodes=3)

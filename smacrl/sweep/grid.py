"""A sweep's grid and the stage graph it expands into.

A grid is tasks x offline algorithms x online algorithms x seeds, each cell one offline-to-online run.
Cells share work, so the sweep runs *stages*, each exactly once however many cells need it:

- ``data:<task>``: the task's dataset (generated into the sweep's data cache, or found there);
- ``score:<task>``: SMAC's score model of that dataset (only when the grid has SMAC);
- ``offline:<task>/<algo>-s<seed>``: one pre-training per task x offline algorithm x seed;
- ``online:<task>/<algo>-s<seed>/<online>``: one fine-tuning per online algorithm, all starting from
  that offline checkpoint.

Algorithm names come from :mod:`smacrl.registry`, so a newly registered algorithm is sweepable as is.
Each stage runs the same ``smacrl`` commands a user would type (``data make``, ``pretrain``,
``finetune``), so a sweep's run directories are the ones a by-hand run makes, and each stage resumes
from its own last checkpoint when it is started again.
"""

from __future__ import annotations

import dataclasses
import shlex
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smacrl import registry
from smacrl.configs import PRESET_NAMES
from smacrl.errors import ConfigError

LAYOUT = """\
OUT/
  sweep.json                      the grid, as resolved
  stages.jsonl                    one line per stage run: id, status, seconds (appended by the workers)
  summary.md                      the closing summary: stages done, skipped, failed (with the error)
  cache/datasets/ cache/score/    the datasets and score models the stages share
  runs/<task>/<offline>-s<seed>/offline/            each offline run (config, metrics, checkpoints)
  runs/<task>/<offline>-s<seed>/online-<online>/    each fine-tuning from it
  logs/<stage>.log                each stage's own output
  report/                         `smacrl report OUT/runs` at the end: tables, curves, rliable intervals
"""


@dataclasses.dataclass(frozen=True)
class Grid:
    tasks: tuple[str, ...]
    offline: tuple[str, ...]
    online: tuple[str, ...]
    seeds: tuple[int, ...]
    preset: str | None = None
    """None: each task's family, as ``smacrl run`` picks it."""
    offline_args: tuple[str, ...] = ()
    """Config overrides for every pre-training (``--steps 1000`` ...)."""
    online_args: tuple[str, ...] = ()
    """Config overrides for every fine-tuning."""
    algo_args: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    """Per-algorithm overrides, keyed ``offline.<algo>`` or ``online.<algo>``."""
    data_steps: int | None = None
    """Env steps of a generated dataset (None: the generator's own protocol)."""
    score_steps: int | None = None
    """Training steps of the score model (None: the preset's)."""
    datasets: dict[str, str] = dataclasses.field(default_factory=dict)
    """Task -> a data file or Minari folder the user brings (the paper's original files); other tasks'
    data are generated into the sweep's cache."""

    def __post_init__(self) -> None:
        for field, values in (("tasks", self.tasks), ("offline", self.offline), ("online", self.online)):
            if not values:
                raise ConfigError("grid", field, "is empty")
        for name in self.offline:
            registry.get(name, "offline", source="grid: offline")
        for name in self.online:
            registry.get(name, "online", source="grid: online")
        if self.preset is not None and self.preset not in PRESET_NAMES:
            raise ConfigError("grid", "preset", f"unknown preset '{self.preset}' (one of {', '.join(PRESET_NAMES)})")
        if not self.seeds:
            raise ConfigError("grid", "seeds", "is empty")

    @property
    def cells(self) -> list[tuple[str, str, str, int]]:
        return [(t, o, n, s) for t in self.tasks for o in self.offline for n in self.online for s in self.seeds]

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_toml(cls, path: str | Path) -> Grid:
        """A grid file: ``tasks``, ``offline``, ``online``, ``seeds`` (lists), optional ``preset``,
        ``offline_args`` / ``online_args`` (lists of flags), ``data_steps``, ``score_steps``, and tables
        ``[args.offline]`` / ``[args.online]`` mapping an algorithm to its own flags."""
        p = Path(path)
        try:
            doc = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(p, "file", "does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(p, "toml", str(e)) from None
        known = {f.name for f in dataclasses.fields(cls)} - {"algo_args"} | {"args"}
        for key in doc:
            if key not in known:
                raise ConfigError(p, key, f"not a grid field (one of {', '.join(sorted(known))})")
        per_algo = {
            f"{phase}.{name}": tuple(map(str, flags))
            for phase, table in (doc.get("args") or {}).items()
            for name, flags in table.items()
        }
        values = {k: v for k, v in doc.items() if k != "args"}
        for key in ("tasks", "offline", "online", "seeds", "offline_args", "online_args"):
            if key in values:
                values[key] = tuple(values[key])
        try:
            return cls(**values, algo_args=per_algo)
        except TypeError as e:
            raise ConfigError(p, "grid", str(e)) from None


def split_args(text: str | None) -> tuple[str, ...]:
    """``"--steps 100 --eval-every 0"`` -> a flag tuple (shell quoting rules)."""
    return tuple(shlex.split(text)) if text else ()


@dataclasses.dataclass(frozen=True)
class Stage:
    id: str
    kind: str
    """data, score, offline or online."""
    argv: tuple[str, ...]
    """The ``smacrl`` command the stage runs (data and score stages name their task instead)."""
    deps: tuple[str, ...]
    out: str
    """The stage's run directory (or data file / score cache for data and score stages)."""
    task: str
    steps: int = 0
    """Updates the stage takes (offline and online), for the cost estimate."""
    algo: str = ""


def _run_root(out: Path, task: str, algo: str, seed: int) -> Path:
    return out / "runs" / task.replace("/", "_") / f"{algo}-s{seed}"


def stages(grid: Grid, out: str | Path) -> list[Stage]:
    """The stage graph of ``grid`` under ``out``, in an order where every stage follows its deps."""
    from smacrl.data.tasks import task_preset

    out = Path(out)
    result: list[Stage] = []
    for task in grid.tasks:
        preset = grid.preset or task_preset(task)
        common = ("--preset", preset, "--no-progress")
        data_id = f"data:{task}"
        source = grid.datasets.get(task)
        if source:  # the user's file: the stage validates it for the task
            data_argv: tuple[str, ...] = ("data", "info", source, "--task", task)
            data_file = source
        else:
            data_argv = ("data", "make", task) + (("--steps", str(grid.data_steps)) if grid.data_steps else ())
            data_file = str(out / "cache" / "datasets" / f"{task}.hdf5")
        result.append(Stage(data_id, "data", data_argv, (), data_file, task))
        dataset = source or task
        needs_score = [a for a in grid.offline if "score_steps" in {f.name for f in _fields(a)}]
        score_id = f"score:{task}"
        if needs_score:
            algo = needs_score[0]
            smac = _config(algo, preset, grid.offline_args + grid.algo_args.get(f"offline.{algo}", ()), "offline")
            argv = ("score", "--dataset", dataset, "--preset", preset)
            argv += () if smac is None or smac.rvs else ("--no-rvs",)
            argv += ("--score-steps", str(grid.score_steps)) if grid.score_steps else ()
            result.append(Stage(score_id, "score", argv, (data_id,), str(out / "cache"), task))
        for algo in grid.offline:
            extra = grid.offline_args + grid.algo_args.get(f"offline.{algo}", ())
            score_args = ("--score-steps", str(grid.score_steps)) if grid.score_steps and algo in needs_score else ()
            steps = _steps(algo, preset, extra, "offline")
            for seed in grid.seeds:
                root = _run_root(out, task, algo, seed)
                off_id = f"offline:{task}/{algo}-s{seed}"
                deps = (data_id, score_id) if algo in needs_score else (data_id,)
                argv = ("pretrain", "--algo", algo, "--dataset", dataset, "--task", task, "--out",
                        str(root / "offline"), "--seed", str(seed), *common, *score_args, *extra)  # fmt: skip
                result.append(Stage(off_id, "offline", argv, deps, str(root / "offline"), task, steps, algo))
                for online in grid.online:
                    o_extra = grid.online_args + grid.algo_args.get(f"online.{online}", ())
                    o_steps = _steps(online, preset, o_extra, "online")
                    argv = ("finetune", "--algo", online, "--checkpoint", str(root / "offline"), "--task", task,
                            "--dataset", dataset, "--out", str(root / f"online-{online}"), "--seed", str(seed),
                            *common, *o_extra)  # fmt: skip
                    result.append(
                        Stage(
                            f"online:{task}/{algo}-s{seed}/{online}",
                            "online",
                            argv,
                            (off_id,),
                            str(root / f"online-{online}"),
                            task,
                            o_steps,
                            online,
                        )  # fmt: skip
                    )
    return result


def _fields(algo: str) -> Sequence[dataclasses.Field]:
    return dataclasses.fields(registry.get(algo, "offline").config)


def _config(algo: str, preset: str, extra: Sequence[str], phase: str) -> Any:
    """The stage's config with its overrides applied, or None when they do not parse (the stage itself
    will fail then, and say why in its log)."""
    import contextlib
    import io

    from smacrl.cli import _config_from_cli

    flags = [a for a in extra if a != "--no-progress"]
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            return _config_from_cli(algo, preset, flags, "smacrl sweep", phase=phase)
    except (ConfigError, SystemExit):
        return None


def _steps(algo: str, preset: str, extra: Sequence[str], phase: str) -> int:
    cfg = _config(algo, preset, extra, phase)
    return int(cfg.steps) if cfg is not None else 0

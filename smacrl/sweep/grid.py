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
class Variant:
    """A registered algorithm with flags of its own, run and reported under the variant's name."""

    algo: str
    args: tuple[str, ...] = ()


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
    variants: dict[str, Variant] = dataclasses.field(default_factory=dict)
    """Name -> a registered algorithm run with extra flags (an ablation or a control, such as
    ``smac-score-free`` = smac with ``--score-free``). A name listed in ``offline`` or ``online`` runs as
    that variant, and reports show it under its name (``--label``)."""

    def __post_init__(self) -> None:
        for field, values in (("tasks", self.tasks), ("offline", self.offline), ("online", self.online)):
            if not values:
                raise ConfigError("grid", field, "is empty")
        for name, variant in self.variants.items():
            if not name or any(c in name for c in "/ \t") or name in registry.names():
                raise ConfigError(
                    "grid", f"variants.{name}", "needs a name of its own (no spaces or '/', not an algorithm's)"
                )
            if not isinstance(variant, Variant):
                raise ConfigError("grid", f"variants.{name}", "must give algo and args")
        for phase, names in (("offline", self.offline), ("online", self.online)):
            for name in names:
                registry.get(self.resolve(name)[0], phase, source=f"grid: {phase}" + (
                    f" (variants.{name}.algo)" if name in self.variants else ""))  # fmt: skip
        if self.preset is not None and self.preset not in PRESET_NAMES:
            raise ConfigError("grid", "preset", f"unknown preset '{self.preset}' (one of {', '.join(PRESET_NAMES)})")
        if not self.seeds:
            raise ConfigError("grid", "seeds", "is empty")

    def resolve(self, name: str) -> tuple[str, tuple[str, ...]]:
        """The algorithm a grid name runs and the flags that make it this variant (none for a plain
        algorithm name)."""
        v = self.variants.get(name)
        return (name, ()) if v is None else (v.algo, (*v.args, "--label", name))

    @property
    def cells(self) -> list[tuple[str, str, str, int]]:
        return [(t, o, n, s) for t in self.tasks for o in self.offline for n in self.online for s in self.seeds]

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_toml(cls, path: str | Path) -> Grid:
        """A grid file: ``tasks``, ``offline``, ``online``, ``seeds`` (lists), optional ``preset``,
        ``offline_args`` / ``online_args`` (lists of flags), ``data_steps``, ``score_steps``, tables
        ``[args.offline]`` / ``[args.online]`` mapping an algorithm to its own flags, and
        ``[variants.NAME]`` tables, each with ``algo`` and ``args``."""
        p = Path(path)
        try:
            doc = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(p, "file", "does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(p, "toml", str(e)) from None
        known = {f.name for f in dataclasses.fields(cls)} - {"algo_args"} | {"args", "variants"}
        for key in doc:
            if key not in known:
                raise ConfigError(p, key, f"not a grid field (one of {', '.join(sorted(known))})")
        per_algo = {
            f"{phase}.{name}": tuple(map(str, flags))
            for phase, table in (doc.get("args") or {}).items()
            for name, flags in table.items()
        }
        variants = {}
        for name, table in (doc.get("variants") or {}).items():
            if not isinstance(table, dict) or set(table) - {"algo", "args"} or "algo" not in table:
                raise ConfigError(p, f"variants.{name}", "must be a table with algo and args")
            variants[name] = Variant(str(table["algo"]), tuple(map(str, table.get("args", ()))))
        values = {k: v for k, v in doc.items() if k not in ("args", "variants")}
        for key in ("tasks", "offline", "online", "seeds", "offline_args", "online_args"):
            if key in values:
                values[key] = tuple(values[key])
        try:
            return cls(**values, algo_args=per_algo, variants=variants)
        except TypeError as e:
            raise ConfigError(p, "grid", str(e)) from None
        except ConfigError as e:  # the grid's own checks name "grid": name the file instead
            raise ConfigError(p, e.field, e.problem) from None


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
        needs_score = [n for n in grid.offline if "score_steps" in {f.name for f in _fields(grid.resolve(n)[0])}]
        score_id = f"score:{task}"
        if needs_score:
            algo = needs_score[0]
            smac = _config(grid.resolve(algo)[0], preset, _extra(grid, algo, "offline"), "offline")
            argv = ("score", "--dataset", dataset, "--preset", preset)
            argv += () if smac is None or smac.rvs else ("--no-rvs",)
            argv += ("--score-steps", str(grid.score_steps)) if grid.score_steps else ()
            result.append(Stage(score_id, "score", argv, (data_id,), str(out / "cache"), task))
        for name in grid.offline:
            algo = grid.resolve(name)[0]
            extra = _extra(grid, name, "offline")
            score_args = ("--score-steps", str(grid.score_steps)) if grid.score_steps and name in needs_score else ()
            steps = _steps(algo, preset, extra, "offline")
            for seed in grid.seeds:
                root = _run_root(out, task, name, seed)
                off_id = f"offline:{task}/{name}-s{seed}"
                deps = (data_id, score_id) if name in needs_score else (data_id,)
                argv = ("pretrain", "--algo", algo, "--dataset", dataset, "--task", task, "--out",
                        str(root / "offline"), "--seed", str(seed), *common, *score_args, *extra)  # fmt: skip
                result.append(Stage(off_id, "offline", argv, deps, str(root / "offline"), task, steps, algo))
                for online in grid.online:
                    o_algo = grid.resolve(online)[0]
                    o_extra = _extra(grid, online, "online")
                    o_steps = _steps(o_algo, preset, o_extra, "online")
                    argv = ("finetune", "--algo", o_algo, "--checkpoint", str(root / "offline"), "--task", task,
                            "--dataset", dataset, "--out", str(root / f"online-{online}"), "--seed", str(seed),
                            *common, *o_extra)  # fmt: skip
                    result.append(
                        Stage(
                            f"online:{task}/{name}-s{seed}/{online}",
                            "online",
                            argv,
                            (off_id,),
                            str(root / f"online-{online}"),
                            task,
                            o_steps,
                            o_algo,
                        )  # fmt: skip
                    )
    return result


def _extra(grid: Grid, name: str, phase: str) -> tuple[str, ...]:
    """The flags of one grid name: the phase's, its algorithm's, then the variant's own (which win)."""
    algo, own = grid.resolve(name)
    per_variant = grid.algo_args.get(f"{phase}.{name}", ()) if name != algo else ()
    common = grid.offline_args if phase == "offline" else grid.online_args
    return common + grid.algo_args.get(f"{phase}.{algo}", ()) + per_variant + own


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

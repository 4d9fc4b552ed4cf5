"""The one logger: namespaced metrics to JSONL, optional TensorBoard / wandb, and a progress bar.

Training loops call :meth:`MetricLogger.log` every step with tensors or floats. Nothing is
converted to Python numbers (a host sync on GPU) until :meth:`MetricLogger.flush`, which the loop
calls every ``log_every`` steps: one ``torch.stack(...).tolist()`` per flush, however many metrics.

Keys are namespaced ``<phase>/<name>``: ``offline/...``, ``online/...``, ``eval/...``, ``score/...``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

NAMESPACES = ("offline", "online", "eval", "score", "data", "time")


class MetricLogger:
    def __init__(
        self,
        run_dir: str | os.PathLike | None,
        *,
        tensorboard: bool = False,
        wandb: bool = False,
        wandb_config: Mapping[str, Any] | None = None,
        filename: str = "metrics.jsonl",
    ):
        self.path = Path(run_dir) / filename if run_dir is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pending: list[tuple[int, dict[str, Any]]] = []
        self.latest: dict[str, float] = {}
        self.nonfinite: list[tuple[int, str, float]] = []
        """(step, key, value) of every NaN or infinite value the last :meth:`flush` wrote."""
        self._tb = None
        self._wandb = None
        if tensorboard and run_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise ImportError(
                    "--tensorboard needs the tensorboard package: pip install 'smacrl[tensorboard]'"
                ) from e
            self._tb = SummaryWriter(str(Path(run_dir) / "tb"))
        if wandb:
            try:
                import wandb as _wandb
            except ImportError as e:
                raise ImportError("--wandb needs the wandb package: pip install wandb") from e
            self._wandb = _wandb.init(config=dict(wandb_config or {}), dir=str(run_dir) if run_dir else None)

    def log(self, step: int, metrics: Mapping[str, float | int | torch.Tensor]) -> None:
        for key in metrics:
            if key.split("/", 1)[0] not in NAMESPACES or "/" not in key:
                raise ValueError(f"metric key '{key}' must be namespaced as one of {NAMESPACES} + '/name'")
        self._pending.append((int(step), {k: _detach(v) for k, v in metrics.items()}))

    def flush(self) -> dict[str, float]:
        """Convert pending metrics to floats (one host sync), write them, and return the latest values."""
        self.nonfinite = []
        if not self._pending:
            return self.latest
        tensors = [v for _, m in self._pending for v in m.values() if isinstance(v, torch.Tensor)]
        values = iter(torch.stack([t.float().reshape(()) for t in tensors]).tolist()) if tensors else iter(())
        rows = []
        for step, m in self._pending:
            row: dict[str, Any] = {"step": step}
            for k, v in m.items():
                row[k] = next(values) if isinstance(v, torch.Tensor) else float(v)
            rows.append(row)
        self._pending.clear()
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps({k: _finite(v) for k, v in row.items()}) + "\n")
        for row in rows:
            step = row["step"]
            if self._tb is not None:
                for k, v in row.items():
                    if k != "step":
                        self._tb.add_scalar(k, v, step)
            if self._wandb is not None:
                self._wandb.log({k: v for k, v in row.items() if k != "step"}, step=step)
            self.latest.update({k: v for k, v in row.items() if k != "step"})
        self.nonfinite = [(r["step"], k, v) for r in rows for k, v in r.items() if k != "step" and not math.isfinite(v)]
        return self.latest

    def close(self) -> None:
        self.flush()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _detach(v: Any) -> Any:
    return v.detach() if isinstance(v, torch.Tensor) else v


def _finite(v: Any) -> Any:
    # JSON has no NaN/Inf; keep the line valid and the fact visible.
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


LEGACY_METRICS = {"loss_ac": "loss_td", "loss_critic": "loss_td", "temperature": "ent_coef"}
"""Learner metrics renamed since older runs wrote their metrics.jsonl (one name per quantity in both
phases), read under the new name."""


def _current_name(key: str) -> str:
    phase, _, name = key.partition("/")
    return f"{phase}/{LEGACY_METRICS[name]}" if phase in ("offline", "online") and name in LEGACY_METRICS else key


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a metrics.jsonl file (a run directory is accepted too); renamed metrics of older runs
    come back under their current names (:data:`LEGACY_METRICS`)."""
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.jsonl"
    with open(p, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [{_current_name(k): v for k, v in row.items()} for row in rows]


def compact_metrics(path: str | os.PathLike, window: int = 250) -> bool:
    """Rewrite a finished run's metrics.jsonl with its per-update rows (``offline/*`` and ``online/*``
    losses and diagnostics, logged at every update) averaged over windows of ``window`` updates: one
    row at the end of each window, each metric the mean of the rows in the window that have it.
    Evaluation, timing and episode rows stay as they are, so everything a report reads is unchanged.

    This is how results are committed (a 10,000-update SMAC run logs about 4 MB, one row per update; some 40 KB
    compacted). Returns False, writing nothing, when the file is already compact. The file is replaced
    atomically.
    """
    from smacrl.io import atomic_write_text

    p = Path(path)
    with open(p, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]

    def per_update(row: dict[str, Any]) -> bool:
        return any(k.split("/", 1)[0] in ("offline", "online") and "/episode_" not in k for k in row)

    updates = [r for r in rows if per_update(r)]
    last = max((r["step"] for r in rows), default=0)
    if not updates or len(updates) <= 1.5 * -(-last // window):  # already at most ~one row per window
        return False
    windows: dict[int, list[dict[str, Any]]] = {}
    for r in updates:
        windows.setdefault(-(-r["step"] // window) * window, []).append(r)
    kept = [r for r in rows if not per_update(r)]
    for end, group in windows.items():
        keys = dict.fromkeys(k for r in group for k in r if k != "step")
        mean = {}
        for k in keys:
            values = [r[k] for r in group if isinstance(r.get(k), int | float)]
            mean[k] = sum(values) / len(values) if values else None
        kept.append({"step": end, **mean})
    kept.sort(key=lambda r: r["step"])  # stable: a window's mean follows the rows logged at its step
    atomic_write_text(p, "".join(json.dumps(r) + "\n" for r in kept))
    return True


PROGRESS_INTERVAL = float(os.environ.get("SMACRL_PROGRESS_INTERVAL", 30.0))
"""Seconds between progress lines when stderr is not a terminal (a log file)."""


def progress(total: int, desc: str, enabled: bool = True, initial: int = 0) -> Any:
    """A progress report on stderr: a live tqdm bar on a terminal; in a log file (stderr not a TTY) one
    plain line every :data:`PROGRESS_INTERVAL` seconds and one at the end (:class:`LineProgress`)
    instead of thousands of carriage-return updates; nothing when disabled."""
    if enabled and not _isatty(sys.stderr):
        return LineProgress(total, desc, initial=initial, interval=PROGRESS_INTERVAL)
    return tqdm(total=total, desc=desc, disable=not enabled, initial=initial, dynamic_ncols=True, leave=True)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class LineProgress:
    """tqdm's interface as used here (``update``, ``set_postfix``, ``refresh``, ``total``, ``n``,
    a context manager), written as whole lines: ``desc: n/total (p%) rate it/s eta T | key=value``."""

    def __init__(self, total: int | None, desc: str, *, initial: int = 0, interval: float = 30.0, stream: Any = None):
        self.total, self.desc, self.n, self.interval = total, desc, initial, interval
        self.stream = stream if stream is not None else sys.stderr
        self._postfix: dict[str, Any] = {}
        self._n0, self._t0 = initial, time.monotonic()
        self._last = self._t0
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._write(now)

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        self._postfix = {**(ordered_dict or {}), **kwargs}

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._write(time.monotonic())

    def _write(self, now: float) -> None:
        self._last = now
        elapsed = max(now - self._t0, 1e-9)
        rate = (self.n - self._n0) / elapsed
        line = f"{self.desc}: {self.n}"
        if self.total:
            line += f"/{self.total} ({100.0 * self.n / self.total:.0f}%)"
        line += f" {rate:.3g} it/s, {_duration(elapsed)} elapsed"
        if self.total and rate > 0 and self.n < self.total:
            line += f", eta {_duration((self.total - self.n) / rate)}"
        if self._postfix:
            line += " | " + " ".join(f"{k}={v}" for k, v in self._postfix.items())
        print(line, file=self.stream, flush=True)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def postfix(latest: Mapping[str, float], keys: Iterable[str]) -> dict[str, str]:
    """Short ``name=value`` pairs of the metrics present in ``latest`` for a progress bar."""
    return {k.rsplit("/", 1)[-1]: f"{latest[k]:.4g}" for k in keys if k in latest}

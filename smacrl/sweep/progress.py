"""A sweep's progress: a live table of stages on a terminal, one line per finished stage in a log."""

from __future__ import annotations

import sys
import time
from typing import Any

from smacrl.sweep.grid import Stage

STATES = ("queued", "ready", "done", "skipped", "failed")


class StageView:
    """Tracks each stage's state. A stage is *ready* once every stage it depends on has finished (it
    runs, or Ray holds it for a free CPU), *queued* before that. ``slots`` is how many stages the
    cluster runs at once (its CPUs over the CPUs per stage), set once Ray is up. The ETA divides the
    remaining stages' expected time (the mean time of finished stages of the same kind) by the number
    that can run at once: the ready stages, at most ``slots``."""

    def __init__(self, graph: list[Stage], status: dict[str, str], enabled: bool = True, slots: int | None = None):
        self.slots = slots
        self.graph = {st.id: st for st in graph}
        self.state = {sid: ("skipped" if status.get(sid) == "skipped" else "queued") for sid in self.graph}
        self.seconds: dict[str, float] = {}
        self.t0 = time.monotonic()
        self.enabled = enabled
        self.live = None
        if enabled and sys.stdout.isatty():
            from rich.live import Live

            self.live = Live(self._table(), refresh_per_second=2, transient=False)
            self.live.start()
        self._promote()

    def submitted(self, sid: str) -> None:
        self._promote()

    def finished(self, sid: str, state: str, seconds: float | None) -> None:
        self.state[sid] = state
        if seconds is not None:
            self.seconds[sid] = seconds
        self._promote()
        if self.enabled and self.live is None:
            n = sum(1 for s in self.state.values() if s in ("done", "failed", "skipped"))
            took = f" in {seconds:.0f} s" if seconds is not None else ""
            print(f"sweep: [{n}/{len(self.state)}] {state} {sid}{took}; {self._counts()}, eta {self._eta()}",
                  flush=True)  # fmt: skip
        self.tick()

    def tick(self) -> None:
        if self.live is not None:
            self.live.update(self._table())

    def close(self) -> None:
        if self.live is not None:
            self.live.update(self._table())
            self.live.stop()

    # -- internals ---------------------------------------------------------------------------------
    def _promote(self) -> None:
        finished = {sid for sid, s in self.state.items() if s in ("done", "skipped")}
        for sid, st in self.graph.items():
            if self.state[sid] == "queued" and all(d in finished for d in st.deps):
                self.state[sid] = "ready"

    def _parallel(self) -> int:
        ready = max(1, sum(1 for s in self.state.values() if s == "ready"))
        return min(ready, self.slots) if self.slots else ready

    def _counts(self) -> str:
        n = {k: sum(1 for s in self.state.values() if s == k) for k in ("ready", "queued")}
        slots = f" ({min(n['ready'], self.slots)} running)" if self.slots else ""
        return f"{n['ready']} ready{slots}, {n['queued']} queued"

    def _eta(self) -> str:
        mean: dict[str, float] = {}
        for kind in {st.kind for st in self.graph.values()}:
            times = [t for sid, t in self.seconds.items() if self.graph[sid].kind == kind]
            if times:
                mean[kind] = sum(times) / len(times)
        left = [st for sid, st in self.graph.items() if self.state[sid] in ("queued", "ready")]
        if not left:
            return "0s"
        if any(st.kind not in mean for st in left):
            return "unknown"
        from smacrl.logger import _duration

        return _duration(sum(mean[st.kind] for st in left) / self._parallel())

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(
            title=f"smacrl sweep: {len(self.state)} stages, {time.monotonic() - self.t0:.0f} s, eta {self._eta()}"
        )
        table.add_column("stage kind")
        for state in STATES:
            table.add_column(state, justify="right")
        for kind in ("data", "score", "offline", "online"):
            ids = [sid for sid, st in self.graph.items() if st.kind == kind]
            if ids:
                table.add_row(kind, *(str(sum(1 for sid in ids if self.state[sid] == s)) for s in STATES))
        ready = [sid for sid, s in self.state.items() if s == "ready"][:8]
        if ready:
            table.caption = "ready: " + ", ".join(ready)
        return table

"""Compact the finished runs of a reproduction sweep before committing them.

    python experiments/repro/compact.py results/repro-pointmaze

A run is finished when its final checkpoint exists (``checkpoints/final.safetensors``; runs still going,
or waiting to resume, are left alone). Its ``metrics.jsonl`` keeps every evaluation, timing and episode
row and the per-update rows averaged over 250 updates (:func:`smacrl.logger.compact_metrics`), so the
report it gives is unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path

from smacrl.logger import compact_metrics


def main(roots: list[str]) -> None:
    for root in map(Path, roots):
        done = [p.parent.parent for p in sorted(root.glob("runs/**/checkpoints/final.safetensors"))]
        n = sum(compact_metrics(run / "metrics.jsonl") for run in done if (run / "metrics.jsonl").exists())
        print(f"{root}: {len(done)} finished runs, {n} metrics files compacted")


if __name__ == "__main__":
    main(sys.argv[1:] or ["results/repro-pointmaze"])

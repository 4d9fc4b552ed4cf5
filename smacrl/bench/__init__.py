"""``smacrl bench``: how fast the learners, the replay sampler and evaluation run on this machine.

Every figure is printed beside a reference measured in the same process (:mod:`smacrl.bench.reference`:
Python loops over ensemble members, a host sync per step, ``Adam(foreach=False)``), so the ratio
``ours / reference`` stays meaningful on a shared or noisy machine even when absolute rates drift.
Timed repeats of the learner and its reference are interleaved for the same reason. The references
are part of the installed package, so the command needs no source checkout.

Modules, one job each:

- :mod:`smacrl.bench.cases`: the learners and size sets timed (synthetic Hopper-sized batches, SMAC
  with an analytic score stand-in) and their references;
- :mod:`smacrl.bench.flops`: FLOPs of an update, counted by ``torch.utils.flop_counter.FlopCounterMode``
  around a real update, with Muon's Newton-Schulz part apart, and the check against analytic figures;
- :mod:`smacrl.bench.timing`: interleaved timing, the matmul rates, the rows;
- :mod:`smacrl.bench.report`: the run, the printed/Markdown/JSON report and the command line;
- :mod:`smacrl.bench.reference`: the deliberately plain reference learners.
"""

from __future__ import annotations

from smacrl.bench.cases import (
    ACT_DIM,
    ALGOS,
    CORL,
    CORL_SIZES,
    CORL_UPDATES_PER_S,
    OBS_DIM,
    QUICK_PAPER_ALGOS,
    VARIANTS,
    Case,
    analytic_score,
    build_case,
    load_reference,
    synthetic_batch,
)
from smacrl.bench.flops import FlopCount, count_flops, update_flops, verify_counter
from smacrl.bench.report import cmd_bench, register, run_bench, to_markdown, write_result
from smacrl.bench.timing import Row, time_interleaved

__all__ = [
    "ACT_DIM",
    "ALGOS",
    "CORL",
    "CORL_SIZES",
    "CORL_UPDATES_PER_S",
    "OBS_DIM",
    "QUICK_PAPER_ALGOS",
    "VARIANTS",
    "Case",
    "FlopCount",
    "Row",
    "analytic_score",
    "build_case",
    "cmd_bench",
    "count_flops",
    "load_reference",
    "register",
    "run_bench",
    "synthetic_batch",
    "time_interleaved",
    "to_markdown",
    "update_flops",
    "verify_counter",
    "write_result",
]

"""Opt-in ``torch.compile`` of the critic ensembles (``--compile``), with an eager fallback.

What was measured on a 2-core CPU (``benchmarks/compile_ab.py``: the same learner, compiled and
eager blocks alternating in one process; the figures are in ``benchmarks/COMPILE.md``): compiling the
critic and its target copy speeds up small-network SAC, TD3, AWR and CQL, and slows TD3+BC, IQL and
the batch-64 512-wide (CORL-size) updates, where the matmuls dominate. Compiling the actors never
helped. So the flag is off by default, compiles the critics only, and is worth turning on for
small-network CQL/AWR/TD3/SAC runs long enough to repay the compile time (about 5-15 s per process).

SMAC's score-matching term differentiates ``grad_a Q`` (a double backward), which ``torch.compile``
does not support; a learner that declares ``second_order = True`` stays eager and says so.

If compilation fails on the first update (no C++ compiler, an unsupported op), the modules go back
to eager, one line says why, and the same batch is retried: the failure happens in the first
forward pass, before any optimizer step, so no update is applied twice (the RNG state and TD3's
delay counter are restored before the retry, so it is exactly the eager update).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def compile_learner(learner: Any, enabled: bool, log: Callable[[str], None] = print) -> bool:
    """Compile ``learner.ac``'s critic and target critic in place when ``enabled``; returns whether the
    learner will run compiled (``False`` when disabled or for second-order learners)."""
    if not enabled:
        return False
    if getattr(learner, "second_order", False):
        log(f"compile: {type(learner).__name__} takes a double backward through the critic, which "
            "torch.compile does not support; running eager")  # fmt: skip
        return False
    modules = [learner.ac.critic, learner.ac.critic_target]
    for m in modules:
        m.compile(dynamic=False)
    compiled_update = learner.update
    counter = getattr(learner, "updates", None)  # TD3's delay counter advances at the start of an update
    count = counter.value if counter is not None else 0

    def first_update(*args, **kwargs):
        del learner.update  # later calls go straight to the learner's own method
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        try:
            return compiled_update(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - any compile failure falls back; a real bug re-raises below
            for m in modules:
                m._compiled_call_impl = None  # nn.Module.compile's hook: None restores the eager call
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
            log(f"compile: torch.compile failed ({type(e).__name__}: {first_line[:200]}); running eager")
            if counter is not None:
                counter.value = count
            torch.set_rng_state(rng)  # the retry draws the same noise the eager update would have
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)
            return compiled_update(*args, **kwargs)

    learner.update = first_update
    return True

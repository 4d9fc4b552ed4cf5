"""FLOPs of an update, counted by ``torch.utils.flop_counter.FlopCounterMode`` as the update runs.

:func:`update_flops` runs one real ``learner.update(batch)`` on a second, throw-away learner under
``FlopCounterMode`` and reads the total. The counter sees every matrix product that autograd and the
optimizers dispatch, so nothing per algorithm is written here: SMAC's input-gradient pass with
``create_graph`` and the backward through both graphs, CQL's proposal actions, TD3's actor-only
backward (``backward(inputs=...)`` forms no critic weight gradients), IQL's value net and Muon's
Newton-Schulz iteration are counted as they execute.

What the figure covers (torch's rule): ``mm``, ``addmm``, ``bmm`` and ``baddbmm`` (and convolutions and
attention, which these networks do not have), ``2 m n k`` each; the added bias of ``addmm``/``baddbmm``,
elementwise work, reductions, the fused optimizers' arithmetic and the analytic score stand-in are not
counted. Autograd forms no gradient nobody needs, and neither does the count: a first layer whose input
is data gets no input gradient, an actor-only backward no critic weight gradients (a rule of thumb of
"3x the forward" per trained network overstates both). One matmul-shaped layer is missing: on CPU the
critics' width-1 output layer is computed as a multiply-and-sum
(:class:`smacrl.nets.ensemble.EnsembleLinear`), which the counter sees as a ``mul`` and a ``sum``. That
layer is ``1/hidden`` of a hidden layer's FLOPs (under 2% at 64-wide critics); on CUDA it is a
``baddbmm`` and is counted.

Muon's Newton-Schulz iteration (:func:`smacrl.optim.muon.newton_schulz`) casts the momentum to
bfloat16 and iterates with ``bmm``/``baddbmm``; it is the only bfloat16 matmul in these updates. The
counter is given formulas for the four matmul ops (``custom_mapping``) that return torch's own count
and also add it to a separate tally when the product is bfloat16, so one counted update gives both the
total and its Newton-Schulz part (``%peak`` prices the two at different measured rates).

Learners with a delayed actor step (TD3, TD3+BC: ``cfg.policy_delay``) are counted over
``policy_delay`` consecutive updates and the figure divided by it, so it is per update on average.

:func:`verify_counter` checks the counter against analytic figures: one ensemble layer
``[E, B, in] x [E, in, out]`` (forward ``2 E B in out``; forward and backward through weights and
inputs ``3x`` that) and Newton-Schulz on ``E`` matrices ``m x n`` (``steps (4 m^2 n + 2 m^3)`` each,
all bfloat16). ``smacrl bench`` runs it before timing, and a test runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch.utils.flop_counter import FlopCounterMode, flop_registry

_aten = torch.ops.aten
_MATMULS = (_aten.mm, _aten.addmm, _aten.bmm, _aten.baddbmm)
_LAYER_CHECK = (4, 32, 48, 64)
"""``(E, B, in, out)`` of the layer :func:`verify_counter` counts."""
_NS_CHECK = (3, 16, 24, 5)
"""``(E, m, n, steps)`` of the Newton-Schulz call :func:`verify_counter` counts."""


class FlopCount(NamedTuple):
    total: float
    """Matmul FLOPs counted by ``FlopCounterMode``."""
    newton_schulz: float
    """The part of ``total`` computed in bfloat16: Muon's Newton-Schulz iteration."""


def count_flops(fn: Callable[[], Any]) -> FlopCount:
    """Matmul FLOPs of ``fn()`` and their bfloat16 part."""
    bf16 = [0]

    def tally_bf16(formula: Callable[..., int]) -> Callable[..., int]:
        def count(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
            flops = formula(*args, out_val=out_val, **kwargs)  # torch's formula (it reduces tensors to shapes)
            if isinstance(out_val, torch.Tensor) and out_val.dtype == torch.bfloat16:
                bf16[0] += flops
            return flops

        # what register_flop_formula(get_raw=True) sets: FlopCounterMode then passes tensors, not shapes
        # (were that dropped, the bf16 tally would stay 0 and verify_counter would raise)
        count._get_raw = True  # type: ignore[attr-defined]
        return count

    mapping = {op: tally_bf16(flop_registry[op]) for op in _MATMULS}
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    counter.mod_tracker = _GlobalOnly()  # type: ignore[assignment]
    with counter:
        fn()
    return FlopCount(float(counter.get_total_flops()), float(bf16[0]))


class _GlobalOnly:
    """Stands in for ``FlopCounterMode``'s per-module tracker, attributing every FLOP to ``"Global"``
    (the total, all the bench reads). The tracker hooks the backward of every module's inputs, and those
    hooks make ``torch.autograd.grad`` on a leaf fail ("A leaf node was passed to
    _will_engine_execute_node", pytorch/pytorch#131753, open in torch 2.13): SMAC's action gradient is
    such a call. If a torch release renames the attribute this replaces, counting SMAC fails loudly
    (a test counts it)."""

    parents = frozenset({"Global"})

    def __enter__(self) -> _GlobalOnly:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def update_flops(
    make_learner: Callable[[], Any], batch: dict[str, torch.Tensor], updates: int | None = None
) -> FlopCount:
    """FLOPs of one ``update(batch)`` of the learner ``make_learner()`` builds, averaged over ``updates``
    consecutive updates (default: the learner's ``cfg.policy_delay``, else 1).

    The learner counted is a throw-away one built here, so the learner that is timed keeps its
    parameters, optimizer state and step counters; the global random state is restored afterwards, so
    the timed run draws the same numbers as if nothing had been counted. (A deep copy of the timed
    learner would not do: ``torch.optim.Optimizer`` copies only its state and parameter groups, which
    drops :class:`~smacrl.optim.muon.EnsembleMuon`'s ``layout``.)
    """
    device = next(iter(batch.values())).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        learner = make_learner()
        if updates is None:
            updates = max(1, int(getattr(getattr(learner, "cfg", None), "policy_delay", 1) or 1))
        count = count_flops(lambda: [learner.update(batch) for _ in range(updates)])
    return FlopCount(count.total / updates, count.newton_schulz / updates)


# ----------------------------------------------------------------------------- analytic checks
def ensemble_layer_check(
    ensemble: int = 4, rows: int = 32, fan_in: int = 48, fan_out: int = 64
) -> tuple[tuple[float, float], tuple[float, float]]:
    """``((counted, analytic) forward, (counted, analytic) forward + backward)`` for one
    :class:`~smacrl.nets.ensemble.EnsembleLinear` on ``[E, B, in]`` inputs: ``2 E B in out`` for the
    forward ``x W``; three times that with the input gradient ``g W^T`` and weight gradient ``x^T g``."""
    from smacrl.nets.ensemble import EnsembleLinear

    if fan_out < 2:
        raise ValueError("a width-1 layer is a multiply-and-sum on CPU, not a matmul: use fan_out >= 2")
    layer = EnsembleLinear(fan_in, fan_out, ensemble)
    x = torch.randn(ensemble, rows, fan_in, requires_grad=True)
    forward = 2.0 * ensemble * rows * fan_in * fan_out
    with torch.no_grad():
        fwd = count_flops(lambda: layer(x)).total
    both = count_flops(lambda: layer(x).sum().backward()).total
    return (fwd, forward), (both, 3 * forward)


def newton_schulz_check(ensemble: int = 3, m: int = 16, n: int = 24, steps: int = 5) -> tuple[FlopCount, float]:
    """``(counted, analytic)`` for Muon's Newton-Schulz on ``E`` matrices ``m x n`` (``m <= n``):
    ``steps (4 m^2 n + 2 m^3)`` per matrix (``X X^T``, ``A A`` and ``B X`` per step), all of it bfloat16."""
    from smacrl.optim.muon import newton_schulz

    g = torch.randn(ensemble, m, n)
    return count_flops(lambda: newton_schulz(g, steps=steps)), ensemble * steps * (4.0 * m * m * n + 2.0 * m**3)


def verify_counter() -> str:
    """Check the counter against the analytic figures above; a one-line summary, or ``RuntimeError``."""
    e, b, fan_in, fan_out = _LAYER_CHECK
    (fwd, fwd_ref), (both, both_ref) = ensemble_layer_check(e, b, fan_in, fan_out)
    ns, ns_ref = newton_schulz_check(*_NS_CHECK)
    problems = []
    if fwd != fwd_ref or both != both_ref:
        problems.append(f"ensemble layer counted {fwd:g} / {both:g}, analytic {fwd_ref:g} / {both_ref:g}")
    if ns.total != ns_ref or ns.newton_schulz != ns_ref:
        problems.append(f"Newton-Schulz counted {ns.total:g} ({ns.newton_schulz:g} bf16), analytic {ns_ref:g}")
    if problems:
        raise RuntimeError("FlopCounterMode disagrees with the analytic FLOPs: " + "; ".join(problems))
    ns_e, m, n, steps = _NS_CHECK
    return (
        f"FLOP counter check: ensemble layer [{e},{b},{fan_in}]x[{e},{fan_in},{fan_out}] forward {fwd:g} "
        f"(2 E B in out), forward+backward {both:g} (3x); Newton-Schulz {steps} steps on [{ns_e},{m},{n}] "
        f"{ns.newton_schulz:g} bf16 (steps (4m^2n + 2m^3) E): agree"
    )

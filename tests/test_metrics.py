import numpy as np
import pytest

from smacrl.eval.metrics import (
    Curve,
    normalized_regret,
    regret,
    regret_table,
    run_scores,
    stable_transfer,
    transfer_drop,
    transfer_summary,
)


def test_transfer_drop_hand_computed():
    steps = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200]
    returns = [50, 40, 30, 60, 70, 80, 90, 90, 90, 90, 95, 95, 95, 95, 95, 95, 95, 95, 95, 95, 100]
    # 20 online evaluations -> the first 2 count: min(40, 30) = 30 -> drop 20
    assert transfer_drop(steps, returns) == 20.0
    assert transfer_drop([0, 1, 2], [10, 12, 15]) == -2.0  # no drop: negative
    with pytest.raises(ValueError):
        transfer_drop([5, 6], [1, 2])


def test_stable_transfer_and_regret():
    assert stable_transfer([10, 20], [15, 16]) is True  # 15.5 >= 15
    assert stable_transfer([10, 20], [14, 15]) is False
    assert regret([80, 90, 100], r_star=100) == pytest.approx(10.0)


def _curve(task, off, on, seed, returns):
    return Curve(task, off, on, seed, np.arange(len(returns)) * 10, np.asarray(returns, float))


def test_regret_table_and_normalized_regret():
    curves = [
        _curve("a", "smac", "sac", 0, [5, 8, 10]),  # online regret vs R*=10: (2 + 0)/2 = 1
        _curve("a", "smac", "sac", 1, [5, 6, 8]),  # (4 + 2)/2 = 3
        _curve("a", "cql", "sac", 0, [6, 2, 4]),  # (8 + 6)/2 = 7
        _curve("b", "smac", "sac", 0, [1, 1, 1]),  # R*=3: 2
        _curve("b", "cql", "sac", 0, [1, 3, 2]),  # (0 + 1)/2 = 0.5
    ]
    table = regret_table(curves)
    row = table[("a", "smac", "sac")]
    assert row["mean"] == pytest.approx(2.0) and row["n"] == 2 and row["r_star"] == 10
    assert row["se"] == pytest.approx(np.std([1, 3], ddof=1) / np.sqrt(2))
    assert table[("a", "cql", "sac")]["mean"] == pytest.approx(7.0)
    assert table[("b", "cql", "sac")]["mean"] == pytest.approx(0.5)
    norm = normalized_regret(table)
    # task a: smac 2 -> 0, cql 7 -> 1; task b: smac 2 -> 1, cql 0.5 -> 0; averages 0.5 each
    assert norm[("smac", "sac")] == pytest.approx(0.5) and norm[("cql", "sac")] == pytest.approx(0.5)
    summary = transfer_summary(curves)
    s = summary[("a", "smac", "sac")]
    assert s["j0"] == 5 and s["j1"] == 7 and s["drop"] == pytest.approx(-2.0) and s["stable_transfer"]
    assert summary[("a", "cql", "sac")]["drop"] == pytest.approx(4.0)
    assert not summary[("a", "cql", "sac")]["stable_transfer"]


def test_run_scores_use_table_1_bounds():
    curves = [
        _curve("a", "smac", "sac", 1, [5, 6, 8]),  # regret 3 (R* = 10)
        _curve("a", "smac", "sac", 0, [5, 8, 10]),  # regret 1
        _curve("a", "cql", "sac", 0, [6, 2, 4]),  # regret 7
        _curve("b", "smac", "sac", 0, [1, 1, 1]),  # the only pair on b: every run scores 1
    ]
    scores = run_scores(curves)
    # task a: pair means 2 (smac) and 7 (cql) are table 1's bounds: score = 1 - (regret - 2) / 5
    assert scores[("a", "smac", "sac")] == [(0, pytest.approx(1.2)), (1, pytest.approx(0.8))]  # sorted by seed
    assert scores[("a", "cql", "sac")] == [(0, pytest.approx(0.0))]
    assert scores[("b", "smac", "sac")] == [(0, 1.0)]  # table 1 gives it 0

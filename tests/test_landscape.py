"""Reward landscapes: line, plane and t-SNE over actor parameters, on tiny pendulum runs."""

import json

import numpy as np
import pytest
import torch

from smacrl.checkpoint import load_checkpoint, save_checkpoint
from smacrl.cli import main
from smacrl.data.tasks import env_factory
from smacrl.eval import landscape as ls
from smacrl.eval.rollout import evaluate

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """64-unit networks and single-env steps: one torch thread is faster, and immune to busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(one_thread, tmp_path_factory):
    """A SMAC pre-training run and its SAC and TD3+BC fine-tuning runs, 6 snapshots each."""
    root = tmp_path_factory.mktemp("landscape")
    mp = pytest.MonkeyPatch()
    mp.setenv("SMACRL_CACHE", str(root / "cache"))
    data = root / "pendulum.hdf5"  # own copy: conftest's session-wide one would be built before one_thread applies
    assert main(["data", "make", "pendulum-medium-replay", "--out", str(data), "--steps", "400", "--no-progress"]) == 0
    offline = root / "smac"
    assert main(
        ["pretrain", "--algo", "smac", "--dataset", str(data), "--preset", "cpu", "--steps", "60",
         "--score-steps", "50", "--eval-every", "0", "--trajectory-points", "5", "--no-progress",
         "--out", str(offline)]
    ) == 0  # fmt: skip
    online = {}
    for algo in ("sac", "td3bc"):
        online[algo] = root / algo
        assert main(
            ["finetune", "--algo", algo, "--checkpoint", str(offline), "--preset", "cpu", "--steps", "60",
             "--warmup-steps", "30", "--eval-episodes", "0", "--trajectory-points", "5", "--no-progress",
             "--out", str(online[algo])]
        ) == 0  # fmt: skip
    mp.undo()
    final = "checkpoints/final.safetensors"
    return {"offline": offline / final, "sac": online["sac"] / final, "td3bc": online["td3bc"] / final, "dirs": online}


def _own_returns(path, episodes, seed):
    ck = load_checkpoint(path)
    return evaluate(ck.actor_critic, make_env=env_factory(ck.meta["env_id"]), episodes=episodes, seed=seed).returns


def test_line_endpoints_equal_their_own_evaluation(runs, tmp_path):
    settings = ls.EvalSettings(episodes=3, seed=7, progress=False)
    summary = ls.line_landscape([(runs["offline"], runs["sac"])], tmp_path, points=3, settings=settings)
    returns = np.array(summary["pairs"][0]["returns"])  # (points, episodes)
    assert returns.shape == (3, 3)
    np.testing.assert_array_equal(returns[0], _own_returns(runs["offline"], 3, 7))
    np.testing.assert_array_equal(returns[-1], _own_returns(runs["sac"], 3, 7))
    # the middle point is the average of the two actors (normalizer kept), evaluated like any policy
    a, b = ls.load_policy(runs["offline"]), ls.load_policy(runs["sac"])
    mid = ls.line_thetas(a, b, [0.5])[0]
    assert torch.allclose(ls.flatten_actor(mid), (a.flat() + b.flat()) / 2, atol=1e-6)
    ac = load_checkpoint(runs["offline"]).actor_critic
    ac.load_state_dict(mid, strict=False)
    direct = evaluate(ac, make_env=env_factory("pendulum-medium-replay"), episodes=3, seed=7).returns
    np.testing.assert_allclose(returns[1], direct, rtol=1e-6)
    assert summary["groups"]["smac → sac"]["pairs"] == 1 and (tmp_path / "line.png").read_bytes()[:8] == PNG


def test_several_pairs_give_mean_and_standard_error(runs, tmp_path):
    settings = ls.EvalSettings(episodes=1, progress=False)
    pairs = [(runs["offline"], runs["sac"]), (runs["offline"], runs["td3bc"]), (runs["offline"], runs["sac"])]
    summary = ls.line_landscape(pairs, tmp_path, points=2, settings=settings, plot=False)
    assert set(summary["groups"]) == {"smac → sac", "smac → td3bc"}
    sac = summary["groups"]["smac → sac"]
    assert sac["pairs"] == 2 and sac["se"] == [0.0, 0.0]  # the same pair twice: no spread
    one = np.array(summary["pairs"][0]["return_mean"])
    np.testing.assert_allclose(sac["mean"], one)


def test_plane_coordinates_are_exact():
    g = torch.Generator().manual_seed(0)
    base, t1, t2 = (torch.randn(500, generator=g, dtype=torch.float64) for _ in range(3))
    basis = ls.PlaneBasis.from_points(base, t1, t2)
    u, v = t1 - base, t2 - base
    w = v - (u @ v) / (u @ u) * u
    anchors = basis.anchors()
    assert anchors["base"] == (0.0, 0.0) and anchors["theta1"] == (float(u.norm()), 0.0)
    assert anchors["theta2"] == pytest.approx((float(u @ v / u.norm()), float(w.norm())), rel=1e-12)
    for name, theta in (("base", base), ("theta1", t1), ("theta2", t2)):
        assert basis.coords(theta) == pytest.approx(anchors[name], abs=1e-10)  # projection agrees
        assert torch.allclose(basis.point(*anchors[name]), theta, rtol=0, atol=1e-12)  # and reconstructs
    assert abs(float(basis.u_hat @ basis.v_hat)) < 1e-12 and abs(float(w @ u)) < 1e-9
    xs, ys = basis.grid(5, -0.2, 1.2)
    for x in xs:
        for y in ys:
            assert basis.coords(basis.point(x, y)) == pytest.approx((x, y), abs=1e-10)
    assert xs[0] == pytest.approx(min(0, anchors["theta2"][0]) - 0.2 * (xs[-1] - xs[0]) / 1.4)
    with pytest.raises(ValueError, match="no plane"):
        ls.PlaneBasis.from_points(base, t1, base + 2 * u)


def test_plane_of_real_checkpoints(runs, tmp_path):
    settings = ls.EvalSettings(episodes=2, seed=1, progress=False)
    summary = ls.plane_landscape(runs["offline"], runs["sac"], runs["td3bc"], tmp_path, grid=3, settings=settings)
    p = [ls.load_policy(runs[k]) for k in ("offline", "sac", "td3bc")]
    basis = ls.PlaneBasis.from_points(p[0].flat(), p[1].flat(), p[2].flat())
    for ck, policy in zip(summary["checkpoints"], p):
        assert ck["coords"] == pytest.approx(list(basis.coords(policy.flat())), abs=1e-9)
        assert ck["return_mean"] == pytest.approx(_own_returns(policy.path, 2, 1).mean())
        # the float32 actor rebuilt from the in-plane coordinates is the checkpoint's own
        rebuilt = ls.unflatten_actor(basis.point(*ck["coords"]), policy.state)
        for k, t in rebuilt.items():
            torch.testing.assert_close(t, policy.state[k], rtol=0, atol=1e-6)
    assert np.array(summary["return_mean"]).shape == (3, 3) and len(summary["x"]) == 3
    assert summary["checkpoints"][1]["coords"][1] == 0.0 and summary["checkpoints"][0]["coords"] == [0.0, 0.0]
    assert (tmp_path / "plane.png").read_bytes()[:8] == PNG


def test_rerun_is_served_from_the_cache(runs, tmp_path, monkeypatch):
    settings = ls.EvalSettings(episodes=2, progress=False)
    first = ls.line_landscape([(runs["offline"], runs["sac"])], tmp_path, points=4, settings=settings, plot=False)
    entries = json.loads((tmp_path / "cache.json").read_text())["entries"]
    assert len(entries) == 4 and all(len(r) == 2 for r in entries.values())

    def no_rollouts(*args, **kwargs):
        raise AssertionError("a cached point was rolled out again")

    monkeypatch.setattr(ls.evaluate, "evaluate_states", no_rollouts)  # the module evaluate_cached calls it from
    again = ls.line_landscape([(runs["offline"], runs["sac"])], tmp_path, points=4, settings=settings)
    assert again["pairs"][0]["returns"] == first["pairs"][0]["returns"] and (tmp_path / "line.png").exists()
    # new values of t are not in the cache: they are rolled out
    with pytest.raises(AssertionError, match="rolled out again"):
        ls.line_landscape([(runs["offline"], runs["sac"])], tmp_path, points=5, settings=settings)


def test_mismatched_normalizer_or_spec_is_one_line_error(runs, tmp_path, capsys):
    ck = load_checkpoint(runs["sac"])
    ac = ck.actor_critic
    ac.obs_norm.mean.add_(0.5)
    other = save_checkpoint(tmp_path / "shifted.safetensors", ac, algo="sac", step=1, env_id="pendulum-medium-replay")
    code = main(["landscape", "line", "--from", str(runs["offline"]), "--to", str(other), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "obs_norm.mean" in err and "shifted.safetensors" in err

    from smacrl.nets import ActorCritic, ActorCriticSpec

    spec = ActorCriticSpec(**{**ck.actor_critic.spec.to_dict(), "actor_hidden": (8, 8)})
    small = save_checkpoint(tmp_path / "small.safetensors", ActorCritic(spec), algo="sac", step=1, env_id="x")
    code = main(["landscape", "plane", "--base", str(runs["offline"]), "--a", str(runs["sac"]), "--b", str(small),
                 "--out", str(tmp_path / "p")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "nets" in err and "actor_hidden" in err


def test_tsne_of_trajectories(runs, tmp_path):
    settings = ls.EvalSettings(episodes=1, progress=False)
    summary = ls.tsne_landscape([runs["dirs"]["sac"], runs["dirs"]["td3bc"]], tmp_path, settings=settings)
    rows = summary["points"]
    labels = list(dict.fromkeys(r["label"] for r in rows))
    assert labels == ["smac (offline)", "smac → sac", "smac → td3bc"]  # the offline parent is brought in
    assert len(rows) == 18  # 3 runs x (5 points + step 0)
    for label in labels:
        steps = [r["step"] for r in rows if r["label"] == label]
        assert steps == sorted(steps) and len(steps) == 6
    assert all(np.isfinite([r["x"], r["y"], r["return_mean"]]).all() for r in rows)
    saved = json.loads((tmp_path / "tsne.json").read_text())
    assert len(saved["points"]) == 18 and (tmp_path / "tsne.png").read_bytes()[:8] == PNG


def test_cli_commands_write_pngs(runs, tmp_path, capsys):
    common = ["--episodes", "1", "--no-progress"]
    line = ["landscape", "line", "--from", str(runs["offline"]), "--to", str(runs["sac"]), "--points", "3"]
    assert main([*line, *common, "--out", str(tmp_path / "line")]) == 0
    plane = ["landscape", "plane", "--base", str(runs["offline"]), "--a", str(runs["sac"]), "--b", str(runs["td3bc"])]
    assert main([*plane, "--grid", "3", "--range", "-0.5", "1.5", *common, "--out", str(tmp_path / "plane")]) == 0
    tsne = ["landscape", "tsne", str(runs["dirs"]["sac"]), "--no-parents"]
    assert main([*tsne, *common, "--out", str(tmp_path / "tsne")]) == 0
    for name in ("line", "plane", "tsne"):
        assert (tmp_path / name / f"{name}.png").read_bytes()[:8] == PNG
    out = capsys.readouterr().out
    assert "smac → sac (1 pair)" in out and "6 snapshots from 1 runs" in out
    xs = json.loads((tmp_path / "plane" / "plane.json").read_text())["x"]
    assert xs[0] < 0 < xs[-1]  # --range widened the grid around the checkpoints
    unpaired = ["landscape", "line", "--from", str(runs["offline"]), "--from", str(runs["offline"]), "--to"]
    assert main([*unpaired, str(runs["sac"]), "--out", str(tmp_path / "x")]) == 2


def test_worker_processes_give_the_serial_values(runs, tmp_path):
    pair = [(runs["offline"], runs["td3bc"])]
    serial = ls.EvalSettings(episodes=2, max_envs=2, progress=False)  # one point per chunk: 3 chunks
    parallel = ls.EvalSettings(episodes=2, max_envs=2, workers=2, progress=False)
    a = ls.line_landscape(pair, tmp_path / "serial", points=5, settings=serial, plot=False)
    b = ls.line_landscape(pair, tmp_path / "parallel", points=5, settings=parallel, plot=False)
    assert a["pairs"][0]["returns"] == b["pairs"][0]["returns"]
    cached = json.loads((tmp_path / "parallel" / "cache.json").read_text())["entries"]
    assert len(cached) == 5

import json
import math

import pytest
import torch

from smacrl.logger import MetricLogger, read_metrics
from smacrl.nets import ActorCritic
from smacrl.run import RunDir, resolve_checkpoint


def test_logger_namespaces_and_flush(tmp_path):
    log = MetricLogger(tmp_path)
    with pytest.raises(ValueError, match="namespaced"):
        log.log(0, {"loss": 1.0})
    log.log(1, {"offline/loss": torch.tensor(0.5), "offline/q": 2})
    log.log(2, {"offline/loss": torch.tensor(float("nan"))})
    assert not (tmp_path / "metrics.jsonl").exists() or read_metrics(tmp_path) == []  # nothing before flush
    latest = log.flush()
    rows = read_metrics(tmp_path)
    assert rows[0] == {"step": 1, "offline/loss": 0.5, "offline/q": 2.0}
    assert rows[1]["offline/loss"] == "nan"  # JSON has no NaN; kept visible as a string
    assert math.isnan(latest["offline/loss"])
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines():
        json.loads(line)  # strict JSON


def test_run_dir_retention_and_latest(tmp_path, small_spec):
    run = RunDir(tmp_path / "r").create()
    ac = ActorCritic(small_spec)
    for step in (100, 200, 300, 400):
        run.save_checkpoint(ac, step, algo="smac", keep=2)
    assert [p.name for p in run.periodic_checkpoints()] == ["step_000000300.safetensors", "step_000000400.safetensors"]
    assert resolve_checkpoint(run.path).name == "step_000000400.safetensors"
    run.save_checkpoint(ac, 500, algo="smac", final=True, keep=2)
    assert resolve_checkpoint(run.path).name == "final.safetensors"
    assert len(run.periodic_checkpoints()) == 2  # final never counts against retention


def test_run_dir_config(tmp_path):
    from smacrl.configs import make_config

    run = RunDir(tmp_path / "r").create()
    run.save_config("smac", make_config("smac", "cpu"), preset="cpu", env_id="Pendulum-v1")
    doc = run.load_config()
    assert doc["algo"] == "smac" and doc["preset"] == "cpu" and doc["config"]["kappa"] == 40.0


def test_progress_in_a_log_file_is_whole_lines(monkeypatch):
    """With stderr not a terminal, progress is a few plain lines, not carriage-return redraws."""
    import io

    from smacrl import logger as lg

    stream = io.StringIO()
    monkeypatch.setattr(lg.sys, "stderr", stream)
    monkeypatch.setattr(lg, "PROGRESS_INTERVAL", 3600.0)
    with lg.progress(1000, "pretrain x") as bar:
        assert isinstance(bar, lg.LineProgress)
        for _ in range(1000):
            bar.update(1)
        bar.set_postfix({"loss_td": "0.5"}, refresh=False)
    out = stream.getvalue()
    assert "\r" not in out and out.count("\n") == 1  # the interval never passed: only the closing line
    assert out.startswith("pretrain x: 1000/1000 (100%)") and out.rstrip().endswith("| loss_td=0.5")
    bar = lg.LineProgress(10, "eval", interval=0.0, stream=stream)
    bar.total = 20  # generators set the total once they know it
    bar.update(5)
    assert stream.getvalue().splitlines()[-1].startswith("eval: 5/20 (25%)") and "eta" in stream.getvalue()
    disabled = lg.progress(10, "quiet", enabled=False)
    disabled.update(10)
    disabled.close()
    assert stream.getvalue().count("\n") == 2  # a disabled bar writes nothing


def test_compact_metrics_averages_update_rows_per_window_and_keeps_the_rest(tmp_path):
    import json

    from smacrl.logger import compact_metrics, read_metrics

    rows = [{"step": 0, "eval/return_mean": -5.0}]
    for step in range(1, 9):  # losses at every update; the alpha diagnostic at every other one
        row = {"step": step, "online/loss_td": float(step)}
        if step % 2 == 0:
            row["offline/alpha_mean"] = 10.0 * step
        rows.append(row)
        if step == 4:
            rows += [{"step": 4, "eval/return_mean": 1.0}, {"step": 4, "time/updates_per_s": 50.0}]
    rows.append({"step": 6, "online/episode_return": 3.0, "online/episode_length": 200})
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert compact_metrics(path, window=4)
    got = read_metrics(path)
    assert {"step": 4, "online/loss_td": 2.5, "offline/alpha_mean": 30.0} in got  # mean of 1..4, of 20 and 40
    assert {"step": 8, "online/loss_td": 6.5, "offline/alpha_mean": 70.0} in got  # 5..8, 60 and 80
    for r in rows:  # evaluations, timing and episodes as they were
        if not any(k in r for k in ("online/loss_td", "offline/alpha_mean")):
            assert r in got
    assert len(got) == 4 + 2 and [r["step"] for r in got] == sorted(r["step"] for r in got)
    before = path.read_bytes()
    assert not compact_metrics(path, window=4) and path.read_bytes() == before  # already compact

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

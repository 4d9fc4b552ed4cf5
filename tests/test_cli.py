import json
import subprocess
import sys

from smacrl.cli import build_parser, main
from smacrl.logger import read_metrics


def _commands(parser):
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices


def test_every_listed_command_has_working_help(capsys):
    parser = build_parser()
    for name in _commands(parser):
        argv = [name, "info", "--help"] if name == "ckpt" else [name, "--help"]
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
        assert code in (0, None), name
        out = capsys.readouterr().out
        assert "usage: smacrl " + name in out, name


def _init_eval(tmp_path, name, seed):
    out = tmp_path / name
    assert main(["init", "--env", "Pendulum-v1", "--preset", "cpu", "--out", str(out), "--seed", str(seed)]) == 0
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(out),
                "--episodes",
                "3",
                "--seed",
                str(seed),
                "--out",
                str(out),
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    return out


def test_init_eval_pipeline_and_same_seed_same_metrics(tmp_path, capsys):
    a = _init_eval(tmp_path, "a", 7)
    b = _init_eval(tmp_path, "b", 7)
    c = _init_eval(tmp_path, "c", 8)
    ma, mb, mc = read_metrics(a), read_metrics(b), read_metrics(c)
    assert ma == mb
    assert ma != mc
    assert ma[0]["eval/length_mean"] == 200.0 and ma[0]["eval/return_mean"] < 0
    from smacrl.checkpoint import read_metadata

    ha, hb, hc = (read_metadata(r / "checkpoints" / "step_000000000.safetensors")["sha256"] for r in (a, b, c))
    assert ha == hb != hc  # same seed -> bit-identical initial weights
    cfg = json.loads((a / "config.json").read_text())
    assert cfg["config"]["seed"] == 7 and cfg["preset"] == "cpu"


def test_eval_wrong_env_dims_exit_2_one_line(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["init", "--env", "Pendulum-v1", "--out", str(out)]) == 0
    capsys.readouterr()
    code = main(["eval", "--checkpoint", str(out), "--env", "MountainCarContinuous-v0", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "obs_dim" in err and "step_000000000.safetensors" in err


def test_console_script_exit_code_for_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    proc = subprocess.run(
        [sys.executable, "-m", "smacrl.cli", "ckpt", "info", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "bad.safetensors: header:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ckpt_info(tmp_path, capsys):
    out = tmp_path / "r"
    main(["init", "--env", "Pendulum-v1", "--out", str(out)])
    capsys.readouterr()
    assert main(["ckpt", "info", str(out)]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["obs_dim"] == 3 and meta["act_dim"] == 1 and meta["action_high"] == [2.0]

"""Score-model checkpoints: round trip, dims/dataset validation, corruption, format confusion."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from smacrl.configs import config_to_dict, make_config
from smacrl.errors import CheckpointError
from smacrl.score import ScoreModel, load_score_checkpoint, load_score_model, read_score_metadata, save_score_model

SHA = "ab" * 32


def _model(rvs: bool = True) -> tuple[ScoreModel, object]:
    torch.manual_seed(0)
    cfg = make_config("score", "cpu", rvs=rvs, rvs_w=0.8, n_blocks=1)
    m = ScoreModel(5, 3, cfg)
    m.set_obs_stats(torch.linspace(-1, 1, 5), torch.linspace(0.5, 2, 5))
    return m.eval(), cfg


@pytest.mark.parametrize("rvs", [True, False])
def test_round_trip(tmp_path, rvs):
    model, cfg = _model(rvs)
    path = save_score_model(tmp_path / "run" / "score.safetensors", model, cfg, step=123, dataset_sha256=SHA)
    ckpt = load_score_checkpoint(tmp_path / "run", obs_dim=5, act_dim=3, dataset_sha256=SHA)  # a directory works
    assert ckpt.path == path
    assert ckpt.step == 123 and ckpt.dataset_sha256 == SHA
    assert ckpt.meta["obs_dim"] == 5 and ckpt.meta["act_dim"] == 3 and ckpt.meta["rvs"] is rvs
    assert config_to_dict(ckpt.config) == config_to_dict(cfg)
    loaded = ckpt.model
    assert loaded.rvs is rvs and loaded.default_w == 0.8 and not loaded.training
    own = model.state_dict()
    assert set(own) == set(loaded.state_dict()) and "obs_norm.mean" in own
    for k, v in own.items():
        torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0)
    s, a = torch.randn(7, 5), torch.rand(7, 3) * 2 - 1
    torch.testing.assert_close(loaded.score(s, a), model.score(s, a), rtol=0, atol=0)
    assert read_score_metadata(path)["step"] == 123


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"obs_dim": 6}, "obs_dim"), ({"act_dim": 2}, "act_dim"), ({"dataset_sha256": "cd" * 32}, "dataset_sha256")],
)
def test_mismatch_is_one_line_error(tmp_path, kwargs, field):
    model, cfg = _model()
    path = save_score_model(tmp_path / "score.safetensors", model, cfg, step=1, dataset_sha256=SHA)
    with pytest.raises(CheckpointError) as e:
        load_score_model(path, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and f": {field}: " in msg
    assert e.value.field == field


def test_corrupted_and_truncated_files(tmp_path):
    model, cfg = _model()
    path = save_score_model(tmp_path / "score.safetensors", model, cfg, step=1)
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    flipped = bytearray(data)
    flipped[8 + n + 100] ^= 0xFF  # one byte of tensor data
    bad = tmp_path / "flipped.safetensors"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError) as e:
        load_score_model(bad)
    assert e.value.field == "sha256" and "\n" not in str(e.value)
    short = tmp_path / "short.safetensors"
    short.write_bytes(bytes(data[: 8 + n + 50]))
    with pytest.raises(CheckpointError) as e:
        load_score_model(short)
    assert e.value.field == "tensors"
    with pytest.raises(CheckpointError) as e:
        load_score_model(tmp_path / "missing.safetensors")
    assert e.value.field == "file"
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x03\x00")
    with pytest.raises(CheckpointError) as e:
        load_score_model(junk)
    assert e.value.field == "header"


def test_metadata_tampering_is_caught(tmp_path):
    """Edits to the JSON that disagree with the tensors are rejected, naming the field."""
    model, cfg = _model()
    path = save_score_model(tmp_path / "score.safetensors", model, cfg, step=1)
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["smacrl"])

    def rewrite(name: str, **changes) -> object:
        m = {**meta, **changes}
        h = {**header, "__metadata__": {"smacrl": json.dumps(m)}}
        raw = json.dumps(h).encode()
        raw += b" " * (-len(raw) % 8)
        p = tmp_path / name
        p.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
        return p

    with pytest.raises(CheckpointError) as e:
        load_score_model(rewrite("hid.safetensors", config={**meta["config"], "hidden_dim": 64}))
    assert e.value.field.startswith("tensors.model.")
    with pytest.raises(CheckpointError) as e:
        load_score_model(rewrite("fmt.safetensors", format="smacrl.actor_critic"))
    assert e.value.field == "format"
    with pytest.raises(CheckpointError) as e:
        load_score_model(rewrite("cfg.safetensors", config={**meta["config"], "no_such_field": 1}))
    assert e.value.field == "config"
    with pytest.raises(CheckpointError) as e:
        load_score_model(rewrite("rvs.safetensors", rvs=False))
    assert e.value.field == "rvs"


def test_actor_critic_checkpoint_is_not_a_score_model(tmp_path):
    from smacrl.checkpoint import save_checkpoint
    from smacrl.nets import ActorCritic, ActorCriticSpec

    spec = ActorCriticSpec.from_config(make_config("smac", "cpu"), 5, [-1.0] * 3, [1.0] * 3)
    path = save_checkpoint(tmp_path / "ac.safetensors", ActorCritic(spec), algo="smac", step=0)
    with pytest.raises(CheckpointError) as e:
        load_score_model(path)
    assert e.value.field == "format" and "score model" in str(e.value)

import json
import os
import struct

import pytest
import torch

from smacrl.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from smacrl.errors import CheckpointError
from smacrl.nets import ActorCritic


def _trained_ac(spec, seed=0):
    torch.manual_seed(seed)
    ac = ActorCritic(spec)
    ac.obs_norm.set_stats(torch.tensor([0.1, -0.2, 0.3]), torch.tensor([1.5, 0.5, 2.0]))
    opt = torch.optim.Adam(list(ac.critic.parameters()) + list(ac.actor.parameters()), lr=1e-3)
    for _ in range(3):
        obs, act = torch.randn(8, 3), torch.rand(8, 2) * 2 - 1
        loss = ac.critic(obs, act).square().mean() - ac.actor.sample(obs)[1].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    ac.update_target(0.5)
    return ac, opt


def test_round_trip_is_bit_exact(tmp_path, small_spec):
    ac, opt = _trained_ac(small_spec)
    value = torch.nn.Linear(3, 1)
    path = save_checkpoint(
        tmp_path / "c.safetensors",
        ac,
        algo="iql",
        step=123,
        config={"kappa": 40.0, "hidden": [16, 16]},
        env_id="Pendulum-v1",
        extras={"value": value, "temperature": {"log_alpha": torch.tensor([0.25])}},
        optimizers={"main": opt},
    )
    ck = load_checkpoint(path)
    src, dst = ac.state_dict(), ck.actor_critic.state_dict()
    assert src.keys() == dst.keys()
    for k in src:
        assert src[k].dtype == dst[k].dtype
        assert torch.equal(src[k].view(torch.uint8), dst[k].view(torch.uint8)), k
    assert ck.algo == "iql" and ck.step == 123 and ck.meta["env_id"] == "Pendulum-v1"
    assert ck.config == {"kappa": 40.0, "hidden": [16, 16]}
    assert ck.meta["obs_norm"]["std"] == pytest.approx([1.5, 0.5, 2.0])
    assert ck.actor_critic.spec == small_spec
    for k, v in value.state_dict().items():
        assert torch.equal(ck.extras["value"][k], v)
    # "temperature" is what older versions named SAC's entropy coefficient: it is read as "ent_coef"
    assert set(ck.extras) == {"value", "ent_coef"}
    assert torch.equal(ck.extras["ent_coef"]["log_alpha"], torch.tensor([0.25]))
    # the optimizer resumes exactly: one more identical step from both gives identical weights
    ac2 = ck.actor_critic
    opt2 = torch.optim.Adam(list(ac2.critic.parameters()) + list(ac2.actor.parameters()), lr=1e-3)
    opt2.load_state_dict(ck.optimizers["main"])
    obs, act = torch.randn(8, 3), torch.rand(8, 2) * 2 - 1
    for model, o in ((ac, opt), (ac2, opt2)):
        o.zero_grad()
        model.critic(obs, act).square().mean().backward()
        o.step()
    for a, b in zip(ac.critic.parameters(), ac2.critic.parameters()):
        assert torch.equal(a, b)
    # same content -> same file bytes (deterministic serialization)
    path2 = save_checkpoint(tmp_path / "d.safetensors", ck.actor_critic, algo="iql", step=1)
    path3 = save_checkpoint(tmp_path / "e.safetensors", ck.actor_critic, algo="iql", step=1)
    assert path2.read_bytes() == path3.read_bytes()


def test_wrong_dims_is_one_line_error(tmp_path, small_spec):
    ac, _ = _trained_ac(small_spec)
    path = save_checkpoint(tmp_path / "c.safetensors", ac, algo="smac", step=0, env_id="Pendulum-v1")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, obs_dim=17)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "obs_dim" in msg and "17" in msg
    with pytest.raises(CheckpointError, match="act_dim"):
        load_checkpoint(path, obs_dim=3, act_dim=6)
    with pytest.raises(CheckpointError, match="env_id"):
        load_checkpoint(path, env_id="Hopper-v5")
    assert load_checkpoint(path, obs_dim=3, act_dim=2, env_id="Pendulum-v1").step == 0


@pytest.mark.parametrize("cut", [0, 5, 100, -50])
def test_truncated_file_is_one_line_error(tmp_path, small_spec, cut):
    ac, _ = _trained_ac(small_spec)
    path = save_checkpoint(tmp_path / "c.safetensors", ac, algo="smac", step=0)
    data = path.read_bytes()
    path.write_bytes(data[:cut] if cut >= 0 else data[:cut])
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_corrupted_tensor_bytes_caught_by_hash(tmp_path, small_spec):
    ac, _ = _trained_ac(small_spec)
    path = save_checkpoint(tmp_path / "c.safetensors", ac, algo="smac", step=0)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # flip bits inside the tensor data, header intact
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="header"):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")
    # a valid safetensors file that is not a smacrl checkpoint
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(CheckpointError, match="metadata.smacrl"):
        load_checkpoint(other)


def _rewrite_meta(path, **changes):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["smacrl"])
    meta.update(changes)
    header["__metadata__"]["smacrl"] = json.dumps(meta)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


def test_metadata_problems_name_the_field(tmp_path, small_spec):
    ac, _ = _trained_ac(small_spec)
    path = save_checkpoint(tmp_path / "c.safetensors", ac, algo="smac", step=0)
    _rewrite_meta(path, format_version=99)
    with pytest.raises(CheckpointError, match="format_version"):
        read_metadata(path)
    path = save_checkpoint(tmp_path / "d.safetensors", ac, algo="smac", step=0)
    nets = dict(read_metadata(path)["nets"], critic_hidden=[32, 32])
    _rewrite_meta(path, nets=nets)
    with pytest.raises(CheckpointError, match=r"tensors\.ac\.critic"):
        load_checkpoint(path)


def test_nan_weights_rejected(tmp_path, small_spec):
    ac, _ = _trained_ac(small_spec)
    with torch.no_grad():
        ac.actor.head.bias[0] = float("nan")
    path = save_checkpoint(tmp_path / "c.safetensors", ac, algo="smac", step=0)
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(path)


def test_failed_write_keeps_existing_file(tmp_path, small_spec, monkeypatch):
    ac, _ = _trained_ac(small_spec)
    path = save_checkpoint(tmp_path / "c.safetensors", ac, algo="smac", step=1)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, ac, algo="smac", step=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]  # no temp file left
    assert load_checkpoint(path).step == 1


def test_written_file_has_the_usual_mode(tmp_path, small_spec):
    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "c.safetensors", ActorCritic(small_spec), algo="smac", step=0)
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_actor_only_snapshot(tmp_path, small_spec):
    ac, _ = _trained_ac(small_spec)
    path = save_checkpoint(tmp_path / "a.safetensors", ac, algo="smac", step=5, actor_only=True)
    ck = load_checkpoint(path)
    assert ck.meta["actor_only"] is True
    names = set(ck.actor_critic.actor_state())
    for k, v in ac.actor_state().items():
        assert torch.equal(ck.actor_critic.state_dict()[k], v)
    assert names == set(ac.actor_state()) and not any(k.startswith("critic") for k in names)
    assert path.stat().st_size < save_checkpoint(tmp_path / "f.safetensors", ac, algo="smac", step=5).stat().st_size

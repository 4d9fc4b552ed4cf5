"""Replay buffers: dataset buffer, online ring buffer, mixed sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from smacrl.data import DatasetBuffer, MixedSampler, ReplayBuffer
from smacrl.data.dataset import build_dataset, episode_ids_from_ends


def _dataset(n=50, obs_dim=3, act_dim=2, mc=True):
    idx = np.arange(n, dtype=np.float64)
    obs = np.stack([idx] * obs_dim, 1)
    ends = np.zeros(n, bool)
    ends[9::10] = True
    return build_dataset(
        observations=obs,
        actions=np.full((n, act_dim), 0.5),
        rewards=idx,
        terminals=ends,
        timeouts=np.zeros(n, bool),
        next_observations=obs + 0.5,
        episode_ids=episode_ids_from_ends(ends),
        action_low=-np.ones(act_dim),
        action_high=np.ones(act_dim),
        mc_available=mc,
    )


def test_dataset_buffer_rows_stay_aligned():
    ds = _dataset()
    buf = DatasetBuffer(ds, generator=torch.Generator().manual_seed(0))
    assert len(buf) == len(ds) and set(buf.fields) >= {"obs", "actions", "rewards", "next_obs", "terminals", "w"}
    b = buf.sample(256)
    assert b["obs"].shape == (256, 3) and b["actions"].shape == (256, 2) and b["rewards"].shape == (256,)
    assert all(v.dtype == torch.float32 for v in b.values())
    i = b["obs"][:, 0]
    torch.testing.assert_close(b["rewards"], i)
    torch.testing.assert_close(b["next_obs"][:, 0], i + 0.5)
    torch.testing.assert_close(b["terminals"], ((i.long() % 10) == 9).float())
    torch.testing.assert_close(b["w"], torch.as_tensor(ds.w)[i.long()])
    torch.testing.assert_close(b["mc_returns"], torch.as_tensor(ds.mc_returns)[i.long()])
    assert len(torch.unique(i)) > 30  # random indices, not one row repeated


def test_dataset_buffer_without_mc_has_no_mc_field():
    buf = DatasetBuffer(_dataset(mc=False))
    assert "mc_returns" not in buf.sample(4)


def test_same_generator_seed_same_batch():
    ds = _dataset()
    a = DatasetBuffer(ds, generator=torch.Generator().manual_seed(3)).sample(32)
    b = DatasetBuffer(ds, generator=torch.Generator().manual_seed(3)).sample(32)
    torch.testing.assert_close(a, b)


def test_ring_buffer_wraps_and_keeps_newest():
    buf = ReplayBuffer(5, obs_dim=2, act_dim=1)
    with pytest.raises(RuntimeError):
        buf.sample(1)
    for t in range(3):
        buf.add(np.full(2, t), [0.0], float(t), np.full(2, t + 0.5), t == 2)
    assert len(buf) == 3 and buf.pos == 3
    rows = {
        "obs": torch.arange(3, 7).float()[:, None].repeat(1, 2),
        "actions": torch.zeros(4, 1),
        "rewards": torch.arange(3, 7).float(),
        "next_obs": torch.zeros(4, 2),
        "terminals": torch.zeros(4),
    }
    buf.add_batch(rows)  # 3 + 4 > 5: wraps
    assert len(buf) == 5 and buf.pos == 2
    assert sorted(buf.storage["rewards"].tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert buf.storage["terminals"][2].item() == 1.0  # row of t=2 survives
    buf.add_batch({k: torch.cat([v] * 3) for k, v in rows.items()})  # more rows than capacity
    assert len(buf) == 5 and sorted(buf.storage["rewards"].tolist()) == [3.0, 4.0, 5.0, 6.0, 6.0]
    s = buf.sample(64)
    assert set(s["rewards"].tolist()) <= {3.0, 4.0, 5.0, 6.0}
    with pytest.raises(KeyError):
        buf.add_batch({"obs": torch.zeros(1, 2)})


def test_mixed_sampler_fraction_and_common_fields():
    ds = _dataset()
    off = DatasetBuffer(ds)
    on = ReplayBuffer(100, 3, 2)
    mix = MixedSampler(off, on, fraction=0.25)
    b = mix.sample(40)  # online empty: all from the dataset
    assert b["obs"].shape == (40, 3) and "w" not in b
    on.add_batch(
        {
            "obs": torch.full((10, 3), -1.0),
            "actions": torch.zeros(10, 2),
            "rewards": torch.full((10,), -1.0),
            "next_obs": torch.zeros(10, 3),
            "terminals": torch.zeros(10),
        }
    )
    b = mix.sample(40)
    from_online = (b["rewards"] == -1.0).sum().item()
    assert from_online == 30 and set(b) == {"obs", "actions", "rewards", "next_obs", "terminals"}
    assert MixedSampler(off, on).sample(64)["rewards"].eq(-1.0).sum().item() == 32  # default f = 0.5
    with pytest.raises(ValueError):
        MixedSampler(off, on, fraction=1.5)

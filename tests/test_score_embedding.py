"""The step embedding (float arithmetic, distinct per step) and the cosine noise schedule."""

from __future__ import annotations

import math

import torch

from smacrl.configs import make_config
from smacrl.score import ScoreModel, SinusoidalEmbedding, cosine_alpha_bar


def test_embedding_distinct_and_not_collapsed():
    emb = SinusoidalEmbedding(64)
    k = torch.arange(1, 33)
    e = emb(k)
    assert e.shape == (32, 64) and e.dtype == torch.float32
    # Integer and float steps give the same embedding (k is converted to float first).
    torch.testing.assert_close(e, emb(k.float()))
    # Distinct steps are well separated ...
    dist = torch.cdist(e, e) + torch.eye(32) * 1e9
    assert dist.min() > 0.5
    # ... and the embedding uses many directions. With frequencies cast to an integer dtype all but
    # the first would be 0, leaving only sin(k), cos(k) varying: centred rank 2.
    assert torch.linalg.matrix_rank(e - e.mean(0)) >= 8
    freqs_as_int = emb.freqs.long().float()
    collapsed = torch.cat([torch.sin(k[:, None] * freqs_as_int), torch.cos(k[:, None] * freqs_as_int)], -1)
    assert torch.linalg.matrix_rank(collapsed - collapsed.mean(0)) <= 2


def test_embedding_known_values_and_fractional_steps():
    emb = SinusoidalEmbedding(8, max_period=10_000.0)
    k = torch.tensor([3.0])
    f = torch.tensor([10_000.0 ** (-i / 4) for i in range(4)])
    ref = torch.cat([torch.sin(3.0 * f), torch.cos(3.0 * f)])
    torch.testing.assert_close(emb(k)[0], ref)
    # A fractional step differs from both neighbours (it is not rounded to an integer).
    e = emb(torch.tensor([1.0, 1.5, 2.0]))
    assert (e[1] - e[0]).norm() > 1e-3 and (e[1] - e[2]).norm() > 1e-3


def test_network_output_depends_on_step():
    torch.manual_seed(0)
    model = ScoreModel(3, 2, make_config("score", "cpu")).eval()
    s, a = torch.randn(16, 3), torch.randn(16, 2)
    e1, e2, e32 = (model.eps(a, k, s) for k in (1, 2, 32))
    assert (e1 - e2).abs().max() > 1e-4 and (e1 - e32).abs().max() > 1e-4


def test_cosine_schedule_known_values():
    K, s = 32, 0.008
    ab = cosine_alpha_bar(K, s)
    f = [math.cos((k / K + s) / (1 + s) * math.pi / 2) ** 2 for k in range(K + 1)]
    # Below the beta clip (only the last step reaches it) alpha_bar is exactly f(k) / f(0).
    for k in range(K):
        assert abs(float(ab[k]) - f[k] / f[0]) < 1e-12
    assert float(ab[0]) == 1.0
    assert (ab[1:] < ab[:-1]).all()
    assert abs(math.sqrt(1 - float(ab[1])) - 0.05983) < 1e-4  # sigma_1, the score's noise level
    betas = 1 - ab[1:] / ab[:-1]
    assert float(betas.max()) <= 0.999 + 1e-12
    model = ScoreModel(3, 2, make_config("score", "cpu"))
    assert model.n_steps == 32
    torch.testing.assert_close(model.sigma, (1 - ab).sqrt().float())

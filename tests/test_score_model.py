"""The score model against known densities: trained score vs the analytic score, sign, sampler.

Synthetic state-conditioned data: ``s ~ U[-1, 1]^2`` and, given a binary return label ``w``,
``a ~ N(m_w(s), STD^2 I)`` with ``m_w(s) = 0.3 s + (2w - 1) d`` (two modes, picked by ``w``). At step
``k`` the noised density is ``N(sqrt(ab_k) m_w(s), (ab_k STD^2 + sigma_k^2) I)``, whose score is the
reference.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from smacrl.configs import make_config
from smacrl.score import ScoreModel, train_score_model

STD = 0.12
D = torch.tensor([0.45, -0.45])


def mode(s: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return 0.3 * s + (2 * w.reshape(-1, 1) - 1) * D


def noised_var(model: ScoreModel, k: int) -> float:
    return float(model.alpha_bar[k]) * STD**2 + float(model.sigma[k]) ** 2


def analytic_score(model: ScoreModel, s, a, w, k: int = 1) -> torch.Tensor:
    mu = float(model.sqrt_alpha_bar[k]) * mode(s, w)
    return -(a - mu) / noised_var(model, k)


def draw_noised(model: ScoreModel, s, w, k: int = 1) -> torch.Tensor:
    mu = float(model.sqrt_alpha_bar[k]) * mode(s, w)
    return mu + math.sqrt(noised_var(model, k)) * torch.randn_like(mu)


def log_density(a, s, w) -> torch.Tensor:
    """log N(a; m_w(s), STD^2 I), up to a constant."""
    return -0.5 * ((a - mode(s, w)) ** 2).sum(-1) / STD**2


def _cfg(rvs: bool, steps: int):
    return make_config(
        "score",
        "cpu",
        hidden_dim=64,
        n_blocks=2,
        cond_hidden=(64, 64),
        steps=steps,
        batch_size=256,
        lr=1e-3,
        dropout=0.0,
        ema_decay=0.99,
        log_every=steps,
        rvs=rvs,
    )


@pytest.fixture(scope="module")
def mixture_model():
    """RvS model on the two-mode data; w in {0, 1} picks the mode."""
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    n = 4096
    s = torch.rand(n, 2, generator=g) * 2 - 1
    w = (torch.rand(n, generator=g) < 0.5).float()
    a = mode(s, w) + STD * torch.randn(n, 2, generator=g)
    torch.manual_seed(0)
    return train_score_model(s, a, w, _cfg(True, 1200), progress=False, generator=g)


@pytest.fixture(scope="module")
def gaussian_model():
    """Unconditional (rvs=False) model on single-mode Gaussian data (the w = 1 mode only)."""
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    n = 4096
    s = torch.rand(n, 2, generator=g) * 2 - 1
    a = mode(s, torch.ones(n)) + STD * torch.randn(n, 2, generator=g)
    torch.manual_seed(1)
    return train_score_model(s, a, None, _cfg(False, 1000), progress=False, generator=g)


def _cosines(model, w_value: float, n: int = 2000, seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    s = torch.rand(n, 2) * 2 - 1
    w = torch.full((n,), w_value)
    a = draw_noised(model, s, w)
    est = model.score(s, a, w, k=1)
    ref = analytic_score(model, s, a, w)
    return F.cosine_similarity(est, ref, dim=-1), est.norm(dim=-1) / ref.norm(dim=-1)


@pytest.mark.parametrize("w_value", [1.0, 0.0])
def test_rvs_score_matches_noised_analytic_score(mixture_model, w_value):
    cos, ratio = _cosines(mixture_model.model, w_value)
    print(f"w={w_value}: mean cosine {cos.mean():.4f}, median |est|/|ref| {ratio.median():.3f}")
    assert cos.mean() >= 0.9
    assert (cos > 0).float().mean() >= 0.95
    # The scale convention (-eps_hat / sigma_k) makes the magnitude match too, not just the direction.
    assert 0.75 <= ratio.median() <= 1.33


def test_unconditional_score_matches_and_ignores_w(gaussian_model):
    model = gaussian_model.model
    assert not model.rvs
    cos, ratio = _cosines(model, 1.0, seed=6)
    print(f"rvs=False: mean cosine {cos.mean():.4f}, median |est|/|ref| {ratio.median():.3f}")
    assert cos.mean() >= 0.9
    assert 0.75 <= ratio.median() <= 1.33
    s, a = torch.zeros(8, 2), torch.rand(8, 2) * 2 - 1
    torch.testing.assert_close(model.score(s, a, 0.0), model.score(s, a, 1.0))


def test_w_selects_the_mode(mixture_model):
    model = mixture_model.model
    torch.manual_seed(7)
    n = 1000
    s = torch.rand(n, 2) * 2 - 1
    one, zero = torch.ones(n), torch.zeros(n)
    m1, m0 = mode(s, one), mode(s, zero)
    # From the w=0 mode and from the midpoint, the w=1 score points toward the w=1 mode ...
    for a in (m0, 0.5 * (m0 + m1)):
        toward_1 = F.cosine_similarity(model.score(s, a, one), m1 - a, dim=-1)
        assert (toward_1 > 0.5).float().mean() >= 0.95
    # ... and the w=0 score at the w=1 mode points back toward the w=0 mode.
    toward_0 = F.cosine_similarity(model.score(s, m1, zero), m0 - m1, dim=-1)
    assert (toward_0 > 0.5).float().mean() >= 0.95
    # The default inference w is 1.0.
    torch.testing.assert_close(model.score(s, m0), model.score(s, m0, one))


@pytest.mark.parametrize("where", ["data", "uniform"])
def test_score_step_raises_log_density(gaussian_model, where):
    model = gaussian_model.model
    torch.manual_seed(8)
    n = 2000
    s = torch.rand(n, 2) * 2 - 1
    one = torch.ones(n)
    a = mode(s, one) + STD * torch.randn(n, 2) if where == "data" else torch.rand(n, 2) * 2 - 1
    eta = 1e-3
    before, after = log_density(a, s, one), log_density(a + eta * model.score(s, a), s, one)
    assert (after > before).float().mean() >= 0.95
    assert (after - before).mean() > 0
    # Moving against the score lowers it: the sign is not an accident of symmetry.
    against = log_density(a - eta * model.score(s, a), s, one)
    assert (against < before).float().mean() >= 0.95


class _ExactEps(nn.Module):
    """The optimal noise predictor for a ~ N(mu(cond), std^2 I), mu = 0.5 * cond[:, :act_dim]."""

    def __init__(self, model: ScoreModel, std: float):
        super().__init__()
        self.m, self.std = model, std

    def forward(self, a_k, k, cond):
        mu = 0.5 * cond[:, : a_k.shape[1]]
        ab, sig = self.m.alpha_bar[k, None], self.m.sigma[k, None]
        var = ab * self.std**2 + sig**2
        return sig * (a_k - ab.sqrt() * mu) / var


def test_score_convention_is_minus_eps_over_sigma():
    """With the exact noise predictor plugged in, score() equals the analytic score at every k."""
    cfg = make_config("score", "cpu")
    model = ScoreModel(3, 2, cfg)
    std = 0.2
    model.net = _ExactEps(model, std)
    s, a = torch.randn(64, 3), torch.rand(64, 2) * 4 - 2  # includes actions far outside the data
    cond = torch.cat([s, torch.ones(64, 1)], -1)  # default obs stats are identity, w = 1
    for k in (1, 2, 10, 32):
        ab, sig2 = float(model.alpha_bar[k]), float(model.sigma[k]) ** 2
        ref = -(a - math.sqrt(ab) * 0.5 * cond[:, :2]) / (ab * std**2 + sig2)
        torch.testing.assert_close(model.score(s, a, k=k), ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError):
        model.score(s, a, k=0)


def _ddpm_chain_moments(model: ScoreModel, mu: float, std: float) -> tuple[float, float]:
    """Exact mean/std of DDPM ancestral sampling (posterior variance beta_tilde, x_K ~ N(0, 1), no noise on the
    last step) for 1-d data N(mu, std^2) and the exact noise predictor: every step is affine in x_k plus
    Gaussian noise, so the moments follow a scalar recursion."""
    ab = [float(x) for x in model.alpha_bar.double()]
    m, v = 0.0, 1.0
    for k in range(model.n_steps, 0, -1):
        a, ap = ab[k], ab[k - 1]
        beta, sig2 = 1 - a / ap, 1 - a
        var = a * std**2 + sig2
        # x0_hat = (x - sig2 * (x - sqrt(a) mu) / var) / sqrt(a) = g * x + h
        g, h = (1 - sig2 / var) / math.sqrt(a), sig2 * mu / var
        c0, ck = math.sqrt(ap) * beta / sig2, (1 - ap) * math.sqrt(1 - beta) / sig2
        m, v = c0 * (g * m + h) + ck * m, (c0 * g + ck) ** 2 * v + (beta * (1 - ap) / sig2 if k > 1 else 0.0)
    return m, math.sqrt(v)


def test_sampler_matches_exact_ddpm_chain():
    """With the exact noise predictor, samples have the moments of the exact DDPM chain for N(mu(s), std^2).

    (At K = 32 the beta_tilde posterior variance makes DDPM samples ~20% narrower than the data for a
    narrow Gaussian; the recursion accounts for that, and the mean is recovered.)
    """
    torch.manual_seed(9)
    cfg = make_config("score", "cpu")
    model = ScoreModel(2, 2, cfg)
    std = 0.15
    model.net = _ExactEps(model, std)
    s = torch.tensor([[0.6, -0.8]]).expand(20_000, 2)
    x = model.sample(s, w=1.0)
    assert x.abs().max() <= 1.0
    for i, mu in enumerate((0.3, -0.4)):
        m, sd = _ddpm_chain_moments(model, mu, std)
        assert abs(m - mu) < 1e-3
        assert abs(float(x[:, i].mean()) - m) < 0.006
        assert abs(float(x[:, i].std()) - sd) < 0.004
    assert 0.1 < sd < std


def test_trained_sampler_follows_w(mixture_model):
    model = mixture_model.model
    torch.manual_seed(10)
    n = 1000
    s = torch.rand(n, 2) * 2 - 1
    for w_value in (1.0, 0.0):
        w = torch.full((n,), w_value)
        x = model.sample(s, w)
        assert x.abs().max() <= 1.0
        d_own = (x - mode(s, w)).norm(dim=-1)
        d_other = (x - mode(s, 1 - w)).norm(dim=-1)
        assert (d_own < d_other).float().mean() >= 0.95
        assert d_own.median() < 3 * STD


def test_training_lowers_the_loss(mixture_model):
    model = mixture_model.raw
    torch.manual_seed(11)
    s = torch.rand(4096, 2) * 2 - 1
    w = (torch.rand(4096) < 0.5).float()
    a = mode(s, w) + STD * torch.randn(4096, 2)
    fresh = ScoreModel(2, 2, _cfg(True, 1))
    fresh.set_obs_stats(model.obs_norm.mean, model.obs_norm.std)
    g = torch.Generator().manual_seed(0)
    trained_loss = model.loss(s, a, w, generator=g)
    g = torch.Generator().manual_seed(0)
    fresh_loss = fresh.eval().loss(s, a, w, generator=g)
    assert trained_loss < 0.6 * fresh_loss
    assert mixture_model.steps == 1200 and mixture_model.steps_per_second > 0


# ----------------------------------------------------------------------------- the EMA and its warm-up
def _init_share(steps: int, decay: float) -> float:
    """The weight the EMA's result keeps on the initialisation after ``steps`` updates, by running the
    update itself on a parameter that is 1 at init and 0 in every later iterate."""
    from smacrl.score.train import ema_update

    ema, live = [torch.ones(())], [torch.zeros(())]
    for n in range(1, steps + 1):
        ema_update(ema, live, n, decay)
    return ema[0].item()


def test_ema_forgets_the_initialisation_at_every_preset_budget():
    from smacrl.configs.presets import PRESET_NAMES
    from smacrl.score.train import ema_decay_at

    budgets = {make_config("score", p).steps for p in PRESET_NAMES}
    decays = {make_config("score", p).ema_decay for p in PRESET_NAMES}
    for decay in decays:
        # the share only falls with more steps (every factor is < 1), so checking every budget up to
        # 20,000 steps and the smallest larger one covers all of them
        shares = [_init_share(n, decay) for n in (1, 2, 3, 4)]
        assert shares == sorted(shares, reverse=True) and shares[-1] < 0.01, shares
        for steps in sorted(budgets):
            share = _init_share(min(steps, 20_000), decay)
            assert share < 0.01, (steps, share)
        # the ramp ends at the configured decay
        assert ema_decay_at(10**7, decay) == decay and ema_decay_at(1, decay) < 0.5
    # without a warm-up, 3,000 steps at 0.9995 kept 22% of the initialisation
    assert abs(0.9995**3000 - 0.223) < 1e-3


def test_trained_ema_model_has_moved_away_from_its_initialisation(tmp_path):
    """The returned (EMA) weights after a short run sit near the trained iterate, not at the random init:
    with the old constant decay of 0.9995 they moved about 1% of the way after 30 steps."""
    torch.manual_seed(0)
    s = torch.rand(512, 2) * 2 - 1
    w = (torch.rand(512) > 0.5).float()
    a = (mode(s, w) + STD * torch.randn(512, 2)).clamp(-1, 1)
    cfg = _cfg(True, 30)
    cfg = type(cfg)(**{**cfg.__dict__, "ema_decay": 0.9995})
    torch.manual_seed(1)
    init = ScoreModel(2, 2, cfg)
    torch.manual_seed(1)
    result = train_score_model(s, a, w, cfg, progress=False)
    p0 = torch.cat([p.flatten() for p in init.parameters()])
    p_ema = torch.cat([p.flatten() for p in result.model.parameters()])
    p_raw = torch.cat([p.flatten() for p in result.raw.parameters()])
    moved = ((p_ema - p0).norm() / (p_raw - p0).norm()).item()
    assert moved > 0.5, moved


def test_score_cache_key_is_versioned_and_old_models_are_retrained(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from smacrl.score.cache import ensure_score_model, score_cache_dir
    from smacrl.score.checkpoint import read_score_metadata, save_score_model
    from smacrl.score.train import CHECKPOINT_NAME, TRAINING_VERSION

    monkeypatch.setenv("SMACRL_CACHE", str(tmp_path))
    folder = score_cache_dir("ab" * 32, "cpu", True)
    assert folder.name.endswith(f"-v{TRAINING_VERSION}")
    torch.manual_seed(0)
    n = 64
    ds = SimpleNamespace(
        sha256="ab" * 32, observations=torch.randn(n, 2), actions=torch.rand(n, 2) * 2 - 1, w=torch.rand(n),
        obs_mean=torch.zeros(2), obs_std=torch.ones(2), obs_dim=2, act_dim=2, source="toy", task=None,
    )  # fmt: skip
    cfg = make_config("score", "cpu", steps=5)
    # a model in the cache's place that does not record this training version (as older code wrote it)
    save_score_model(folder / CHECKPOINT_NAME, ScoreModel(2, 2, cfg), cfg, step=10**6, dataset_sha256=ds.sha256)
    _, path = ensure_score_model(ds, "cpu", steps=5, progress=False)
    meta = read_score_metadata(path)
    assert meta["step"] == 5 and meta["info"]["training_version"] == TRAINING_VERSION  # retrained, not reused
    mtime = path.stat().st_mtime_ns
    ensure_score_model(ds, "cpu", steps=5, progress=False)
    assert path.stat().st_mtime_ns == mtime  # a current model is reused


def test_ema_update_records_no_autograd_history():
    from smacrl.score.train import ema_update

    ema, live = [torch.zeros(3)], [torch.ones(3, requires_grad=True)]
    ema_update(ema, live, 1, 0.9995)
    assert ema[0].grad_fn is None and not ema[0].requires_grad

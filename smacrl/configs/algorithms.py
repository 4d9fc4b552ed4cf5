"""One typed config per algorithm. Defaults are the paper's locomotion column (tables 6-10)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from smacrl.configs.base import Activation, OfflineConfig, OnlineConfig, Reduction, RunOptions
from smacrl.errors import ConfigError


# ----------------------------------------------------------------------------- score model (table 6)
@dataclasses.dataclass
class ScoreConfig(RunOptions):
    """RvS-conditioned DDPM of the dataset's actions (IDQL-style residual MLP)."""

    time_emb_dim: int = 64
    """Width of the diffusion-step embedding."""
    obs_emb_dim: int = 64
    """Output width of the condition network on [s, w] ("condition out dim")."""
    hidden_dim: int = 512
    """Width of the residual trunk of the noise network."""
    n_blocks: int = 3
    """Residual blocks in the trunk."""
    cond_hidden: tuple[int, ...] = (512, 512, 512)
    """Hidden widths of the condition network on [s, w]."""
    dropout: float = 0.1
    """Dropout inside each residual block (off in the EMA model used for scores)."""
    diffusion_steps: int = 32
    """K, the number of noising steps."""
    cosine_s: float = 0.008
    """Offset s of the cosine noise schedule."""
    steps: int = 1_000_000
    """Training steps."""
    batch_size: int = 512
    """Transitions per training step."""
    lr: float = 3e-4
    """AdamW learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    ema_decay: float = 0.9995
    """Decay of the weight average that is saved and used, reached after a warm-up."""
    rvs: bool = True
    """Condition on the normalized trajectory return w; --no-rvs trains the unconditional model."""
    rvs_w: float = 1.0
    """The w used at inference."""
    checkpoint_every: int = 100_000
    """Steps between checkpoints of the EMA model."""
    heldout_fraction: float = 0.05
    """Share of the transitions (at most 10,000) kept out of training to report score/heldout_loss, the
    denoising loss of the EMA model on data it never saw; 0 trains on everything."""


# ----------------------------------------------------------------------------- SMAC (table 7)
@dataclasses.dataclass
class SMACConfig(OfflineConfig):
    actor_hidden: tuple[int, ...] = (512, 512, 512)
    """Policy hidden widths (table 7)."""
    critic_hidden: tuple[int, ...] = (512, 512, 512)
    """Critic hidden widths (table 7)."""
    critic_activation: Activation = "tanh"
    """Critic hidden activation: tanh in table 7 (smooth, so grad_a Q is)."""
    ensemble_size: int = 10
    """Critics in the ensemble; every member is score-matched."""
    optimizer: Literal["muon", "adam"] = "muon"
    """muon (Muon on hidden matrices, AdamW on the rest) or adam, the appendix I ablation."""
    kappa: float = 40.0
    """Weight of the score-matching loss L_SM in the critic loss."""
    alpha_hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the alpha_psi(s) network (table 7)."""
    alpha_activation: Activation = "relu"
    """Hidden activation of the alpha_psi(s) network."""
    alpha_lr: float = 1e-4
    """Learning rate of the alpha_psi(s) network."""
    alpha_param: Literal["softplus", "linear", "temperature"] = "softplus"
    """How alpha_psi(s) is read off its network: softplus(out) > 0, or the plain output (linear) as the
    paper writes it. Softplus makes alpha -> 0 one-way: far below 0 its input has no gradient.
    "temperature" learns no alpha_psi: it is SAC's entropy coefficient (detached), the constant of the
    identity grad_a Q = alpha_ent grad_a log pi (equation 1), so L_SM cannot pull it to 0."""
    alpha_init: float | None = None
    """alpha_psi(s) at initialisation, set through the output bias (None: the layer's default, which
    gives about 0.69 under softplus and about 0 under linear)."""
    alpha_min: float = 0.0
    """A floor added to alpha_psi(s), so it cannot reach L_SM's trivial minimum (alpha = 0 with a flat
    critic); not in the paper. alpha_init, when set, includes it."""
    score_target: Literal["score", "eps"] = "score"
    """What L_SM matches grad_a Q to: the score -eps_hat/sigma_k (units 1/action, |score| ~ 1/sigma_1 ~ 16
    near the data), or the noise prediction at the paper's scale, -eps_hat = sigma_k * score (|eps| ~ 1),
    as section 6.2 writes L_SM. The two differ by the constant sigma_k, which sets the scale alpha_psi
    must reach."""
    score_free: bool = False
    """Ablation: alpha_psi = 0, so L_SM = sum_e ||grad_a Q_e||^2 (a pure action-gradient penalty) and no
    score model is used."""
    td_entropy: bool = False
    """Subtract alpha_ent * log pi(a'|s') in the TD target (SAC's soft backup). Off: the paper's L^AC
    (section 6.2) has no entropy term; measured no worse (docs/smac_readings.md)."""
    target_entropy_scale: float = -1.0
    """Offline SAC target entropy = scale * |A|: -|A|, as for CQL. Table 7's -10 |A| sits among the
    online values and is the online SAC's (the smac registration's online_defaults); measured no
    different offline at the cpu budget (docs/smac_readings.md)."""
    ent_coef_lr: float = 3e-4
    """Learning rate of log alpha_ent, SAC's entropy coefficient."""
    init_ent_coef: float = 1.0
    """Initial SAC entropy coefficient alpha_ent."""
    target_reduction: Reduction = "min"
    """How the TD target reduces the critic ensemble: min over all members, mean, or redq (min of a
    random pair)."""
    score_w: float = 1.0
    """RvS condition w at which the score is evaluated (table 6: 1.0, the data's best trajectory)."""
    score_w_quantile: float | None = None
    """Evaluate the score at this quantile of the data's w over its transitions instead of at score_w:
    0.9 gives 1.0 on the point maze, where most transitions succeed, and 0.51 on the pendulum, where only
    1.5% of the transitions carry w = 1 (docs/smac_readings.md). None: score_w."""
    score_k: int = 1
    """Diffusion step at which the score is evaluated (1 = least noised)."""
    rvs: bool = True
    """Use the return-conditioned score model (--no-rvs: the unconditional one, appendix E)."""
    score_model: str | None = None
    """A trained score model directory or file; None: reuse the cache's model of this dataset (matched by
    content hash) or train one (smacrl/score/cache.py)."""
    score_steps: int | None = None
    """Training steps of a score model trained for this run (None: the preset's)."""

    def __post_init__(self) -> None:
        if self.score_w_quantile is not None and not 0.0 < self.score_w_quantile <= 1.0:
            raise ConfigError(
                "--score-w-quantile", "score_w_quantile", f"must be in (0, 1], got {self.score_w_quantile}"
            )
        if self.score_w_quantile is not None and not self.rvs:
            raise ConfigError(
                "--score-w-quantile", "score_w_quantile", "has no effect on the unconditional score model (--no-rvs)"
            )
        if self.alpha_min < 0:
            raise ConfigError("--alpha-min", "alpha_min", f"must be >= 0, got {self.alpha_min}")
        if self.alpha_param == "temperature" and self.alpha_init is not None:
            raise ConfigError(
                "--alpha-init",
                "alpha_init",
                "has no effect under --alpha-param temperature (alpha_psi starts at --init-ent-coef)",
            )
        if self.alpha_param == "softplus" and self.alpha_init is not None and self.alpha_init <= self.alpha_min:
            raise ConfigError(
                "--alpha-init",
                "alpha_init",
                f"must be > alpha_min ({self.alpha_min}) under softplus, got {self.alpha_init}",
            )


# ----------------------------------------------------------------------------- IQL (table 8)
@dataclasses.dataclass
class IQLConfig(OfflineConfig):
    actor_hidden: tuple[int, ...] = (256, 256)
    """Policy hidden widths (table 8)."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """Q network hidden widths (table 8)."""
    tanh_squash: bool = False
    """Squash the Gaussian policy with tanh (table 8: no)."""
    state_dependent_std: bool = False
    """Let the policy's std depend on the state (table 8: a free parameter)."""
    ensemble_size: int = 2
    """Q networks (IQL's two)."""
    batch_size: int = 256
    """Offline transitions per update."""
    value_hidden: tuple[int, ...] = (256, 256)
    """V network hidden widths (table 8)."""
    value_lr: float = 3e-4
    """Learning rate of V."""
    expectile: float = 0.9
    """tau of the expectile regression of V toward Q."""
    beta: float = 1.0
    """Inverse temperature of the policy extraction: the weights are exp(beta * A) (table 8's beta;
    the online AWR divides by its awr_temperature instead)."""
    max_weight: float = 100.0
    """Clip of the policy-extraction weights exp(beta A)."""


# ----------------------------------------------------------------------------- CQL / Cal-QL (table 9)
@dataclasses.dataclass
class CQLConfig(OfflineConfig):
    actor_hidden: tuple[int, ...] = (512, 512)
    """Policy hidden widths (table 9)."""
    critic_hidden: tuple[int, ...] = (512, 512, 512)
    """Critic hidden widths (table 9)."""
    ensemble_size: int = 10
    """Critics in the ensemble."""
    cql_alpha: float = 5.0
    """Weight of the conservative term (logsumexp of Q over sampled actions minus Q on data)."""
    n_actions: int = 10
    """Sampled actions per state (uniform, pi(s), pi(s')) for the logsumexp."""
    cql_temperature: float = 1.0
    """Temperature of CQL's logsumexp over sampled actions (not SAC's entropy coefficient)."""
    calibrated: bool = False
    """Cal-QL: bound the pushed-down Q by the Monte-Carlo return V^MC(s)."""
    target_entropy_scale: float = -1.0
    """Offline SAC target entropy = scale * |A|: -|A| as in CQL and Cal-QL. Table 9's -10 |A| is the
    online SAC's (the cql registration's online_defaults)."""
    ent_coef_lr: float = 3e-4
    """Learning rate of log alpha_ent, SAC's entropy coefficient."""
    init_ent_coef: float = 1.0
    """Initial SAC entropy coefficient alpha_ent."""
    target_reduction: Reduction = "min"
    """How the TD target reduces the critic ensemble: min, mean or redq."""


# ----------------------------------------------------------------------------- TD3+BC (table 10)
@dataclasses.dataclass
class TD3BCConfig(OfflineConfig):
    actor_hidden: tuple[int, ...] = (512, 512)
    """Policy hidden widths (table 10)."""
    critic_hidden: tuple[int, ...] = (512, 512, 512)
    """Critic hidden widths (table 10)."""
    ensemble_size: int = 10
    """Critics in the ensemble."""
    batch_size: int = 32
    """Offline transitions per update."""
    bc_weight: float = 2.0
    """Weight beta of ||pi(s) - a||^2 against the normalized Q term."""
    policy_noise: float = 0.2
    """Std of TD3's target-policy smoothing noise."""
    noise_clip: float = 0.5
    """Clip of the target-policy smoothing noise."""
    policy_delay: int = 2
    """Critic updates per actor update."""
    target_reduction: Reduction = "min"
    """How the TD target reduces the critic ensemble: min, mean or redq."""


# ----------------------------------------------------------------------------- online algorithms
@dataclasses.dataclass
class SACConfig(OnlineConfig):
    target_entropy_scale: float = -10.0
    """Target entropy = scale * |A|; set per offline algorithm from tables 7-10."""
    ent_coef_lr: float = 3e-4
    """Learning rate of log alpha_ent, SAC's entropy coefficient."""
    init_ent_coef: float = 1.0
    """Initial entropy coefficient alpha_ent when the checkpoint carries none (IQL, TD3+BC), or always
    with --no-ent-coef-from-checkpoint."""
    td_entropy: bool = True
    """Subtract alpha_ent * log pi(a'|s') in the TD target (SAC's soft backup). Off: the plain target, as
    RLPD's recipe for sparse binary tasks runs SAC (backup_entropy=False). Where an episode terminates at
    its goal, a positive per-step entropy bonus can outweigh the goal's reward (docs/smac_readings.md)."""
    ent_coef_from_checkpoint: bool = True
    """Start from the entropy coefficient the offline checkpoint hands over (SMAC, CQL). False starts
    every run from init_ent_coef: the matched-temperature control, where each offline algorithm's SAC
    begins at the same temperature."""
    score_matching_kappa: float = 0.0
    """Keep SMAC's kappa * L_SM in the online critic at this weight, with alpha_psi frozen at the SMAC
    checkpoint's, over dataset and replay states alike. 0: the paper's SAC, without it. Not in the paper,
    which fine-tunes with plain SAC (section 7); a diagnostic of what the offline regularizer holds up."""
    score_matching_alpha: Literal["checkpoint", "zero"] = "checkpoint"
    """alpha_psi of the kept L_SM: the SMAC checkpoint's (frozen), or zero, which leaves the penalty
    kappa ||grad_a Q||^2 alone, needs no score model and fits any checkpoint (the control for baselines)."""

    def __post_init__(self) -> None:
        if self.score_matching_kappa < 0:
            raise ConfigError(
                "--score-matching-kappa", "score_matching_kappa", f"must be >= 0, got {self.score_matching_kappa}"
            )


@dataclasses.dataclass
class TD3Config(OnlineConfig):
    exploration_noise: float = 0.1
    """Std of the Gaussian noise added to actions when acting online."""
    policy_noise: float = 0.2
    """Std of TD3's target-policy smoothing noise."""
    noise_clip: float = 0.5
    """Clip of the target-policy smoothing noise."""
    policy_delay: int = 2
    """Critic updates per actor update."""


@dataclasses.dataclass
class TD3BCOnlineConfig(TD3Config):
    bc_weight: float = 5.0
    """Weight of the BC term; set per offline algorithm from tables 7-10."""


@dataclasses.dataclass
class AWRConfig(OnlineConfig):
    awr_temperature: float = 0.4
    """Advantage weights are exp(A / awr_temperature), clipped at max_weight; set per offline algorithm
    from tables 7-10."""
    max_weight: float = 100.0
    """Clip of the advantage weights."""
    value_samples: int = 4
    """Policy samples per state for V(s) = E_pi[Q(s, a)] in the advantage."""

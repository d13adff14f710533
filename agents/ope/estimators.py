r"""The estimators: IPS (optionally clipped), SNIPS, the direct method and doubly robust.

Each fills in :meth:`~rec_env.agents.ope.base.OffPolicyEstimator._terms`, its per-row terms;
the base class (:mod:`rec_env.agents.ope.base`) supplies the validation, the bootstrap interval
and the diagnostics. The notation is that of :mod:`rec_env.agents.ope.base`. The variants of
doubly robust (SNDR, Switch-DR, DRos) are in :mod:`rec_env.agents.ope.doubly_robust`.

The interval of the estimators with a reward model (``interval`` on the result):

* the direct method refits (cross-fits) its reward model inside every bootstrap replicate by
  default (``refit_bootstrap=True``, :mod:`rec_env.agents.ope.refit`): its error *is* the
  model's error, and a bootstrap that holds the model fixed is many times too narrow (14 times,
  covering the truth 16 % of the time instead of 94 %, in ``benchmarks/ope_coverage.py``);
  so do Switch-DR and DRos, which leave large-weight rows to the model;
* DR and SNDR hold the cross-fitted model fixed by default
  (``refit_bootstrap=False``, one replicate costs a matrix product): with cross-fitting, the
  model's estimation error enters DR only through products of the model's and the
  propensities' errors, which vanish faster than :math:`1/\sqrt n` (Chernozhukov et al. 2018),
  so the fixed-model bootstrap is asymptotically valid. ``refit_bootstrap=True`` refits for DR
  too (``benchmarks/ope_coverage.py`` measures both);
* reward estimates given by the caller cannot be refitted: the interval then holds them fixed
  (``interval="bootstrap_fixed_model"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rec_env.agents.ope.base import OffPolicyEstimator, OPEResult, check_target_probabilities
from rec_env.agents.ope.bootstrap import bootstrap_sums
from rec_env.agents.ope.refit import refit_bootstrap_sums
from rec_env.agents.ope.reward_models import RewardEstimator, cross_fitted_rewards
from rec_env.datasets.logged import LoggedBanditData

__all__ = [
    "ESTIMATORS",
    "DirectMethod",
    "DoublyRobust",
    "InverseProbabilityWeighting",
    "SelfNormalizedIPS",
    "evaluate_policy",
]


@dataclass(kw_only=True)
class InverseProbabilityWeighting(OffPolicyEstimator):
    r"""Inverse probability weighting (IPS), with optional weight clipping.

    .. math::

        \hat V_{\mathrm{IPS}} = \frac{1}{n} \sum_{i=1}^n \min(w_i, M)\, r_i,
        \qquad w_i = \frac{\pi(a_i \mid x_i)}{\mu(a_i \mid x_i)}.

    Unbiased without clipping (:math:`M = \infty`) when :math:`\mu(a \mid x) > 0` wherever
    :math:`\pi(a \mid x) > 0`; clipping trades a downward bias (for non-negative rewards) for
    less variance. The weight diagnostics describe the clipped weights
    (``raw_max_weight``: the largest before clipping).

    Args:
        max_weight: Clipping threshold :math:`M > 0`, or None for no clipping.
        n_bootstrap: Bootstrap replicates.
        confidence: Level of the confidence interval.
        random_state: Seed of the bootstrap.

    References:
        D. G. Horvitz and D. J. Thompson. A generalization of sampling without replacement from
        a finite universe. JASA 47(260), 1952. Clipping: L. Bottou et al. Counterfactual
        reasoning and learning systems. JMLR 14, 2013.
    """

    max_weight: float | None = None

    name: ClassVar[str] = "ips"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_weight is not None and not (
            isinstance(self.max_weight, int | float) and self.max_weight > 0
        ):
            raise ValueError(
                f"max_weight must be a positive number or None, got {self.max_weight!r}"
            )

    @property
    def label(self) -> str:
        """``ips``, or ``ips_clip<M>`` with clipping at ``M``."""
        return self.name if self.max_weight is None else f"ips_clip{self.max_weight:g}"

    def _effective_weights(self, weights: np.ndarray) -> np.ndarray:
        return weights if self.max_weight is None else np.minimum(weights, self.max_weight)

    def _terms(
        self,
        data: LoggedBanditData,
        target: np.ndarray,
        weights: np.ndarray,
        estimated_rewards: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        return self._effective_weights(weights) * data.rewards, np.ones(data.n)


@dataclass(kw_only=True)
class SelfNormalizedIPS(OffPolicyEstimator):
    r"""Self-normalised inverse probability weighting (SNIPS).

    .. math::

        \hat V_{\mathrm{SNIPS}} = \frac{\sum_{i=1}^n w_i\, r_i}{\sum_{i=1}^n w_i}.

    Slightly biased (it is a ratio) but consistent, invariant to adding a constant to the
    rewards, and bounded by the range of the rewards; usually much less variable than IPS.

    References:
        A. Swaminathan and T. Joachims. The self-normalized estimator for counterfactual
        learning. NeurIPS 2015.
    """

    name: ClassVar[str] = "snips"

    def _terms(
        self,
        data: LoggedBanditData,
        target: np.ndarray,
        weights: np.ndarray,
        estimated_rewards: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        return weights * data.rewards, weights


@dataclass(kw_only=True)
class _RewardModelEstimator(OffPolicyEstimator):
    """An estimator with a pluggable reward model, cross-fitted on the log.

    Args:
        reward_model: Scikit-learn style regressor or classifier, copied per action (default
            :class:`~rec_env.agents.ope.reward_models.RidgeRewardEstimator`).
        n_folds: Cross-fitting folds (1: fit and predict on all rows).
        pooled: One reward model over (context, action features) (``data.action_context``,
            one-hot actions if the log has none) instead of one model per action.
        refit_bootstrap: Refit the reward model inside every bootstrap replicate
            (:mod:`~rec_env.agents.ope.refit`); otherwise hold it fixed.
        n_refit_bootstrap: Most replicates of the refit bootstrap, which uses
            ``min(n_bootstrap, n_refit_bootstrap)`` of them since each refits the model (200
            give the 2.5 % and 97.5 % percentiles to within a few replicates' spacing).
    """

    reward_model: RewardEstimator | None = None
    n_folds: int = 2
    pooled: bool = False
    refit_bootstrap: bool = False
    n_refit_bootstrap: int = 200

    needs_reward_model: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.n_refit_bootstrap, bool) or not self.n_refit_bootstrap >= 2:
            raise ValueError(f"n_refit_bootstrap must be at least 2, got {self.n_refit_bootstrap}")
        self.n_refit_bootstrap = int(self.n_refit_bootstrap)

    def fit_rewards(self, data: LoggedBanditData) -> np.ndarray:
        r"""``(n, n_actions)`` cross-fitted :math:`\hat q(x_i, a)` (folds seeded by the seed)."""
        return cross_fitted_rewards(
            data, self.reward_model, self.n_folds, self.random_state, pooled=self.pooled
        )

    def _replicate_sums(
        self,
        data: LoggedBanditData,
        columns: Callable[[np.ndarray | None], np.ndarray],
        rewards: np.ndarray | None,
        refit: bool,
    ) -> tuple[np.ndarray, str]:
        if refit and self.refit_bootstrap:
            sums = refit_bootstrap_sums(
                data,
                columns,
                estimator=self.reward_model,
                n_folds=self.n_folds,
                pooled=self.pooled,
                n_replicates=min(self.n_bootstrap, self.n_refit_bootstrap),
                random_state=self.random_state,
            )
            return sums, "refit_bootstrap"
        sums = bootstrap_sums(columns(rewards), self.n_bootstrap, self.random_state)
        return sums, "bootstrap_fixed_model"


@dataclass(kw_only=True)
class DirectMethod(_RewardModelEstimator):
    r"""The direct method (DM): the reward model's prediction of the target policy's value.

    .. math::

        \hat V_{\mathrm{DM}} = \frac{1}{n} \sum_{i=1}^n \sum_a \pi(a \mid x_i)\, \hat q(x_i, a).

    Low variance, but biased as much as the reward model is wrong. Its bootstrap interval
    refits the model in every replicate by default, so it holds the model's estimation
    variance (not its bias: a misspecified model stays misspecified in every replicate). The
    importance weights are not used (diagnostics still report them).

    Args:
        reward_model: Scikit-learn style regressor or classifier, one copy per action.
        n_folds: Cross-fitting folds for :math:`\hat q`.
        pooled: One pooled reward model over (context, action features).
        refit_bootstrap: Refit the model in every replicate (default True).
        n_refit_bootstrap: Replicates of the refit bootstrap.

    References:
        A. Beygelzimer and J. Langford. The offset tree for learning with partial labels. KDD
        2009; M. Dudík, J. Langford and L. Li. Doubly robust policy evaluation and learning.
        ICML 2011.
    """

    refit_bootstrap: bool = True

    name: ClassVar[str] = "dm"

    def _terms(
        self,
        data: LoggedBanditData,
        target: np.ndarray,
        weights: np.ndarray,
        estimated_rewards: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        assert estimated_rewards is not None
        return np.sum(target * estimated_rewards, axis=1), np.ones(data.n)


@dataclass(kw_only=True)
class DoublyRobust(_RewardModelEstimator):
    r"""The doubly robust estimator (DR): the direct method plus an IPS correction of its error.

    .. math::

        \hat V_{\mathrm{DR}} = \frac{1}{n} \sum_{i=1}^n \Big[\sum_a \pi(a \mid x_i)\,
        \hat q(x_i, a) + w_i \big(r_i - \hat q(x_i, a_i)\big)\Big].

    Unbiased when the propensities are right, whatever the reward model; its variance shrinks
    as :math:`\hat q` gets closer to :math:`q`. The variants replace :math:`w_i` in the
    correction by another weight (:meth:`_effective_weights`): Switch-DR and DRos in
    :mod:`~rec_env.agents.ope.doubly_robust`.

    Args:
        reward_model: Scikit-learn style regressor or classifier, one copy per action.
        n_folds: Cross-fitting folds for :math:`\hat q`.
        pooled: One pooled reward model over (context, action features).
        refit_bootstrap: Refit the model in every replicate (default False; module docstring).
        n_refit_bootstrap: Replicates of the refit bootstrap.

    References:
        M. Dudík, J. Langford and L. Li. Doubly robust policy evaluation and learning. ICML
        2011.
    """

    name: ClassVar[str] = "dr"

    def _terms(
        self,
        data: LoggedBanditData,
        target: np.ndarray,
        weights: np.ndarray,
        estimated_rewards: np.ndarray | None,
    ) -> tuple[np.ndarray, ...]:
        """``(direct, correction, 1)`` per row: the estimate is their ratio of sums."""
        assert estimated_rewards is not None
        logged = estimated_rewards[np.arange(data.n), data.actions]
        direct = np.sum(target * estimated_rewards, axis=1)
        correction = self._effective_weights(weights) * (data.rewards - logged)
        return direct, correction, np.ones(data.n)

    def _parts(self, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The direct and the correction part of the estimate, from the sums of the terms."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return sums[..., 0] / sums[..., 2], sums[..., 1] / sums[..., 2]

    def _combine(self, sums: np.ndarray) -> np.ndarray:
        direct, correction = self._parts(sums)
        return direct + correction

    def _correction_share(self, totals: np.ndarray) -> float | None:
        direct, correction = (abs(float(part)) for part in self._parts(totals))
        return correction / (direct + correction) if direct + correction > 0 else 0.0


ESTIMATORS: dict[str, type[OffPolicyEstimator]] = {
    cls.name: cls
    for cls in (InverseProbabilityWeighting, SelfNormalizedIPS, DirectMethod, DoublyRobust)
}
"""Short name → estimator class: ``ips``, ``snips``, ``dm``, ``dr`` (the default set; every
estimator, with SNDR, Switch-DR and DRos: ``rec_env.agents.ope.ALL_ESTIMATORS``)."""


def evaluate_policy(
    data: LoggedBanditData,
    target_probabilities: np.ndarray,
    estimators: list[OffPolicyEstimator] | None = None,
    *,
    estimated_rewards: np.ndarray | None = None,
) -> list[OPEResult]:
    r"""Every estimator's estimate of the target policy's value.

    Args:
        data: The logged decisions.
        target_probabilities: ``(n, n_actions)`` :math:`\pi(a \mid x_i)`.
        estimators: Estimators to run (default: IPS, SNIPS, DM and DR with default settings).
        estimated_rewards: ``(n, n_actions)`` :math:`\hat q` shared by the estimators with a
            reward model (their intervals then hold it fixed); if omitted, it is cross-fitted
            once with the first such estimator's settings, and estimators with
            ``refit_bootstrap`` refit their own model in every replicate.

    Returns:
        One result per estimator, in order.
    """
    if estimators is None:
        estimators = [cls() for cls in ESTIMATORS.values()]
    if estimated_rewards is not None:
        return [
            e.estimate(data, target_probabilities, estimated_rewards=estimated_rewards)
            for e in estimators
        ]
    target = check_target_probabilities(data, target_probabilities)
    fitting = [e for e in estimators if e.needs_reward_model]
    shared = fitting[0].fit_rewards(data) if fitting else None
    return [
        e._estimate(data, target, shared if e.needs_reward_model else None, refit=True)
        for e in estimators
    ]

r"""The estimators: IPS (optionally clipped), SNIPS, the direct method and doubly robust.

Each fills in :meth:`~rec_env.agents.ope.base.OffPolicyEstimator._terms`, its per-row
numerator and denominator; the base class (:mod:`rec_env.agents.ope.base`) supplies the
validation, the bootstrap interval and the weight diagnostics. The notation is that of
:mod:`rec_env.agents.ope.base`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rec_env.agents.ope.base import OffPolicyEstimator, OPEResult
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
    less variance.

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

    def _terms(
        self,
        data: LoggedBanditData,
        target: np.ndarray,
        weights: np.ndarray,
        estimated_rewards: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.max_weight is not None:
            weights = np.minimum(weights, self.max_weight)
        return weights * data.rewards, np.ones(data.n)


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
    """An estimator with a pluggable per-action reward model, cross-fitted on the log.

    Args:
        reward_model: Scikit-learn style regressor or classifier, copied per action (default
            :class:`~rec_env.agents.ope.reward_models.RidgeRewardEstimator`).
        n_folds: Cross-fitting folds (1: fit and predict on all rows).
    """

    reward_model: RewardEstimator | None = None
    n_folds: int = 2

    needs_reward_model: ClassVar[bool] = True

    def fit_rewards(self, data: LoggedBanditData) -> np.ndarray:
        r"""``(n, n_actions)`` cross-fitted :math:`\hat q(x_i, a)` (folds seeded by the seed)."""
        return cross_fitted_rewards(data, self.reward_model, self.n_folds, self.random_state)


@dataclass(kw_only=True)
class DirectMethod(_RewardModelEstimator):
    r"""The direct method (DM): the reward model's prediction of the target policy's value.

    .. math::

        \hat V_{\mathrm{DM}} = \frac{1}{n} \sum_{i=1}^n \sum_a \pi(a \mid x_i)\, \hat q(x_i, a).

    Low variance, but biased as much as the reward model is wrong; its bootstrap interval
    reflects the variance only. The importance weights are not used (diagnostics still report
    them).

    Args:
        reward_model: Scikit-learn style regressor or classifier, one copy per action.
        n_folds: Cross-fitting folds for :math:`\hat q`.

    References:
        A. Beygelzimer and J. Langford. The offset tree for learning with partial labels. KDD
        2009; M. Dudík, J. Langford and L. Li. Doubly robust policy evaluation and learning.
        ICML 2011.
    """

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
    as :math:`\hat q` gets closer to :math:`q`.

    Args:
        reward_model: Scikit-learn style regressor or classifier, one copy per action.
        n_folds: Cross-fitting folds for :math:`\hat q`.

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
    ) -> tuple[np.ndarray, np.ndarray]:
        assert estimated_rewards is not None
        logged = estimated_rewards[np.arange(data.n), data.actions]
        direct = np.sum(target * estimated_rewards, axis=1)
        return direct + weights * (data.rewards - logged), np.ones(data.n)


ESTIMATORS: dict[str, type[OffPolicyEstimator]] = {
    cls.name: cls
    for cls in (InverseProbabilityWeighting, SelfNormalizedIPS, DirectMethod, DoublyRobust)
}
"""Short name → estimator class: ``ips``, ``snips``, ``dm``, ``dr``."""


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
            reward model; if omitted, it is cross-fitted once with the first such estimator's
            settings.

    Returns:
        One result per estimator, in order.
    """
    if estimators is None:
        estimators = [cls() for cls in ESTIMATORS.values()]
    if estimated_rewards is None:
        fitting = [e for e in estimators if e.needs_reward_model]
        estimated_rewards = fitting[0].fit_rewards(data) if fitting else None
    return [
        e.estimate(data, target_probabilities, estimated_rewards=estimated_rewards)
        for e in estimators
    ]

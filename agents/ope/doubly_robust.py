r"""Variants of doubly robust: self-normalised (SNDR), switch (Switch-DR) and shrinkage (DRos).

All three keep the direct method's term :math:`\hat q_\pi(x_i) = \sum_a \pi(a \mid x_i)\,
\hat q(x_i, a)` and change how much of the importance-weighted correction
:math:`w_i\,(r_i - \hat q(x_i, a_i))` they add, to trade the doubly robust estimator's
unbiasedness for less variance when weights are large. They follow the definitions of Open
Bandit Pipeline (``obp.ope.estimators``): the same formulas give the same numbers on the same
inputs. The notation is that of :mod:`rec_env.agents.ope.base`.

Intervals: SNDR keeps the whole correction, so, like DR, it holds its cross-fitted model fixed
in the bootstrap by default. Switch-DR and DRos turn the correction off or down exactly where
the weights are large, and there the estimate is the reward model's: a fixed-model bootstrap
then misses the model's variance as the direct method's does (coverage 0.52 and 0.60 instead of
0.95 in ``benchmarks/ope_coverage.py``), so they refit the model in every replicate by default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rec_env.agents.ope.estimators import DoublyRobust
from rec_env.datasets.logged import LoggedBanditData

__all__ = ["DoublyRobustWithShrinkage", "SelfNormalizedDoublyRobust", "SwitchDoublyRobust"]


@dataclass(kw_only=True)
class SelfNormalizedDoublyRobust(DoublyRobust):
    r"""Self-normalised doubly robust (SNDR): the correction divided by the mean weight.

    .. math::

        \hat V_{\mathrm{SNDR}} = \frac{1}{n} \sum_{i=1}^n \hat q_\pi(x_i)
        + \frac{\sum_{i=1}^n w_i\, (r_i - \hat q(x_i, a_i))}{\sum_{i=1}^n w_i}.

    Consistent (not unbiased), and the correction is bounded by the range of the residuals
    as SNIPS is by the range of the rewards. Undefined when no logged action has weight (in the
    log: an error; in a bootstrap replicate: counted and warned about).

    Args:
        reward_model: Scikit-learn style regressor or classifier, one copy per action.
        n_folds: Cross-fitting folds for :math:`\hat q`.
        pooled: One pooled reward model over (context, action features).
        refit_bootstrap: Refit the model in every replicate.
        n_refit_bootstrap: Replicates of the refit bootstrap.

    References:
        N. Kallus and M. Uehara. Intrinsically efficient, stable, and bounded off-policy
        evaluation for reinforcement learning. NeurIPS 2019; Open Bandit Pipeline's
        ``SelfNormalizedDoublyRobust`` (Y. Saito et al. Open Bandit Dataset and Pipeline.
        NeurIPS Datasets and Benchmarks 2021).
    """

    name: ClassVar[str] = "sndr"

    def _terms(
        self,
        data: LoggedBanditData,
        target: np.ndarray,
        weights: np.ndarray,
        estimated_rewards: np.ndarray | None,
    ) -> tuple[np.ndarray, ...]:
        """``(direct, correction, w, 1)`` per row."""
        direct, correction, ones = super()._terms(data, target, weights, estimated_rewards)
        return direct, correction, weights, ones

    def _parts(self, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return sums[..., 0] / sums[..., 3], sums[..., 1] / sums[..., 2]


@dataclass(kw_only=True)
class SwitchDoublyRobust(DoublyRobust):
    r"""Switch doubly robust (Switch-DR): no correction where the weight exceeds :math:`\tau`.

    .. math::

        \hat V_{\mathrm{SwitchDR}} = \frac{1}{n} \sum_{i=1}^n \Big[\hat q_\pi(x_i)
        + w_i\, [w_i \le \tau]\, \big(r_i - \hat q(x_i, a_i)\big)\Big].

    Rows whose weight is above :math:`\tau` are left to the reward model. :math:`\tau = \infty`
    is DR, :math:`\tau = 0` the direct method (rows with :math:`w_i = 0` add no correction).
    This is the doubly robust form of the switch estimator, as in Open Bandit Pipeline's
    ``SwitchDoublyRobust``; the paper's switch compares :math:`\pi(a \mid x) / \mu(a \mid x)`
    for every action. There is no universal :math:`\tau`: compare a few, with the diagnostics
    (``max_weight`` is the largest weight kept).

    Args:
        tau: Switching threshold :math:`\tau \ge 0` (``math.inf``: DR).
        reward_model: Scikit-learn style regressor or classifier, one copy per action.
        n_folds: Cross-fitting folds for :math:`\hat q`.
        pooled: One pooled reward model over (context, action features).
        refit_bootstrap: Refit the model in every replicate (default True).
        n_refit_bootstrap: Replicates of the refit bootstrap.

    References:
        Y.-X. Wang, A. Agarwal and M. Dudík. Optimal and adaptive off-policy evaluation in
        contextual bandits. ICML 2017.
    """

    tau: float = 100.0
    refit_bootstrap: bool = True

    name: ClassVar[str] = "switch_dr"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.tau, int | float) and self.tau >= 0):
            raise ValueError(f"tau must be a number >= 0, got {self.tau!r}")

    @property
    def label(self) -> str:
        """``switch_dr<tau>``."""
        return f"{self.name}{self.tau:g}"

    def _effective_weights(self, weights: np.ndarray) -> np.ndarray:
        return np.where(weights <= self.tau, weights, 0.0)


@dataclass(kw_only=True)
class DoublyRobustWithShrinkage(DoublyRobust):
    r"""Doubly robust with optimistic shrinkage (DRos): the weights shrunk towards 0.

    .. math::

        \hat V_{\mathrm{DRos}} = \frac{1}{n} \sum_{i=1}^n \Big[\hat q_\pi(x_i)
        + \hat w_i\, \big(r_i - \hat q(x_i, a_i)\big)\Big],
        \qquad \hat w_i = \frac{\lambda\, w_i}{w_i^2 + \lambda}.

    :math:`\hat w` minimises a bound on the mean squared error assuming the reward model's
    error is bounded (the "optimistic" shrinkage). :math:`\lambda = \infty` is DR,
    :math:`\lambda = 0` the direct method. Weights well below :math:`\sqrt\lambda` are barely
    changed; the largest shrunk weight is :math:`\sqrt\lambda / 2`. Tune :math:`\lambda` (for
    example on a log where a policy's value is known).

    Args:
        lambda_: Shrinkage :math:`\lambda \ge 0` (``math.inf``: DR).
        reward_model: Scikit-learn style regressor or classifier, one copy per action.
        n_folds: Cross-fitting folds for :math:`\hat q`.
        pooled: One pooled reward model over (context, action features).
        refit_bootstrap: Refit the model in every replicate (default True).
        n_refit_bootstrap: Replicates of the refit bootstrap.

    References:
        Y. Su, M. Dimakopoulou, A. Krishnamurthy and M. Dudík. Doubly robust off-policy
        evaluation with shrinkage. ICML 2020.
    """

    lambda_: float = 1000.0
    refit_bootstrap: bool = True

    name: ClassVar[str] = "dros"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.lambda_, int | float) and self.lambda_ >= 0):
            raise ValueError(f"lambda_ must be a number >= 0, got {self.lambda_!r}")

    @property
    def label(self) -> str:
        """``dros<lambda>``."""
        return f"{self.name}{self.lambda_:g}"

    def _effective_weights(self, weights: np.ndarray) -> np.ndarray:
        if math.isinf(self.lambda_):
            return weights
        if self.lambda_ == 0:
            return np.zeros_like(weights)
        return self.lambda_ * weights / (weights**2 + self.lambda_)

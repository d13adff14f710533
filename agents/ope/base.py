r"""The base of the off-policy estimators: notation, validation, weights and diagnostics.

Notation: the log holds :math:`n` rows :math:`(x_i, a_i, \mu_i, r_i)` where
:math:`\mu_i = \mu(a_i \mid x_i)` is the logging propensity. The target policy :math:`\pi` gives
probabilities :math:`\pi(a \mid x_i)` for every action; its importance weights are
:math:`w_i = \pi(a_i \mid x_i) / \mu_i`. Its value is
:math:`V(\pi) = \mathbb E_x \sum_a \pi(a \mid x)\, q(x, a)` with :math:`q(x, a)` the expected
reward of action :math:`a` in context :math:`x`.

Every estimator writes its value as a ratio of sums of per-row terms,
:math:`\hat V = \sum_i u_i / \sum_i v_i`, so that one percentile bootstrap over rows (seeded)
gives the 95 % confidence interval of all of them, and paired differences between two policies
resample the same rows. Every result also reports the importance-weight diagnostics: the
effective sample size :math:`(\sum_i w_i)^2 / \sum_i w_i^2` (Kong 1992), and the largest and the
mean weight (the mean should be close to 1 when :math:`\pi` is supported by :math:`\mu`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from numbers import Integral
from typing import Any, ClassVar

import numpy as np

from rec_env.agents.ope.bootstrap import bootstrap_sums, replicate_ratios
from rec_env.datasets.logged import LoggedBanditData

__all__ = [
    "BootstrapSettings",
    "OPEResult",
    "OffPolicyEstimator",
    "check_target_probabilities",
    "importance_weights",
    "weight_diagnostics",
]


@dataclass(frozen=True)
class OPEResult:
    r"""An off-policy estimate with its confidence interval and weight diagnostics.

    Attributes:
        estimator: Label of the estimator (``ips``, ``ips_clip<M>``, ``snips``, ``dm``, ``dr``).
        value: The estimated policy value (mean reward per decision).
        ci_low: Lower end of the bootstrap confidence interval.
        ci_high: Upper end of the bootstrap confidence interval.
        n: Number of logged decisions used.
        effective_sample_size: :math:`(\sum w)^2 / \sum w^2` of the raw importance weights.
        max_weight: Largest raw importance weight.
        mean_weight: Mean raw importance weight.
    """

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    effective_sample_size: float
    max_weight: float
    mean_weight: float

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for CSV and JSON)."""
        return asdict(self)


def check_target_probabilities(
    data: LoggedBanditData, target_probabilities: np.ndarray
) -> np.ndarray:
    """The target policy's ``(n, n_actions)`` probabilities, validated against the log.

    Raises:
        ValueError: If the shape does not match the log, a probability is not finite or
            negative, a row does not sum to 1, or a masked action has positive probability.
    """
    target = np.asarray(target_probabilities, dtype=np.float64)
    if target.shape != (data.n, data.n_actions):
        raise ValueError(
            f"shape mismatch: target probabilities must have shape (n, n_actions) = "
            f"({data.n}, {data.n_actions}), got {target.shape}"
        )
    if not np.all(np.isfinite(target)) or (target < 0).any():
        raise ValueError("target probabilities must be finite and non-negative")
    sums = target.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-6):
        row = int(np.flatnonzero(~np.isclose(sums, 1.0, atol=1e-6))[0])
        raise ValueError(
            f"target probabilities must sum to 1 per row; row {row} sums to {sums[row]}"
        )
    if data.action_masks is not None:
        leaking = ((target > 1e-12) & ~data.action_masks).any(axis=1)
        if leaking.any():
            raise ValueError(
                "the target policy gives positive probability to masked actions in "
                f"{int(leaking.sum())} rows (first: row {int(np.flatnonzero(leaking)[0])})"
            )
    return target


def importance_weights(data: LoggedBanditData, target: np.ndarray) -> np.ndarray:
    r"""``(n,)`` weights :math:`w_i = \pi(a_i \mid x_i) / \mu(a_i \mid x_i)`."""
    return target[np.arange(data.n), data.actions] / data.propensities


def weight_diagnostics(weights: np.ndarray) -> tuple[float, float, float]:
    """Effective sample size, maximum and mean of the importance weights."""
    squares = float(np.sum(weights**2))
    ess = float(np.sum(weights)) ** 2 / squares if squares > 0 else 0.0
    return ess, float(weights.max()), float(weights.mean())


@dataclass(kw_only=True)
class BootstrapSettings:
    """The bootstrap confidence interval's settings, shared by every estimator.

    Args:
        n_bootstrap: Bootstrap replicates for the confidence interval.
        confidence: Level of the confidence interval, in (0, 1).
        random_state: Seed of the bootstrap's resampling.
    """

    n_bootstrap: int = 1000
    confidence: float = 0.95
    random_state: int | None = 0

    def __post_init__(self) -> None:
        if isinstance(self.n_bootstrap, bool) or not isinstance(self.n_bootstrap, Integral):
            raise ValueError(f"n_bootstrap must be an integer, got {self.n_bootstrap!r}")
        if self.n_bootstrap < 2:
            raise ValueError(f"n_bootstrap must be at least 2, got {self.n_bootstrap}")
        self.n_bootstrap = int(self.n_bootstrap)
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")

    def _interval(self, replicates: np.ndarray) -> tuple[float, float]:
        """The percentile interval of the bootstrap ``replicates``."""
        tail = (1.0 - self.confidence) / 2.0
        with np.errstate(all="ignore"):
            low, high = np.nanquantile(replicates, [tail, 1.0 - tail])
        return float(low), float(high)


@dataclass(kw_only=True)
class OffPolicyEstimator(BootstrapSettings, ABC):
    """Base of the estimators: validation, weights, bootstrap and diagnostics.

    Subclasses implement :meth:`_terms`, the per-row numerator and denominator of the
    estimate. Estimators that need a reward model set ``needs_reward_model``.

    Args:
        n_bootstrap: Bootstrap replicates for the confidence interval.
        confidence: Level of the confidence interval, in (0, 1).
        random_state: Seed of the bootstrap's resampling.
    """

    name: ClassVar[str] = "estimator"
    needs_reward_model: ClassVar[bool] = False

    @abstractmethod
    def _terms(
        self,
        data: LoggedBanditData,
        target: np.ndarray,
        weights: np.ndarray,
        estimated_rewards: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-row ``(numerators, denominators)``: the estimate is their ratio of sums."""

    @property
    def label(self) -> str:
        """Name of the estimator in results: :attr:`name` and any setting that changes it."""
        return self.name

    def fit_rewards(self, data: LoggedBanditData) -> np.ndarray | None:
        r"""``(n, n_actions)`` :math:`\hat q(x_i, a)` if this estimator needs them, else None."""
        return None

    def estimate(
        self,
        data: LoggedBanditData,
        target_probabilities: np.ndarray,
        *,
        estimated_rewards: np.ndarray | None = None,
    ) -> OPEResult:
        r"""Estimate the value of the target policy on the log.

        Args:
            data: The logged decisions.
            target_probabilities: ``(n, n_actions)`` :math:`\pi(a \mid x_i)` of the target
                policy in each logged context.
            estimated_rewards: ``(n, n_actions)`` :math:`\hat q(x_i, a)` for the estimators
                with a reward model (fitted with :meth:`fit_rewards` if omitted).

        Returns:
            The estimate, its bootstrap confidence interval and the weight diagnostics.

        Raises:
            ValueError: If the target probabilities or the estimated rewards do not match the
                log, or the estimate is undefined.
        """
        target = check_target_probabilities(data, target_probabilities)
        weights = importance_weights(data, target)
        rewards = self._reward_estimates(data, estimated_rewards)
        columns = np.column_stack(self._terms(data, target, weights, rewards))
        value = self._ratio(*columns.sum(axis=0))
        sums = bootstrap_sums(columns, self.n_bootstrap, self.random_state)
        return self._result(data, weights, value, replicate_ratios(sums, 0))

    def estimate_difference(
        self,
        data: LoggedBanditData,
        target_probabilities: np.ndarray,
        baseline_probabilities: np.ndarray,
        *,
        estimated_rewards: np.ndarray | None = None,
    ) -> OPEResult:
        """Estimate ``V(target) - V(baseline)``, with a paired bootstrap interval.

        Both values are computed on the same resampled rows, so the interval of the difference
        is much narrower than the two separate intervals suggest. The diagnostics are those of
        the target policy's weights.

        Raises:
            ValueError: As :meth:`estimate`.
        """
        rewards = self._reward_estimates(data, estimated_rewards)
        target = check_target_probabilities(data, target_probabilities)
        baseline = check_target_probabilities(data, baseline_probabilities)
        weights = importance_weights(data, target)
        columns = np.column_stack(
            [
                *self._terms(data, target, weights, rewards),
                *self._terms(data, baseline, importance_weights(data, baseline), rewards),
            ]
        )
        totals = columns.sum(axis=0)
        value = self._ratio(totals[0], totals[1]) - self._ratio(totals[2], totals[3])
        sums = bootstrap_sums(columns, self.n_bootstrap, self.random_state)
        replicates = replicate_ratios(sums, 0) - replicate_ratios(sums, 2)
        return self._result(data, weights, value, replicates)

    def _reward_estimates(
        self, data: LoggedBanditData, estimated_rewards: np.ndarray | None
    ) -> np.ndarray | None:
        if not self.needs_reward_model:
            return None
        if estimated_rewards is None:
            return self.fit_rewards(data)
        rewards = np.asarray(estimated_rewards, dtype=np.float64)
        if rewards.shape != (data.n, data.n_actions):
            raise ValueError(
                f"shape mismatch: estimated rewards must have shape ({data.n}, "
                f"{data.n_actions}), got {rewards.shape}"
            )
        if not np.all(np.isfinite(rewards)):
            raise ValueError("estimated rewards must be finite")
        return rewards

    def _ratio(self, numerator: float, denominator: float) -> float:
        """``numerator / denominator``: the estimate from its sums of per-row terms.

        Raises:
            ValueError: If the denominator is not positive (SNIPS with no weight at all).
        """
        if denominator <= 0:
            raise ValueError(
                f"{self.name} is undefined: the target policy gives probability 0 to every "
                "logged action"
            )
        return float(numerator / denominator)

    def _result(
        self, data: LoggedBanditData, weights: np.ndarray, value: float, replicates: np.ndarray
    ) -> OPEResult:
        """The result: ``value``, the percentile interval of ``replicates``, diagnostics."""
        low, high = self._interval(replicates)
        return OPEResult(self.label, value, low, high, data.n, *weight_diagnostics(weights))

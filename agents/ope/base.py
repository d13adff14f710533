r"""The base of the off-policy estimators: notation, validation, weights and diagnostics.

Notation: the log holds :math:`n` rows :math:`(x_i, a_i, \mu_i, r_i)` where
:math:`\mu_i = \mu(a_i \mid x_i)` is the logging propensity. The target policy :math:`\pi` gives
probabilities :math:`\pi(a \mid x_i)` for every action; its importance weights are
:math:`w_i = \pi(a_i \mid x_i) / \mu_i`. Its value is
:math:`V(\pi) = \mathbb E_x \sum_a \pi(a \mid x)\, q(x, a)` with :math:`q(x, a)` the expected
reward of action :math:`a` in context :math:`x`. With positions (one row per shown position,
as in Open Bandit Pipeline), the target gives an ``(n, n_actions, n_positions)`` distribution
and row :math:`i` reads :math:`\pi(\cdot \mid x_i, p_i)` at its own position :math:`p_i`.

Every estimator writes its value as a function of sums of per-row terms (a ratio
:math:`\sum_i u_i / \sum_i v_i` for most), so that one percentile bootstrap over rows (seeded)
gives the 95 % confidence interval of all of them, and paired differences between two policies
resample the same rows. Replicates where the estimate is undefined (SNIPS: no weight in the
resample) are counted on the result and warned about (:class:`OPEWarning`), never dropped
silently.

Every result reports diagnostics:

* the effective sample size :math:`(\sum_i \tilde w_i)^2 / \sum_i \tilde w_i^2` (Kong 1992),
  the largest and the mean weight, of the weights :math:`\tilde w_i` *the estimator uses*
  (after clipping, switching or shrinkage), and the largest raw weight;
* the *unsupported mass*: the share of the target's probability on actions the logging policy
  takes with probability below :data:`TINY_PROPENSITY` (from ``data.logging_distribution``),
  or, without it, on actions (at that position) never logged anywhere in the log. IPS-type
  estimators cannot see rewards there (they count them as 0); above
  :data:`UNSUPPORTED_MASS_WARNING` an :class:`OPEWarning` says so;
* for the doubly robust family, the share of the estimate that comes from the correction term.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from numbers import Integral
from typing import Any, ClassVar

import numpy as np

from rec_env.agents.ope.bootstrap import bootstrap_sums
from rec_env.datasets.logged import LoggedBanditData

__all__ = [
    "TINY_PROPENSITY",
    "UNSUPPORTED_MASS_WARNING",
    "BootstrapSettings",
    "OPEResult",
    "OPEWarning",
    "OffPolicyEstimator",
    "at_positions",
    "check_target_probabilities",
    "importance_weights",
    "unsupported_mass",
    "weight_diagnostics",
]

TINY_PROPENSITY = 1e-3
"""A logging probability below this counts as no support (0.1 %: a weight above 1,000)."""

UNSUPPORTED_MASS_WARNING = 0.01
"""Unsupported mass above this (1 % of the target's probability) raises an :class:`OPEWarning`.

IPS-type estimators count the unsupported actions' rewards as 0, so with rewards in
``[0, r_max]`` their bias can reach this share of ``r_max``."""


class OPEWarning(UserWarning):
    """An off-policy estimate that may not mean what it seems (undefined replicates, no support)."""


@dataclass(frozen=True)
class OPEResult:
    r"""An off-policy estimate with its confidence interval and diagnostics.

    Attributes:
        estimator: Label of the estimator (``ips``, ``ips_clip<M>``, ``snips``, ``dm``, ``dr``,
            ``sndr``, ``switch_dr<tau>``, ``dros<lambda>``, ...).
        value: The estimated policy value (mean reward per decision).
        ci_low: Lower end of the bootstrap confidence interval.
        ci_high: Upper end of the bootstrap confidence interval.
        n: Number of logged decisions used.
        effective_sample_size: :math:`(\sum \tilde w)^2 / \sum \tilde w^2` of the weights the
            estimator uses (after clipping, switching or shrinkage).
        max_weight: Largest weight the estimator uses.
        mean_weight: Mean weight the estimator uses.
        raw_max_weight: Largest raw importance weight :math:`\pi / \mu`.
        unsupported_mass: Share of the target's probability on actions with no or tiny logging
            probability (module docstring).
        correction_share: Doubly robust family: :math:`|C| / (|D| + |C|)` with :math:`D` the
            direct (model) part and :math:`C` the correction part of the estimate; None for
            the others.
        n_replicates: Bootstrap replicates drawn.
        n_undefined_replicates: Replicates where the estimate was undefined (left out of the
            interval and warned about).
        interval: ``bootstrap`` (terms resampled), ``refit_bootstrap`` (reward model
            refitted in every replicate) or ``bootstrap_fixed_model`` (given reward estimates
            held fixed: the model's own variance is not in the interval).
    """

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    effective_sample_size: float
    max_weight: float
    mean_weight: float
    raw_max_weight: float | None = None
    unsupported_mass: float = 0.0
    correction_share: float | None = None
    n_replicates: int = 0
    n_undefined_replicates: int = 0
    interval: str = "bootstrap"

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for CSV and JSON)."""
        return asdict(self)


def at_positions(data: LoggedBanditData, array: np.ndarray, name: str) -> np.ndarray:
    """``(n, n_actions)``: a 2-D array as is, a 3-D one read at each row's position.

    Raises:
        ValueError: If a 3-D array is given for a log without positions, a 2-D one for a log
            with positions, or the shape does not match the log.
    """
    if array.ndim == 3:
        if data.positions is None:
            raise ValueError(
                f"{name} is 3-D {array.shape} (n, n_actions, n_positions) but the log has no "
                "positions: pass a 2-D (n, n_actions) array, or give the log its positions "
                "(LoggedBanditData(positions=...))"
            )
        expected = (data.n, data.n_actions, data.n_positions)
        if array.shape != expected:
            raise ValueError(
                f"shape mismatch: {name} must have shape (n, n_actions, n_positions) = "
                f"{expected}, got {array.shape}"
            )
        return array[np.arange(data.n), :, data.positions]
    if data.positions is not None and array.ndim == 2:
        raise ValueError(
            f"the log has positions ({data.n_positions}), so {name} must be 3-D "
            f"(n, n_actions, n_positions) = ({data.n}, {data.n_actions}, {data.n_positions}) "
            f"as in Open Bandit Pipeline; got {array.shape}. For a policy that ignores the "
            "position, repeat it: np.repeat(p[:, :, None], n_positions, axis=2)"
        )
    if array.shape != (data.n, data.n_actions):
        raise ValueError(
            f"shape mismatch: {name} must have shape (n, n_actions) = "
            f"({data.n}, {data.n_actions}), got {array.shape}"
        )
    return array


def check_target_probabilities(
    data: LoggedBanditData, target_probabilities: np.ndarray
) -> np.ndarray:
    """The target policy's ``(n, n_actions)`` probabilities, validated against the log.

    A 3-D ``(n, n_actions, n_positions)`` distribution (logs with positions) is checked whole
    and read at each row's position.

    Raises:
        ValueError: If the shape does not match the log (3-D without positions, 2-D with
            positions), a probability is not finite or negative, a row does not sum to 1, or
            a masked action has positive probability.
    """
    full = np.asarray(target_probabilities, dtype=np.float64)
    target = at_positions(data, full, "the target action distribution")
    if not np.all(np.isfinite(full)) or (full < 0).any():
        raise ValueError("target probabilities must be finite and non-negative")
    sums = full.sum(axis=1)
    bad = ~np.isclose(sums, 1.0, atol=1e-6)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(
            f"target probabilities must sum to 1 per row; row {row} sums to "
            f"{np.ravel(sums[row])[0] if sums.ndim > 1 else sums[row]}"
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


def unsupported_mass(
    data: LoggedBanditData, target: np.ndarray, min_propensity: float = TINY_PROPENSITY
) -> float:
    r"""Mean over rows of the target's probability on actions without logging support.

    With ``data.logging_distribution``: :math:`\frac1n \sum_i \sum_a \pi(a \mid x_i)\,
    [\mu(a \mid x_i) < \text{min\_propensity}]`. Without it, only what the log shows: the
    target's mass on actions (at the row's position) that were never logged anywhere in the
    log, a lower bound of the mass without support.

    Args:
        data: The logged decisions.
        target: ``(n, n_actions)`` target probabilities (read at the positions).
        min_propensity: Logging probability below which an action counts as unsupported.
    """
    if data.logging_distribution is not None:
        logging = at_positions(data, data.logging_distribution, "logging_distribution")
        return float(np.sum(target * (logging < min_propensity)) / data.n)
    if data.positions is None:
        never = np.bincount(data.actions, minlength=data.n_actions) == 0
        return float(target[:, never].sum() / data.n)
    cells = data.actions * data.n_positions + data.positions
    counts = np.bincount(cells, minlength=data.n_actions * data.n_positions)
    never = counts.reshape(data.n_actions, data.n_positions) == 0
    return float(np.sum(target * never[:, data.positions].T) / data.n)


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
        """The percentile interval of the defined (finite) bootstrap ``replicates``."""
        tail = (1.0 - self.confidence) / 2.0
        finite = replicates[np.isfinite(replicates)]
        if finite.size == 0:
            return float("nan"), float("nan")
        low, high = np.quantile(finite, [tail, 1.0 - tail])
        return float(low), float(high)

    def _counted_interval(self, label: str, replicates: np.ndarray) -> tuple[float, float, int]:
        """The interval and the number of undefined replicates, with a warning if any."""
        undefined = int(np.sum(~np.isfinite(replicates)))
        if undefined:
            warnings.warn(
                f"{label}: {undefined} of {replicates.size} bootstrap replicates are undefined "
                f"({undefined / replicates.size:.1%}: no importance weight in the resample) and "
                "left out of the interval, which is therefore too narrow; the estimate rests on "
                "very few rows the target policy would take",
                OPEWarning,
                stacklevel=3,
            )
        return *self._interval(replicates), undefined


@dataclass(kw_only=True)
class OffPolicyEstimator(BootstrapSettings, ABC):
    """Base of the estimators: validation, weights, bootstrap and diagnostics.

    Subclasses implement :meth:`_terms`, the per-row terms of the estimate, and (when it is not
    the ratio of the first two sums) :meth:`_combine`. Estimators that need a reward model set
    ``needs_reward_model``.

    Args:
        n_bootstrap: Bootstrap replicates for the confidence interval.
        confidence: Level of the confidence interval, in (0, 1).
        random_state: Seed of the bootstrap's resampling.
        min_propensity: Logging probability below which an action is unsupported.
        max_unsupported_mass: Unsupported mass above which an :class:`OPEWarning` is raised.
    """

    min_propensity: float = TINY_PROPENSITY
    max_unsupported_mass: float = UNSUPPORTED_MASS_WARNING

    name: ClassVar[str] = "estimator"
    needs_reward_model: ClassVar[bool] = False

    @abstractmethod
    def _terms(
        self,
        data: LoggedBanditData,
        target: np.ndarray,
        weights: np.ndarray,
        estimated_rewards: np.ndarray | None,
    ) -> tuple[np.ndarray, ...]:
        """Per-row terms whose sums give the estimate through :meth:`_combine`."""

    def _combine(self, sums: np.ndarray) -> np.ndarray:
        """The estimate from ``(..., k)`` sums of the terms: the ratio of the first two."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return sums[..., 0] / sums[..., 1]

    def _effective_weights(self, weights: np.ndarray) -> np.ndarray:
        """The weights the estimator actually applies (after clipping, switching, shrinkage)."""
        return weights

    def _correction_share(self, totals: np.ndarray) -> float | None:
        """The doubly robust family's share of the estimate from its correction (else None)."""
        return None

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
                policy in each logged context, or ``(n, n_actions, n_positions)`` for a log with
                positions.
            estimated_rewards: ``(n, n_actions)`` (or ``(n, n_actions, n_positions)``)
                :math:`\hat q(x_i, a)` for the estimators with a reward model (fitted with
                :meth:`fit_rewards` if omitted). Given estimates cannot be refitted, so their
                interval holds the model fixed (``interval="bootstrap_fixed_model"``).

        Returns:
            The estimate, its bootstrap confidence interval and the diagnostics.

        Raises:
            ValueError: If the target probabilities or the estimated rewards do not match the
                log, or the estimate is undefined.
        """
        target = check_target_probabilities(data, target_probabilities)
        rewards = self._reward_estimates(data, estimated_rewards)
        return self._estimate(data, target, rewards, refit=estimated_rewards is None)

    def _estimate(
        self, data: LoggedBanditData, target: np.ndarray, rewards: np.ndarray | None, refit: bool
    ) -> OPEResult:
        """:meth:`estimate` on validated inputs; ``refit``: the reward model may be refitted."""
        weights = importance_weights(data, target)

        def columns(estimated: np.ndarray | None) -> np.ndarray:
            return np.column_stack(self._terms(data, target, weights, estimated))

        totals = columns(rewards).sum(axis=0)
        value = self._value(totals)
        sums, interval = self._replicate_sums(data, columns, rewards, refit)
        return self._result(data, target, weights, value, self._combine(sums), interval, totals)

    def estimate_difference(
        self,
        data: LoggedBanditData,
        target_probabilities: np.ndarray,
        baseline_probabilities: np.ndarray,
        *,
        estimated_rewards: np.ndarray | None = None,
    ) -> OPEResult:
        """Estimate ``V(target) - V(baseline)``, with a paired bootstrap interval.

        Both values are computed on the same resampled rows (and, for a refit bootstrap, the
        same refitted reward model), so the interval of the difference is much narrower than
        the two separate intervals suggest. The diagnostics are those of the target policy.

        Raises:
            ValueError: As :meth:`estimate`.
        """
        rewards = self._reward_estimates(data, estimated_rewards)
        target = check_target_probabilities(data, target_probabilities)
        baseline = check_target_probabilities(data, baseline_probabilities)
        weights = importance_weights(data, target)
        baseline_weights = importance_weights(data, baseline)
        k = len(self._terms(data, target, weights, rewards))

        def columns(estimated: np.ndarray | None) -> np.ndarray:
            return np.column_stack(
                [
                    *self._terms(data, target, weights, estimated),
                    *self._terms(data, baseline, baseline_weights, estimated),
                ]
            )

        totals = columns(rewards).sum(axis=0)
        value = self._value(totals[:k]) - self._value(totals[k:])
        sums, interval = self._replicate_sums(data, columns, rewards, estimated_rewards is None)
        replicates = self._combine(sums[:, :k]) - self._combine(sums[:, k:])
        return self._result(data, target, weights, value, replicates, interval, totals[:k])

    def _replicate_sums(
        self,
        data: LoggedBanditData,
        columns: Callable[[np.ndarray | None], np.ndarray],
        rewards: np.ndarray | None,
        refit: bool,
    ) -> tuple[np.ndarray, str]:
        """``(n_bootstrap, k)`` resampled sums of the terms, and the kind of interval."""
        return bootstrap_sums(columns(rewards), self.n_bootstrap, self.random_state), "bootstrap"

    def _reward_estimates(
        self, data: LoggedBanditData, estimated_rewards: np.ndarray | None
    ) -> np.ndarray | None:
        if not self.needs_reward_model:
            return None
        if estimated_rewards is None:
            return self.fit_rewards(data)
        rewards = np.asarray(estimated_rewards, dtype=np.float64)
        rewards = at_positions(data, rewards, "estimated rewards")
        if not np.all(np.isfinite(rewards)):
            raise ValueError("estimated rewards must be finite")
        return rewards

    def _value(self, totals: np.ndarray) -> float:
        """The estimate from the totals of the terms.

        Raises:
            ValueError: If it is undefined (SNIPS with no weight at all).
        """
        value = float(self._combine(totals))
        if not np.isfinite(value):
            raise ValueError(
                f"{self.label} is undefined: the target policy gives probability 0 to every "
                "logged action"
            )
        return value

    def _result(
        self,
        data: LoggedBanditData,
        target: np.ndarray,
        weights: np.ndarray,
        value: float,
        replicates: np.ndarray,
        interval: str,
        totals: np.ndarray,
    ) -> OPEResult:
        """The result: ``value``, the percentile interval of ``replicates``, diagnostics."""
        low, high, undefined = self._counted_interval(self.label, replicates)
        mass = unsupported_mass(data, target, self.min_propensity)
        if mass > self.max_unsupported_mass:
            warnings.warn(
                f"{self.label}: {mass:.1%} of the target policy's probability is on actions "
                f"the logging policy (almost) never takes (propensity < {self.min_propensity:g}"
                " or never logged); importance weighting counts their rewards as 0 and a reward"
                " model extrapolates to them",
                OPEWarning,
                stacklevel=3,
            )
        return OPEResult(
            self.label,
            value,
            low,
            high,
            data.n,
            *weight_diagnostics(self._effective_weights(weights)),
            raw_max_weight=float(weights.max()),
            unsupported_mass=mass,
            correction_share=self._correction_share(totals),
            n_replicates=int(replicates.size),
            n_undefined_replicates=undefined,
            interval=interval,
        )

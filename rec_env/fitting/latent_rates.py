r"""Purchase and churn rates behind a purchase history: the likelihood on a grid of rates.

The env under "no action", with engagement held at its starting level, is a discrete-time
"buy till you die" model. In every cycle of ``d`` days (``y = d / 365`` years) an active customer
buys with probability :math:`p = 1 - e^{-\lambda y}`, where :math:`\lambda` is their purchase rate
per year; a cycle without a purchase ends in churn (for good) with probability
:math:`h_m = 1 - e^{-c\, y\, (1 + \min(d (m - 1), 730) / 365)}`, where :math:`c` is the churn rate
and ``m`` counts the cycles since the last purchase (``m = 1`` in the cycle right after it).

A customer with ``x`` repeat occasions, the last in cycle :math:`t_x`, followed for ``T`` cycles,
has the likelihood

.. math::

    L(\lambda, c) = p^x (1 - p)^{t_x - x} e^{-c B} A_{T - t_x}, \qquad
    A_k = (1 - p)^k S_k + \sum_{j=1}^{k} (1 - p)^j S_{j-1} h_j, \qquad
    S_j = \prod_{m \le j} (1 - h_m),

where ``B`` sums :math:`y (1 + \text{lpd} / 365)` over the cycles without a purchase before
:math:`t_x` (each had to pass without churn) and :math:`A_k` is the probability of ``k`` cycles
without a purchase after the last one: active throughout, or churned in cycle ``j``.

:class:`GridLikelihood` evaluates it for every customer on a grid of :math:`(\lambda, c)`;
:mod:`rec_env.fitting.latent_classes` mixes gamma distributions over that grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rec_env.features import FEATURE_HIGH
from rec_env.fitting.rfm import PurchaseHistory

__all__ = ["GridLikelihood", "RateGrid", "fit_gamma", "gamma_on_grid"]

_MAX_DAYS = FEATURE_HIGH["last_purchase_days"]
"""The env caps ``last_purchase_days`` here, and so the churn hazard's growth."""
_FLUSH = -500.0


@dataclass(frozen=True)
class RateGrid:
    """Grid of purchase rates and churn rates (per year) that the mixing distribution lives on.

    Attributes:
        purchase_rates: ``(L,)`` increasing purchase rates.
        churn_rates: ``(C,)`` increasing churn rates.
    """

    purchase_rates: np.ndarray
    churn_rates: np.ndarray

    @classmethod
    def default(cls) -> RateGrid:
        """40 purchase rates from 0.01 to 200 a year and 36 churn rates from 0.001 to 300."""
        return cls(np.geomspace(0.01, 200.0, 40), np.geomspace(0.001, 300.0, 36))

    @property
    def size(self) -> int:
        """Number of grid points."""
        return self.purchase_rates.shape[0] * self.churn_rates.shape[0]


@dataclass(frozen=True)
class _Statistics:
    """Sufficient statistics of each customer for the likelihood."""

    repeats: np.ndarray
    quiet_before_last: np.ndarray
    quiet_after_last: np.ndarray
    churn_exposure: np.ndarray


def _statistics(history: PurchaseHistory) -> _Statistics:
    n, days = history.n_customers, history.cycle_days
    years = days / 365.0
    repeat = history.occasion_cycle >= 1
    customer = history.occasion_customer[repeat]
    cycle = history.occasion_cycle[repeat]
    order = np.lexsort((cycle, customer))
    customer, cycle = customer[order], cycle[order]
    previous = np.zeros_like(cycle)
    same = np.zeros(cycle.shape[0], dtype=bool)
    same[1:] = customer[1:] == customer[:-1]
    previous[same] = cycle[:-1][same[1:]]
    gap = cycle - previous
    # churn exposure of the m-th quiet cycle after a purchase, and its cumulative sum over a gap
    longest = int(max(gap.max(initial=1), history.exposure.max(initial=1))) + 1
    lpd = np.minimum(days * np.arange(longest), _MAX_DAYS)
    per_cycle = years * (1.0 + lpd / 365.0)
    cumulative = np.concatenate([[0.0], np.cumsum(per_cycle)])
    repeats = np.bincount(customer, minlength=n)
    last = np.zeros(n, dtype=np.int64)
    np.maximum.at(last, customer, cycle)
    return _Statistics(
        repeats=repeats.astype(np.int64),
        quiet_before_last=(last - repeats).astype(np.int64),
        quiet_after_last=(history.exposure - last).astype(np.int64),
        churn_exposure=np.bincount(customer, weights=cumulative[gap - 1], minlength=n),
    )


def _log_tail(grid: RateGrid, years: float, days: float, longest: int) -> np.ndarray:
    """``log A_k`` for ``k = 0..longest``: shape ``(longest + 1, L, C)``."""
    log_quiet = -grid.purchase_rates * years  # log(1 - p), (L,)
    m = np.arange(1, longest + 1)
    lpd = np.minimum(days * (m - 1), _MAX_DAYS)
    log_survive = -np.outer(1.0 + lpd / 365.0, grid.churn_rates) * years  # log(1 - h_m), (K, C)
    hazard = -np.expm1(log_survive)
    log_s = np.vstack([np.zeros(grid.churn_rates.shape[0]), np.cumsum(log_survive, axis=0)])
    # churn in cycle j: (1 - p)^j S_{j-1} h_j ; cumulative over j gives the sum for every k
    churn_terms = np.exp(
        m[:, None, None] * log_quiet[None, :, None] + (log_s[:-1] + np.log(hazard))[:, None, :]
    )
    churned = np.vstack([np.zeros((1, *churn_terms.shape[1:])), np.cumsum(churn_terms, axis=0)])
    k = np.arange(longest + 1)
    active = np.exp(k[:, None, None] * log_quiet[None, :, None] + log_s[:, None, :])
    return np.log(active + churned)


@dataclass(frozen=True)
class GridLikelihood:
    """Every customer's likelihood on a grid of (purchase rate, churn rate).

    Customers with the same sufficient statistics share one row.

    Attributes:
        grid: The grid.
        likelihood: ``(u, G)`` likelihood of each distinct history, divided by its row maximum
            (grid order: purchase rate major, churn rate minor).
        log_scale: ``(u,)`` log of each row's maximum.
        counts: ``(u,)`` customers sharing each distinct history.
        inverse: ``(n,)`` row of each customer.
    """

    grid: RateGrid
    likelihood: np.ndarray
    log_scale: np.ndarray
    counts: np.ndarray
    inverse: np.ndarray

    @classmethod
    def from_history(cls, history: PurchaseHistory, grid: RateGrid | None = None) -> GridLikelihood:
        """Compute the likelihood of every customer with at least one cycle of exposure."""
        grid = grid or RateGrid.default()
        stats = _statistics(history)
        keys = np.column_stack(
            [
                stats.repeats,
                stats.quiet_before_last,
                stats.quiet_after_last,
                np.round(stats.churn_exposure * 1e9).astype(np.int64),
            ]
        )
        _, first, inverse, counts = np.unique(
            keys, axis=0, return_index=True, return_inverse=True, return_counts=True
        )
        years = history.cycle_days / 365.0
        log_p = np.log(-np.expm1(-grid.purchase_rates * years))
        log_quiet = -grid.purchase_rates * years
        log_tail = _log_tail(grid, years, history.cycle_days, int(stats.quiet_after_last.max()))
        rows = (
            stats.repeats[first, None, None] * log_p[None, :, None]
            + stats.quiet_before_last[first, None, None] * log_quiet[None, :, None]
            - stats.churn_exposure[first, None, None] * grid.churn_rates[None, None, :]
            + log_tail[stats.quiet_after_last[first]]
        ).reshape(first.shape[0], grid.size)
        log_scale = rows.max(axis=1)
        return cls(
            grid, _exp_flushed(rows - log_scale[:, None]), log_scale, counts, inverse.ravel()
        )


def gamma_on_grid(values: np.ndarray, mean: float, shape: float) -> np.ndarray:
    """A gamma distribution discretised on a geometric grid (probabilities summing to one).

    On a geometric grid each point stands for an interval proportional to its value, so the
    mass at ``v`` is proportional to ``v · pdf(v)``.
    """
    log_mass = shape * np.log(values) - values * shape / mean
    mass = _exp_flushed(log_mass - log_mass.max())
    return mass / mass.sum()


def _exp_flushed(log_values: np.ndarray) -> np.ndarray:
    """``exp`` with values below ``e^-500`` set to 0: subnormal floats make BLAS very slow."""
    return np.where(log_values < _FLUSH, 0.0, np.exp(np.maximum(log_values, _FLUSH)))


def fit_gamma(values: np.ndarray, probabilities: np.ndarray) -> tuple[float, float]:
    r"""The gamma distribution closest to a discrete one: same mean and same mean logarithm.

    That is the maximum-likelihood gamma for the weighted points: the shape ``k`` solves
    :math:`\log k - \psi(k) = \log \bar x - \overline{\log x}` (Minka 2002, "Estimating a
    Gamma distribution").

    Args:
        values: ``(n,)`` positive support points.
        probabilities: ``(n,)`` non-negative weights.

    Returns:
        ``(mean, shape)``; the shape is kept within ``[0.05, 100]``.
    """
    from scipy.optimize import brentq
    from scipy.special import digamma

    p = probabilities / probabilities.sum()
    mean = float(p @ values)
    gap = math.log(mean) - float(p @ np.log(values))
    if gap <= 1.0 / 200.0:
        return mean, 100.0
    shape = brentq(lambda k: math.log(k) - digamma(k) - gap, 1e-4, 1e4)
    return mean, float(min(max(shape, 0.05), 100.0))

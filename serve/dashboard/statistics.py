r"""Means and normal 95 % intervals from sufficient statistics (count, sum, sum of squares).

The summary tables keep sums, not rows, so every estimate here is a mean of per-decision terms
:math:`x_i` with the interval :math:`\bar x \pm 1.96\, s / \sqrt n`, where
:math:`s^2 = (\sum x_i^2 - n \bar x^2) / (n - 1)`.

The off-policy estimate of always taking action :math:`a_0` (no_action) from decisions logged
with propensities :math:`p_i` is inverse propensity scoring (IPS, Horvitz and Thompson 1952;
as :class:`rec_env.agents.ope.InverseProbabilityWeighting` computes it, without clipping):

.. math:: \hat V_{IPS}(a_0) = \frac{1}{n} \sum_i \frac{\mathbb 1[a_i = a_0]}{p_i} r_i ,

a mean of :math:`x_i = \mathbb 1[a_i = a_0] r_i / p_i`, so its interval follows from
:math:`\sum x_i` and :math:`\sum x_i^2`. The running policy's own value is the mean reward
:math:`\bar r` of its decisions (on-policy), and their difference :math:`r_i - x_i` is paired on
the same decisions: its second moment needs :math:`\sum r_i x_i = \sum_{a_i = a_0} r_i^2 / p_i`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Z95", "Estimate", "Moments", "difference"]

Z95 = 1.959963984540054
"""The two-sided 95 % quantile of the standard normal."""


@dataclass(frozen=True)
class Estimate:
    """A mean with its normal 95 % interval (None where the data cannot give one).

    Args:
        value: The mean (None without data).
        ci_low: Lower end of the interval (None with fewer than two terms).
        ci_high: Upper end.
        n: Terms the mean is over.
    """

    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int

    @property
    def standard_error(self) -> float | None:
        """Half the interval's width over :data:`Z95`."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / (2 * Z95)


@dataclass(frozen=True)
class Moments:
    """Count, sum and sum of squares of per-decision terms.

    Args:
        n: Terms.
        total: Their sum.
        total2: The sum of their squares.
    """

    n: int
    total: float
    total2: float

    def __add__(self, other: Moments) -> Moments:
        """The moments of both sets of terms."""
        return Moments(self.n + other.n, self.total + other.total, self.total2 + other.total2)

    def estimate(self) -> Estimate:
        """The mean and its normal 95 % interval."""
        if self.n == 0:
            return Estimate(None, None, None, 0)
        mean = self.total / self.n
        if self.n < 2:
            return Estimate(mean, None, None, self.n)
        variance = max(self.total2 - self.n * mean * mean, 0.0) / (self.n - 1)
        half = Z95 * math.sqrt(variance / self.n)
        return Estimate(mean, mean - half, mean + half, self.n)


def difference(first: Estimate, second: Estimate) -> Estimate:
    """``first - second`` of two independent means, with the interval of their difference."""
    if first.value is None or second.value is None:
        return Estimate(None, None, None, first.n + second.n)
    value = first.value - second.value
    se_first, se_second = first.standard_error, second.standard_error
    if se_first is None or se_second is None:
        return Estimate(value, None, None, first.n + second.n)
    half = Z95 * math.hypot(se_first, se_second)
    return Estimate(value, value - half, value + half, first.n + second.n)

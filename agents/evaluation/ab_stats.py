r"""The statistics of A/B tests, shared by simulated tests and the analysis of real ones.

Every function takes per-customer arrays or counts and returns plain numbers, so that
:mod:`~rec_env.agents.evaluation.abtest` (simulated customers) and
:mod:`~rec_env.agents.evaluation.ab_analysis` (a CSV of a real test) report the same tests.

* **Means** (:func:`mean_ci`, :func:`welch_lift`): the 95 % CI of an arm's mean is
  :math:`\bar x \pm 1.96\, s / \sqrt n`. The difference :math:`\bar x_B - \bar x_A` is tested
  with Welch's unequal-variance t-test (Welch 1947):
  :math:`t = (\bar x_B - \bar x_A) / \sqrt{s_A^2 / n_A + s_B^2 / n_B}` with the
  Welch–Satterthwaite degrees of freedom; its 95 % CI is :math:`\Delta \pm t_{0.975,\nu} SE`.
* **Proportions** (:func:`proportion_ci`, :func:`proportion_lift`): Wald CIs,
  :math:`\hat p \pm 1.96 \sqrt{\hat p \hat q / n}` per arm and
  :math:`\Delta \pm 1.96 \sqrt{\hat p_A \hat q_A / n_A + \hat p_B \hat q_B / n_B}` for the
  difference, tested with the two-proportion z-test on the pooled proportion :math:`\bar p`:
  :math:`z = \Delta / \sqrt{\bar p \bar q (1 / n_A + 1 / n_B)}`.
* **Sample-ratio mismatch** (:func:`sample_ratio_check`): Pearson's chi-square goodness-of-fit
  test of the arm sizes against the planned split, :math:`\chi^2 = \sum_k (n_k - N w_k)^2 / (N
  w_k)` with :math:`K - 1` degrees of freedom. A mismatch at p < 0.001 means the assignment or
  the logging is broken, and no lift from the test can be trusted (Fabijan et al. 2019,
  "Diagnosing sample ratio mismatch in online controlled experiments", KDD).
* **CUPED** (:func:`cuped_adjust`; Deng, Xu, Kohavi and Walker 2013, "Improving the sensitivity
  of online controlled experiments by utilizing pre-experiment data", WSDM):
  :math:`Y^{cv} = Y - (X - \bar X)\,\theta`, with :math:`\theta` the least-squares coefficients of
  :math:`Y` on the pre-period covariates :math:`X`, estimated on all arms pooled. The covariates
  are fixed before the test, so the adjustment leaves every arm's expected mean difference
  unchanged and removes the share :math:`R^2` of the variance that they explain.
* **Power** (:func:`mean_power`, :func:`proportion_power`) and **minimum detectable effects**
  (:func:`mean_mde`, :func:`proportion_mde`), with the normal approximation of the two-sided test
  at level α. For a difference of means with standard error :math:`SE`:
  :math:`1 - \beta = \Phi(|\Delta| / SE - z_{1-\alpha/2}) + \Phi(-|\Delta| / SE - z_{1-\alpha/2})`
  and :math:`MDE = (z_{1-\alpha/2} + z_{1-\beta})\, SE`. For proportions the null uses the pooled
  :math:`\bar p`, as the z-test does, which makes :func:`proportion_power` the inverse of
  :func:`sample_size_two_proportions`. Power computed at the *observed* effect is a function of
  the p-value (Hoenig and Heisey 2001, "The abuse of power"): it says how often a test of this
  size would detect an effect as large as the one seen, not whether the effect is real. The MDE
  is the number to plan the next test with.
* **Planning** (:func:`sample_size_two_proportions`): the customers per arm that detect a change
  of a conversion rate from :math:`p_1` to :math:`p_2` with power :math:`1 - \beta` (Fleiss, Levin
  and Paik 2003, *Statistical Methods for Rates and Proportions*, 3rd ed., eq. 4.14):

  .. math::

      n = \left\lceil \frac{\left(z_{1-\alpha/2} \sqrt{2 \bar p \bar q}
          + z_{1-\beta} \sqrt{p_1 q_1 + p_2 q_2}\right)^2}{(p_2 - p_1)^2} \right\rceil,
      \qquad \bar p = (p_1 + p_2) / 2,

  optionally with Fleiss's continuity correction
  :math:`n' = \frac{n}{4} \left(1 + \sqrt{1 + 4 / (n |p_2 - p_1|)}\right)^2`. Checks: 0.08 vs
  0.06 at α = 0.05 and 80 % power needs 2,554 per arm (JMP's documented example), and 0.45 vs
  0.25 at 90 % power 127.23 with the correction (Zar 1999, *Biostatistical Analysis*, example
  24.26).

Relative lifts (:math:`\Delta / \bar x_A`) are point estimates. scipy is imported on first use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rec_env.agents.evaluation.evaluate import KPI, mean_ci

__all__ = [
    "CONFIDENCE",
    "SRM_ALPHA",
    "Cuped",
    "Lift",
    "SampleRatioCheck",
    "cuped_adjust",
    "mean_ci",
    "mean_difference_se",
    "mean_mde",
    "mean_power",
    "proportion_ci",
    "proportion_lift",
    "proportion_mde",
    "proportion_power",
    "sample_ratio_check",
    "sample_size_two_proportions",
    "welch_lift",
]

CONFIDENCE = 0.95
"""Confidence level of every interval."""

SRM_ALPHA = 0.001
"""p-value below which a sample-ratio mismatch is flagged (the threshold of Fabijan et al.)."""

_Z95 = 1.96


@dataclass(frozen=True)
class Lift:
    """The difference B − A of one metric, its 95 % CI and the test's p-value.

    Attributes:
        metric: Metric name.
        a: Arm A's (the control's) value.
        b: Arm B's (the treatment's) value.
        difference: ``b - a``.
        ci_low: Lower end of the 95 % CI of the difference.
        ci_high: Upper end.
        relative: ``difference / a`` (NaN if ``a`` is 0).
        p_value: Two-sided p-value of "no difference".
        test: The test used.
    """

    metric: str
    a: float
    b: float
    difference: float
    ci_low: float
    ci_high: float
    relative: float
    p_value: float
    test: str


@dataclass(frozen=True)
class SampleRatioCheck:
    """Chi-square test of the arm sizes against the planned split.

    Attributes:
        observed: Customers per arm.
        expected: Customers per arm under the planned split.
        chi2: Pearson's statistic.
        dof: Degrees of freedom (arms − 1).
        p_value: Upper tail of the chi-square distribution.
        mismatch: ``p_value < SRM_ALPHA``: the split is not what was planned.
    """

    observed: tuple[int, ...]
    expected: tuple[float, ...]
    chi2: float
    dof: int
    p_value: float
    mismatch: bool


@dataclass(frozen=True)
class Cuped:
    """The CUPED-adjusted metric and what the adjustment removed.

    Attributes:
        adjusted: ``(n,)`` the metric minus ``(covariates - their pooled mean) @ theta``.
        theta: ``(k,)`` least-squares coefficients of the metric on the covariates (pooled).
        variance_reduction: ``1 - var(adjusted) / var(metric)``, pooled over all customers.
    """

    adjusted: np.ndarray
    theta: np.ndarray
    variance_reduction: float


def proportion_ci(successes: int, n: int) -> KPI:
    """A share and the half-width of its Wald 95 % CI."""
    share = successes / n
    return KPI(share, _Z95 * math.sqrt(share * (1 - share) / n))


def mean_difference_se(a: np.ndarray, b: np.ndarray) -> float:
    """Standard error of ``b.mean() - a.mean()`` without assuming equal variances (Welch's)."""
    return math.sqrt(float(a.var(ddof=1)) / a.size + float(b.var(ddof=1)) / b.size)


def welch_lift(a: np.ndarray, b: np.ndarray, metric: str = "profit_per_customer") -> Lift:
    """Difference of means ``b - a`` with Welch's t-test and its 95 % CI.

    Args:
        a: Per-customer values of arm A (at least two).
        b: Per-customer values of arm B (at least two).
        metric: Name for the report.

    Raises:
        ValueError: If an arm has fewer than two customers.
    """
    from scipy import stats

    if a.size < 2 or b.size < 2:
        raise ValueError("each arm needs at least two customers")
    mean_a, mean_b = float(a.mean()), float(b.mean())
    var_a, var_b = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    difference = mean_b - mean_a
    se = math.sqrt(var_a + var_b)
    if se == 0.0:
        p_value = 1.0 if difference == 0.0 else 0.0
        low = high = difference
    else:
        dof = (var_a + var_b) ** 2 / (var_a**2 / (a.size - 1) + var_b**2 / (b.size - 1))
        p_value = float(2 * stats.t.sf(abs(difference) / se, dof))
        half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, dof)) * se
        low, high = difference - half, difference + half
    relative = difference / mean_a if mean_a != 0 else math.nan
    return Lift(metric, mean_a, mean_b, difference, low, high, relative, p_value, "Welch t-test")


def proportion_lift(
    successes_a: int, n_a: int, successes_b: int, n_b: int, metric: str = "conversion"
) -> Lift:
    """Difference of proportions with the pooled two-proportion z-test and a Wald 95 % CI.

    Raises:
        ValueError: If an arm is empty.
    """
    from scipy import stats

    if n_a < 1 or n_b < 1:
        raise ValueError("each arm needs at least one customer")
    p_a, p_b = successes_a / n_a, successes_b / n_b
    difference = p_b - p_a
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z_score = difference / se_pooled if se_pooled > 0 else 0.0
    p_value = float(2 * stats.norm.sf(abs(z_score)))
    z = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))
    half = z * math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    relative = difference / p_a if p_a > 0 else math.nan
    return Lift(
        metric, p_a, p_b, difference, difference - half, difference + half, relative, p_value,
        "two-proportion z-test",
    )  # fmt: skip


def sample_ratio_check(counts: Sequence[int], shares: Sequence[float]) -> SampleRatioCheck:
    """Pearson's chi-square test of the arm sizes ``counts`` against the planned ``shares``.

    Args:
        counts: Customers per arm (at least two arms).
        shares: Planned share of each arm, in the same order; normalised to sum to 1.

    Raises:
        ValueError: If the lengths differ, there are fewer than two arms, or a share is not
            positive.
    """
    from scipy import stats

    if len(counts) != len(shares):
        raise ValueError(f"{len(shares)} expected shares for {len(counts)} arms")
    if len(counts) < 2:
        raise ValueError("a sample-ratio check needs at least two arms")
    weights = np.asarray(shares, dtype=np.float64)
    if not (np.isfinite(weights).all() and (weights > 0).all()):
        raise ValueError(f"expected shares must be positive, got {list(shares)}")
    observed = np.asarray(counts, dtype=np.float64)
    expected = observed.sum() * weights / weights.sum()
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    dof = len(counts) - 1
    p_value = float(stats.chi2.sf(chi2, dof))
    return SampleRatioCheck(
        tuple(int(c) for c in counts),
        tuple(float(e) for e in expected),
        chi2,
        dof,
        p_value,
        p_value < SRM_ALPHA,
    )


def cuped_adjust(metric: np.ndarray, covariates: np.ndarray) -> Cuped:
    """Remove from ``metric`` the part that pre-period ``covariates`` predict (CUPED).

    Args:
        metric: ``(n,)`` per-customer metric, all arms pooled.
        covariates: ``(n, k)`` pre-period covariates of the same customers (``(n,)`` for one).

    Raises:
        ValueError: If the shapes disagree or a covariate is constant.
    """
    x = np.asarray(covariates, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    if x.shape[0] != metric.shape[0]:
        raise ValueError(f"{x.shape[0]} covariate rows for {metric.shape[0]} metric values")
    centred = x - x.mean(axis=0)
    if not (centred.std(axis=0) > 0).all():
        raise ValueError("a CUPED covariate is constant, so it cannot explain any variance")
    theta, *_ = np.linalg.lstsq(centred, metric - metric.mean(), rcond=None)
    adjusted = metric - centred @ theta
    total = float(metric.var())
    reduction = 1.0 - float(adjusted.var()) / total if total > 0 else 0.0
    return Cuped(adjusted, theta, reduction)


def _z(probability: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(probability))


def _check_level(alpha: float, power: float = 0.5) -> None:
    for name, value in (("alpha", alpha), ("power", power)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be strictly between 0 and 1, got {value:g}")


def mean_power(difference: float, se: float, alpha: float = 0.05) -> float:
    """Power of the two-sided test at level ``alpha`` to detect ``difference`` given its ``se``."""
    from scipy import stats

    _check_level(alpha)
    if se <= 0:
        return 1.0 if difference != 0 else alpha
    shift, z = abs(difference) / se, _z(1 - alpha / 2)
    return float(stats.norm.cdf(shift - z) + stats.norm.cdf(-shift - z))


def mean_mde(se: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest difference of means detected with ``power`` given the difference's ``se``."""
    _check_level(alpha, power)
    return (_z(1 - alpha / 2) + _z(power)) * se


def proportion_power(
    rate_a: float, rate_b: float, n_a: int, n_b: int, alpha: float = 0.05
) -> float:
    """Power of the two-proportion z-test at level ``alpha`` to detect ``rate_a`` → ``rate_b``."""
    from scipy import stats

    _check_level(alpha)
    pooled = (n_a * rate_a + n_b * rate_b) / (n_a + n_b)
    se_null = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    se_alternative = math.sqrt(rate_a * (1 - rate_a) / n_a + rate_b * (1 - rate_b) / n_b)
    if se_alternative == 0.0:
        return 1.0 if rate_a != rate_b else alpha
    z, delta = _z(1 - alpha / 2), abs(rate_b - rate_a)
    return float(
        stats.norm.cdf((delta - z * se_null) / se_alternative)
        + stats.norm.cdf((-delta - z * se_null) / se_alternative)
    )


def proportion_mde(
    rate_a: float, n_a: int, n_b: int, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest rise of ``rate_a`` that the z-test detects with ``power`` (NaN if none can be).

    A rise, not a fall, because a treatment is meant to raise conversion; the fall detected with
    the same power is close to it in size unless ``rate_a`` is near 0 or 1.
    """
    from scipy import optimize

    _check_level(alpha, power)
    if not 0.0 < rate_a < 1.0 or proportion_power(rate_a, 1.0, n_a, n_b, alpha) < power:
        return math.nan

    def shortfall(delta: float) -> float:
        return proportion_power(rate_a, rate_a + delta, n_a, n_b, alpha) - power

    return float(optimize.brentq(shortfall, 1e-12, 1.0 - rate_a, xtol=1e-10))


def sample_size_two_proportions(
    baseline_rate: float,
    target_rate: float,
    alpha: float = 0.05,
    power: float = 0.8,
    continuity_correction: bool = False,
) -> int:
    """Customers per arm to detect ``baseline_rate`` → ``target_rate`` (see the module docstring).

    Raises:
        ValueError: If a rate is not in (0, 1), the rates are equal, or α or power is not in
            (0, 1).
    """
    for name, value in (
        ("baseline rate", baseline_rate),
        ("target rate", target_rate),
        ("alpha", alpha),
        ("power", power),
    ):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be strictly between 0 and 1, got {value:g}")
    delta = abs(target_rate - baseline_rate)
    if delta == 0.0:
        raise ValueError("the target rate must differ from the baseline rate")
    mean = (baseline_rate + target_rate) / 2
    spread = math.sqrt(baseline_rate * (1 - baseline_rate) + target_rate * (1 - target_rate))
    n = (_z(1 - alpha / 2) * math.sqrt(2 * mean * (1 - mean)) + _z(power) * spread) ** 2 / delta**2
    if continuity_correction:
        n = n / 4 * (1 + math.sqrt(1 + 4 / (n * delta))) ** 2
    return math.ceil(n - 1e-9)

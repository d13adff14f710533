r"""Segments as latent classes: a mixture model of purchase rate, churn rate and order value.

A fitted population is a mixture: a customer belongs to segment ``s`` with probability
:math:`w_s`, and inside a segment the hidden parameters are independent,

.. math::

    \lambda \sim \text{Gamma}(\bar\lambda_s, k_s), \quad
    c \sim \text{Gamma}(\bar c_s, k'_s), \quad
    \log v \sim \mathcal N(\mu_s, \tau_s^2),

where :math:`\lambda` is the purchase rate, ``c`` the churn rate and ``v`` the customer's mean
order value. A customer's purchase timing has the likelihood of :mod:`rec_env.fitting.latent_rates`
(integrated over the rate grid), and the mean :math:`m_i` of the logs of their ``n_i`` occasion
values is :math:`\mathcal N(\mu_s, \tau_s^2 + \sigma_w^2 / n_i)` given the segment, with
:math:`\sigma_w` the within-customer spread (the env's ``order_value_sigma``).

:func:`fit_latent_classes` maximises the likelihood by EM (Dempster, Laird and Rubin 1977),
starting from hard segments (k-means on scaled RFM). The E-step gives each customer's segment
responsibilities; the M-step refits each segment's gammas to the segment's posterior over the
grid (the maximum-likelihood gamma of a weighted sample, :func:`~.latent_rates.fit_gamma`)
and its log-normal by weighted moments. Because segments are fitted to posteriors of the latent
parameters and not to counts selected by the segmentation, a simulation of the mixture gives back
the data's distribution of outcomes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rec_env.fitting.latent_rates import GridLikelihood, fit_gamma, gamma_on_grid

__all__ = ["LatentClasses", "OrderValues", "fit_latent_classes"]

_MIN_TAU = 0.05
_NEGLIGIBLE = -60.0
"""Responsibilities below ``e^-60`` are set to 0 (subnormal floats make arithmetic slow)."""


@dataclass(frozen=True)
class OrderValues:
    """Each customer's mean log order value and the within-customer spread.

    Attributes:
        mean_log: ``(n,)`` mean log value of the customer's occasions worth more than 0.
        count: ``(n,)`` number of those occasions (0: no information on value).
        sigma_within: Pooled standard deviation of log values around each customer's mean.
    """

    mean_log: np.ndarray
    count: np.ndarray
    sigma_within: float


@dataclass(frozen=True)
class LatentClasses:
    """A fitted mixture.

    Attributes:
        weights: ``(k,)`` segment shares.
        purchase_rate: ``(k, 2)`` gamma mean and shape of purchases per year.
        churn_rate: ``(k, 2)`` gamma mean and shape of the churn rate per year.
        value: ``(k, 2)`` mean and standard deviation of the log mean order value.
        responsibilities: ``(n, k)`` posterior segment probabilities of each customer.
        log_likelihood: Log-likelihood of the data at the fit.
        iterations: EM iterations run.
    """

    weights: np.ndarray
    purchase_rate: np.ndarray
    churn_rate: np.ndarray
    value: np.ndarray
    responsibilities: np.ndarray
    log_likelihood: float
    iterations: int

    @property
    def k(self) -> int:
        """Number of segments."""
        return int(self.weights.shape[0])

    @property
    def n_parameters(self) -> int:
        """Free parameters: k - 1 weights and six per segment."""
        return 7 * self.k - 1

    def bic(self, n: int) -> float:
        """Bayesian information criterion ``-2 log L + p log n`` (Schwarz 1978)."""
        return -2.0 * self.log_likelihood + self.n_parameters * math.log(n)


def fit_latent_classes(
    likelihood: GridLikelihood,
    values: OrderValues,
    initial_labels: np.ndarray,
    max_iterations: int = 200,
    tolerance: float = 1e-7,
) -> LatentClasses:
    """Fit the mixture by EM from hard initial segments.

    Args:
        likelihood: Every customer's purchase-timing likelihood on the rate grid.
        values: Every customer's order-value summary.
        initial_labels: ``(n,)`` initial segment of each customer, ``0..k-1``.
        max_iterations: EM iterations at most.
        tolerance: Stop when the log-likelihood improves by less than this, relatively.
    """
    k = int(initial_labels.max()) + 1
    responsibilities = np.eye(k)[initial_labels]
    params = _m_step(likelihood, values, responsibilities, _uniform_priors(likelihood, k))
    previous = -math.inf
    log_likelihood = previous
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 - reported below
        responsibilities, log_likelihood, marginals = _e_step(likelihood, values, params)
        params = _m_step(likelihood, values, responsibilities, marginals)
        if log_likelihood - previous < tolerance * abs(log_likelihood):
            break
        previous = log_likelihood
    weights, purchase, churn, value = params
    return LatentClasses(
        weights=weights,
        purchase_rate=purchase,
        churn_rate=churn,
        value=value,
        responsibilities=responsibilities,
        log_likelihood=log_likelihood,
        iterations=iterations,
    )


_Params = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _priors(likelihood: GridLikelihood, purchase: np.ndarray, churn: np.ndarray) -> np.ndarray:
    """``(G, k)`` each segment's discretised gamma × gamma over the grid."""
    grid = likelihood.grid
    columns = [
        np.outer(
            gamma_on_grid(grid.purchase_rates, *purchase[s]),
            gamma_on_grid(grid.churn_rates, *churn[s]),
        ).ravel()
        for s in range(purchase.shape[0])
    ]
    return np.column_stack(columns)


def _uniform_priors(likelihood: GridLikelihood, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform grid priors and their marginal likelihoods, to start the first M-step."""
    prior = np.full((likelihood.grid.size, k), 1.0 / likelihood.grid.size)
    return prior, likelihood.likelihood @ prior


def _value_log_likelihood(values: OrderValues, value: np.ndarray) -> np.ndarray:
    """``(n, k)`` log density of each customer's mean log value under each segment."""
    known = values.count > 0
    variance = (
        value[None, :, 1] ** 2 + values.sigma_within**2 / np.maximum(values.count, 1)[:, None]
    )
    residual = values.mean_log[:, None] - value[None, :, 0]
    log_density = -0.5 * (np.log(2 * math.pi * variance) + residual**2 / variance)
    return np.where(known[:, None], log_density, 0.0)


def _e_step(
    likelihood: GridLikelihood, values: OrderValues, params: _Params
) -> tuple[np.ndarray, float, tuple[np.ndarray, np.ndarray]]:
    weights, purchase, churn, value = params
    prior = _priors(likelihood, purchase, churn)
    marginal = likelihood.likelihood @ prior  # (u, k)
    log_joint = (
        np.log(weights)[None, :]
        + np.log(np.maximum(marginal, 1e-300))[likelihood.inverse]
        + _value_log_likelihood(values, value)
    )
    top = log_joint.max(axis=1, keepdims=True)
    joint = np.where(log_joint - top < _NEGLIGIBLE, 0.0, np.exp(log_joint - top))
    total = joint.sum(axis=1, keepdims=True)
    log_likelihood = float(
        (np.log(total) + top).sum() + likelihood.log_scale[likelihood.inverse].sum()
    )
    return joint / total, log_likelihood, (prior, marginal)


def _m_step(
    likelihood: GridLikelihood,
    values: OrderValues,
    responsibilities: np.ndarray,
    priors: tuple[np.ndarray, np.ndarray],
) -> _Params:
    prior, marginal = priors
    k = responsibilities.shape[1]
    grid = likelihood.grid
    shape = (grid.purchase_rates.shape[0], grid.churn_rates.shape[0])
    purchase = np.zeros((k, 2))
    churn = np.zeros((k, 2))
    value = np.zeros((k, 2))
    rows = likelihood.counts.shape[0]
    known = values.count > 0
    for s in range(k):
        row_weight = np.bincount(likelihood.inverse, weights=responsibilities[:, s], minlength=rows)
        posterior = prior[:, s] * (likelihood.likelihood.T @ (row_weight / marginal[:, s]))
        posterior = posterior.reshape(shape)
        purchase[s] = fit_gamma(grid.purchase_rates, posterior.sum(axis=1))
        churn[s] = fit_gamma(grid.churn_rates, posterior.sum(axis=0))
        value[s] = _fit_log_normal(values, responsibilities[:, s] * known)
    weights = np.maximum(responsibilities.mean(axis=0), 1e-12)
    return weights / weights.sum(), purchase, churn, value


def _fit_log_normal(values: OrderValues, weight: np.ndarray) -> tuple[float, float]:
    """Weighted moments of customers' mean log values, net of within-customer noise."""
    total = float(weight.sum())
    if total <= 0:
        return float(np.mean(values.mean_log[values.count > 0] if values.count.any() else 0.0)), 1.0
    mean = float(weight @ values.mean_log) / total
    noise = values.sigma_within**2 / np.maximum(values.count, 1)
    between = float(weight @ ((values.mean_log - mean) ** 2 - noise)) / total
    return mean, math.sqrt(max(between, _MIN_TAU**2))

"""Fit a customer population to a purchase log (``recenv profiles fit``).

The fitted population describes customers at their first purchase, and reproduces what the log
shows they did next. The steps:

1. **Occasions.** Transactions are grouped into purchase occasions per customer and cycle
   (:func:`~.rfm.history_from_log`); customers observed for less than one whole cycle after
   their first purchase are left out.
2. **Starting segments.** k-means on scaled RFM (:mod:`rec_env.fitting.segmentation`), ``k = 4`` by
   default; with ``segments="auto"`` every k of :data:`AUTO_K` is fitted and the smallest BIC
   wins.
3. **Segments as latent classes.** Every customer's likelihood under the env's no-action dynamics
   on a grid of (purchase rate, churn rate) (:mod:`~.latent_rates`), and their mean log
   order value, feed an EM fit of a mixture (:mod:`~.latent_classes`): each segment has a
   weight, a gamma purchase rate, a gamma churn rate and a log-normal order value. Fitting the
   segments to customers' posteriors, not to the counts that placed them in a k-means cluster,
   keeps segments chosen on outcomes from biasing their rates. The within-customer spread of log
   occasion values (pooled over customers with two occasions or more) becomes
   ``order_value_sigma``; occasions worth 0 are left out.
4. **Rate scale.** The env raises engagement after each purchase, so a simulated customer buys a
   little more than the constant-engagement likelihood assumes. Each segment's purchase rate is
   scaled by the factor that makes the segment, simulated alone, make as many repeat purchases on
   average as its customers in the log (bisection, common random numbers).
5. **Defaults.** Everything a purchase log cannot identify (responsiveness to each channel,
   discount and shipping elasticities, fatigue, unsubscribes, consents, visits) takes the values
   of :mod:`rec_env.fitting.defaults` (``profiles/fitting/defaults.yaml``). Customers enter at their
   first purchase (``last_purchase_days`` = 0).
6. **Check.** The fitted population is simulated under no action with the log's own exposures,
   and the Kolmogorov–Smirnov distance between simulated and observed recency, frequency and
   monetary value is reported (:func:`rec_env.fitting.rfm.rfm_ks_distances`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

import numpy as np

from rec_env.distributions import Distribution
from rec_env.fitting.defaults import (
    DEFAULTS_RESOURCE,
    FITTED_PARAMETERS,
    FitDefaults,
    load_fit_defaults,
)
from rec_env.fitting.latent_classes import LatentClasses, OrderValues, fit_latent_classes
from rec_env.fitting.latent_rates import GridLikelihood
from rec_env.fitting.purchase_log import PurchaseLog, PurchaseLogError
from rec_env.fitting.results import PopulationFit, SegmentFit, name_segments, population_from_fits
from rec_env.fitting.rfm import (
    RFM,
    PurchaseHistory,
    history_from_log,
    rfm,
    rfm_ks_distances,
    simulate_history,
)
from rec_env.fitting.segmentation import kmeans_segments, rfm_features
from rec_env.population import Population

__all__ = [
    "AUTO_K",
    "DEFAULTS_RESOURCE",
    "FITTED_PARAMETERS",
    "FitDefaults",
    "PopulationFit",
    "SegmentFit",
    "fit_population",
    "load_fit_defaults",
]

AUTO_K: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)
"""Numbers of segments that ``segments="auto"`` chooses from (smallest BIC)."""

_ENGAGEMENT_SAMPLE = 20_000
_DEFAULT_SIGMA = 0.5
_SCALE_BRACKET = (0.25, 4.0)
_SCALE_STEPS = 12


def fit_population(
    log: PurchaseLog,
    name: str | None = None,
    segments: int | Literal["auto"] = 4,
    seed: int = 0,
    cycle_days: float = 7.0,
    end_day: int | None = None,
    defaults: FitDefaults | None = None,
    calibration_customers: int = 4000,
) -> PopulationFit:
    """Fit a population to a purchase log (see the module docstring for the method).

    Args:
        log: The transactions.
        name: Population name; defaults to the log's file name without suffixes.
        segments: Number of segments, or ``"auto"`` for the k of :data:`AUTO_K` with the
            smallest BIC.
        seed: Seed of k-means, the calibration and the check.
        cycle_days: Cycle length in days (the env's ``cycle_days``).
        end_day: Last day of the observation (days since 1970-01-01); the log's last date if
            omitted.
        defaults: Values of the parameters the log cannot identify; the shipped ones if omitted.
        calibration_customers: Simulated customers per step of the rate-scale bisection.

    Raises:
        PurchaseLogError: If no customer was observed for a whole cycle after their first purchase.
        ValueError: If the number of segments is invalid for the data.
    """
    from threadpoolctl import threadpool_limits

    defaults = defaults or load_fit_defaults()
    with threadpool_limits(limits=1):  # small matrix products: threads only add contention
        return _fit(log, name, segments, seed, cycle_days, end_day, defaults, calibration_customers)


def _fit(
    log: PurchaseLog,
    name: str | None,
    segments: int | Literal["auto"],
    seed: int,
    cycle_days: float,
    end_day: int | None,
    defaults: FitDefaults,
    calibration_customers: int,
) -> PopulationFit:
    history = _observed_customers(history_from_log(log, cycle_days, end_day), log.source)
    scores = rfm(history)
    features = rfm_features(history, scores)
    likelihood = GridLikelihood.from_history(history)
    values = _order_values(history)
    classes, bics = _latent_classes(features, likelihood, values, segments, seed)
    multiplier = 0.5 + _mean(defaults.observed["engagement_score"], seed)
    population_name = name or log.source.split(".")[0]

    def build(members: list[SegmentFit]) -> Population:
        return population_from_fits(
            population_name, members, values.sigma_within, defaults, log.source, cycle_days
        )

    rng = np.random.default_rng(seed)
    fits = []
    for s in range(classes.k):
        fit = _segment_fit(classes, s, history, scores, values, multiplier)
        if calibration_customers > 0:
            weight = classes.responsibilities[:, s]
            fit = _calibrate_rate(
                fit, build, history, scores, weight, rng, seed, calibration_customers
            )
        fits.append(fit)
    fits = name_segments(fits, history)
    population = build(fits)
    simulated = rfm(simulate_history(population, history.exposure, seed, cycle_days))
    return PopulationFit(
        population=population,
        segments=fits,
        bics=bics,
        log_likelihood=classes.log_likelihood,
        ks=rfm_ks_distances(scores, simulated),
        source=log.source,
        n_customers=history.n_customers,
        n_transactions=log.n_transactions,
        cycle_days=cycle_days,
        seed=seed,
    )


def _latent_classes(
    features: np.ndarray,
    likelihood: GridLikelihood,
    values: OrderValues,
    segments: int | Literal["auto"],
    seed: int,
) -> tuple[LatentClasses, dict[int, float]]:
    """The mixture with ``segments`` classes, or the one of :data:`AUTO_K` with the best BIC."""
    if segments != "auto":
        labels = kmeans_segments(features, segments, seed)
        return fit_latent_classes(likelihood, values, labels), {}
    distinct = np.unique(features, axis=0).shape[0]
    candidates = {
        k: fit_latent_classes(likelihood, values, kmeans_segments(features, k, seed))
        for k in AUTO_K
        if k <= distinct
    }
    if not candidates:
        raise ValueError("too few customers with distinct RFM to choose the number of segments")
    n = features.shape[0]
    bics = {k: classes.bic(n) for k, classes in candidates.items()}
    return candidates[min(bics, key=lambda k: bics[k])], bics


def _observed_customers(history: PurchaseHistory, source: str) -> PurchaseHistory:
    """Keep the customers observed for at least one whole cycle after their first purchase."""
    keep = history.exposure >= 1
    if not keep.any():
        raise PurchaseLogError(
            f"{source}: no customer was observed for a whole cycle ({history.cycle_days:g} days) "
            "after their first purchase; the log is too short to fit purchase rates"
        )
    index = np.cumsum(keep) - 1
    occasions = keep[history.occasion_customer]
    return PurchaseHistory(
        exposure=history.exposure[keep],
        occasion_customer=index[history.occasion_customer[occasions]],
        occasion_cycle=history.occasion_cycle[occasions],
        occasion_value=history.occasion_value[occasions],
        cycle_days=history.cycle_days,
        customer_ids=None if history.customer_ids is None else history.customer_ids[keep],
    )


def _mean(distribution: Distribution, seed: int) -> float:
    rng = np.random.default_rng(seed)
    return float(np.clip(distribution.sample(rng, _ENGAGEMENT_SAMPLE), 0.0, 1.0).mean())


def _order_values(history: PurchaseHistory) -> OrderValues:
    """Customers' mean log occasion value and the pooled within-customer sigma."""
    n = history.n_customers
    positive = history.occasion_value > 0
    if not positive.any():
        raise PurchaseLogError("every transaction has amount 0; cannot fit order values")
    customer = history.occasion_customer[positive]
    log_value = np.log(history.occasion_value[positive])
    count = np.bincount(customer, minlength=n)
    mean_log = np.bincount(customer, weights=log_value, minlength=n) / np.maximum(count, 1)
    repeated = count >= 2
    dof = float((count[repeated] - 1).sum())
    residual = (log_value - mean_log[customer])[repeated[customer]]
    sigma = math.sqrt(float(residual @ residual) / dof) if dof > 0 else _DEFAULT_SIGMA
    return OrderValues(mean_log, count, min(max(sigma, 0.05), 2.0))


def _segment_fit(
    classes: LatentClasses,
    s: int,
    history: PurchaseHistory,
    scores: RFM,
    values: OrderValues,
    engagement_multiplier: float,
) -> SegmentFit:
    """A segment's fitted distributions and its customers' RFM, weighted by responsibility."""
    weight = classes.responsibilities[:, s]
    total = max(float(weight.sum()), 1e-12)
    occasion_weight = weight[history.occasion_customer]
    spend = float(occasion_weight @ history.occasion_value)
    mu, tau = classes.value[s]
    return SegmentFit(
        name=f"segment_{s + 1}",
        customers=round(total),
        share=float(classes.weights[s]),
        mean_frequency=float(weight @ scores.frequency) / total,
        mean_recency=float(weight @ scores.recency) / total,
        mean_exposure=float(weight @ scores.exposure) / total,
        mean_value=spend / max(float(occasion_weight.sum()), 1e-12),
        purchase_rate=(
            classes.purchase_rate[s, 0] / engagement_multiplier,
            classes.purchase_rate[s, 1],
        ),
        churn_rate=(float(classes.churn_rate[s, 0]), float(classes.churn_rate[s, 1])),
        order_value=(math.exp(mu + values.sigma_within**2 / 2), tau),
    )


def _calibrate_rate(
    fit: SegmentFit,
    build: Callable[[list[SegmentFit]], Population],
    history: PurchaseHistory,
    scores: RFM,
    weight: np.ndarray,
    rng: np.random.Generator,
    seed: int,
    customers: int = 4000,
) -> SegmentFit:
    """Scale a segment's purchase rate so that its simulation matches its mean repeat occasions.

    The target is the responsibility-weighted mean frequency of the log's customers. Bisection
    on the log of the scale, simulating the segment alone with exposures drawn from its
    customers' and the same random numbers at every step.
    """
    total = float(weight.sum())
    target = float(weight @ scores.frequency) / max(total, 1e-12)
    if target == 0.0 or total <= 0.0:
        return fit
    exposure = rng.choice(history.exposure, size=customers, p=weight / total)

    def scaled(scale: float) -> SegmentFit:
        mean, shape = fit.purchase_rate
        return replace(fit, purchase_rate=(float(mean * scale), shape), rate_scale=scale)

    def mean_frequency(scale: float) -> float:
        simulated = simulate_history(build([scaled(scale)]), exposure, seed + 1, history.cycle_days)
        return float(rfm(simulated).frequency.mean())

    low, high = (math.log(b) for b in _SCALE_BRACKET)
    for _ in range(_SCALE_STEPS):
        middle = (low + high) / 2
        if mean_frequency(math.exp(middle)) < target:
            low = middle
        else:
            high = middle
    return scaled(math.exp((low + high) / 2))

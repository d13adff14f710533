"""Fit a customer population to a purchase log (``recenv profiles fit``).

The fitted population describes customers at their first purchase, and reproduces what the log
shows they did next. The steps:

1. **Occasions.** Transactions are grouped into purchase occasions per customer and cycle
   (:func:`rec_env.rfm.history_from_log`); customers observed for less than one whole cycle after
   their first purchase are left out.
2. **Segments.** k-means on scaled RFM (:mod:`rec_env.segmentation`): ``k = 4`` by default, or the
   k with the best silhouette with ``segments="auto"``. A segment's weight is its share of
   customers.
3. **Purchase and churn rates.** Every customer's likelihood under the env's no-action dynamics
   on a grid of (purchase rate, churn rate), and the nonparametric maximum-likelihood mixture
   over all customers (:mod:`rec_env.latent_rates`). Each segment gets a gamma purchase rate and
   a gamma churn rate fitted to its customers' average posterior. Because they are fitted to
   posteriors and not to the segment's observed counts, segments chosen on outcomes do not bias
   them, and together they give back the population's heterogeneity.
4. **Rate scale.** The env raises engagement after each purchase, so a simulated customer buys a
   little more than the constant-engagement likelihood assumes. Every purchase rate is scaled by
   one factor, found by bisection on simulations with common random numbers, so that the
   simulated customers make as many repeat purchases on average as the log's.
5. **Order values.** Log-normal per segment: the within-customer spread of log occasion values
   (pooled over customers with two occasions or more) becomes ``order_value_sigma``, and the
   between-customer spread of each segment (the variance of customers' mean log values minus the
   within part) the segment's ``order_value`` sigma. Occasions worth 0 are left out.
6. **Defaults.** Everything a purchase log cannot identify (responsiveness to each channel,
   discount and shipping elasticities, fatigue, unsubscribes, consents, visits) takes the values
   of :data:`DEFAULTS_RESOURCE` (``profiles/fitting/defaults.yaml``).
7. **Check.** The fitted population is simulated under no action with the log's own exposures,
   and the Kolmogorov–Smirnov distance between simulated and observed recency, frequency and
   monetary value is reported (:func:`rec_env.rfm.rfm_ks_distances`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rec_env.config import load_model
from rec_env.distributions import Distribution, ParameterSpec
from rec_env.latent_classes import LatentClasses, OrderValues, fit_latent_classes
from rec_env.latent_rates import GridLikelihood
from rec_env.parameters import HIDDEN_PARAMETERS, SAMPLED_FEATURES
from rec_env.population import Population
from rec_env.purchase_log import PurchaseLog, PurchaseLogError
from rec_env.rfm import (
    RFM,
    PurchaseHistory,
    history_from_log,
    rfm,
    rfm_ks_distances,
    simulate_history,
)
from rec_env.segmentation import kmeans_segments, rfm_features

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

FITTED_PARAMETERS: tuple[str, ...] = ("purchase_rate", "order_value", "churn_rate")
"""Hidden parameters estimated from the log; every other one takes a default."""

DEFAULTS_RESOURCE = "fitting/defaults.yaml"
"""The shipped defaults, relative to the ``rec_env.profiles`` package."""

AUTO_K: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)
"""Numbers of segments that ``segments="auto"`` chooses from (smallest BIC)."""

_ENGAGEMENT_SAMPLE = 20_000
_DEFAULT_SIGMA = 0.5
_EARLY_CHURN = 4.0
_REGULAR_RATE = 2.0
_SCALE_BRACKET = (0.25, 4.0)
_SCALE_STEPS = 12


class FitDefaults(BaseModel):
    """Values of everything a purchase log cannot identify, shared by every fitted segment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contact_tolerance: float = Field(2.0, ge=0)
    history_strength: float = Field(20.0, gt=0)
    observed: dict[str, Distribution]
    hidden: dict[str, ParameterSpec]

    @model_validator(mode="after")
    def _check_keys(self) -> FitDefaults:
        unfitted = tuple(p for p in HIDDEN_PARAMETERS if p not in FITTED_PARAMETERS)
        for section, given, expected in (
            ("observed", self.observed, SAMPLED_FEATURES),
            ("hidden", self.hidden, unfitted),
        ):
            missing = [k for k in expected if k not in given]
            unknown = [k for k in given if k not in expected]
            if missing or unknown:
                raise ValueError(
                    f"{section} must list exactly {', '.join(expected)}"
                    + (f"; missing {', '.join(missing)}" if missing else "")
                    + (f"; unknown or fitted {', '.join(unknown)}" if unknown else "")
                )
        return self


def load_fit_defaults(path: str | Path | None = None) -> FitDefaults:
    """Load fit defaults from a YAML file, or the shipped ones.

    Raises:
        ConfigError: If the file is missing or invalid (the message names file and field).
    """
    if path is None:
        path = Path(str(resources.files("rec_env.profiles") / DEFAULTS_RESOURCE))
    return load_model(Path(path), FitDefaults)


@dataclass(frozen=True)
class SegmentFit:
    """One fitted segment: who is in it and the distributions it got.

    Attributes:
        name: Segment name.
        customers: Customers of the log in the segment.
        share: Their share of all customers (the segment's weight).
        mean_frequency: Mean repeat occasions.
        mean_recency: Mean cycles from the last occasion to the end.
        mean_exposure: Mean cycles observed after the acquisition.
        mean_value: Mean value per occasion.
        purchase_rate: Gamma ``(mean, shape)`` of purchases per year (rate scale applied).
        churn_rate: Gamma ``(mean, shape)`` of the churn rate per year.
        order_value: Log-normal ``(median, sigma)`` of the mean order value.
        rate_scale: Factor already applied to the purchase rate (step 4 of the module docstring).
    """

    name: str
    customers: int
    share: float
    mean_frequency: float
    mean_recency: float
    mean_exposure: float
    mean_value: float
    purchase_rate: tuple[float, float]
    churn_rate: tuple[float, float]
    order_value: tuple[float, float]
    rate_scale: float = 1.0

    def description(self, cycle_days: float) -> str:
        """One sentence with the segment's observed RFM."""
        unit = "weeks" if cycle_days == 7.0 else f"{cycle_days:g}-day cycles"
        return (
            f"{self.share:.1%} of customers: {self.mean_frequency:.2f} repeat purchases in "
            f"{self.mean_exposure:.0f} {unit} on average, the last {self.mean_recency:.0f} "
            f"{unit} before the end, ${self.mean_value:.2f} per purchase."
        )


@dataclass
class PopulationFit:
    """A fitted population and how it was fitted.

    Attributes:
        population: The population, ready for ``build_model(profile=...)``.
        segments: The fitted segments.
        bics: BIC of each candidate number of segments when it was chosen automatically.
        log_likelihood: Log-likelihood of the log under the mixture (before rate scaling).
        ks: Kolmogorov–Smirnov distance of simulated vs observed recency, frequency, monetary.
        source: The log's file name.
        n_customers: Customers used.
        n_transactions: Transactions read.
        cycle_days: Cycle length in days.
        seed: Seed of every random draw.
    """

    population: Population
    segments: list[SegmentFit]
    bics: dict[int, float]
    log_likelihood: float
    ks: dict[str, float]
    source: str
    n_customers: int
    n_transactions: int
    cycle_days: float
    seed: int
    defaults_file: str = field(default=f"profiles/{DEFAULTS_RESOURCE}")

    def to_yaml(self) -> str:
        """The population file, with a header comment saying how it was fitted."""
        k = len(self.segments)
        how_k = "smallest BIC" if self.bics else "fixed"
        ks = ", ".join(f"{name} {value:.3f}" for name, value in self.ks.items())
        header = [
            f"Fitted by `recenv profiles fit` from {self.source}: {self.n_customers:,} customers,",
            f"{self.n_transactions:,} transactions, {self.cycle_days:g}-day cycles, seed "
            f"{self.seed}.",
            f"Segments: k = {k} ({how_k}), started by k-means on scaled RFM. Fitted per segment:",
            "purchase_rate and churn_rate (gamma) and order_value (log-normal) by EM of a",
            "latent-class model; purchase rates then scaled by "
            f"{', '.join(f'{f.rate_scale:.3f}' for f in self.segments)}.",
            f"Everything else takes the defaults of {self.defaults_file}.",
            "Simulated (no action, the log's exposures) vs observed RFM, Kolmogorov-Smirnov",
            f"distance: {ks}.",
        ]
        body = yaml.dump(
            _population_document(self.population),
            Dumper=_PopulationDumper,
            sort_keys=False,
            width=100,
            allow_unicode=True,
        )
        return "".join(f"# {line}\n" for line in header) + body

    def write(self, path: str | Path) -> Path:
        """Write :meth:`to_yaml` to ``path``."""
        path = Path(path)
        path.write_text(self.to_yaml(), encoding="utf-8")
        return path


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
    bics: dict[int, float] = {}
    if segments == "auto":
        candidates = {}
        for k in AUTO_K:
            if k <= np.unique(features, axis=0).shape[0]:
                labels = kmeans_segments(features, k, seed)
                candidates[k] = fit_latent_classes(likelihood, values, labels)
                bics[k] = candidates[k].bic(history.n_customers)
        if not candidates:
            raise ValueError("too few customers with distinct RFM to choose the number of segments")
        classes = candidates[min(bics, key=lambda k: bics[k])]
    else:
        classes = fit_latent_classes(likelihood, values, kmeans_segments(features, segments, seed))
    multiplier = 0.5 + _mean(defaults.observed["engagement_score"], seed)
    population_name = name or log.source.split(".")[0]

    def build(members: list[SegmentFit]) -> Population:
        return _population(
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
    fits = _named(fits, history)
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


def _named(fits: list[SegmentFit], history: PurchaseHistory) -> list[SegmentFit]:
    """Order segments by decreasing frequency and name them by churn, rate and value.

    ``early_churners`` expect to lapse within three months (churn rate of 4 a year or more),
    ``regular_buyers`` buy twice a year or more, ``occasional_buyers`` less; ``_high_value`` /
    ``_low_value`` mark a mean occasion value 25 % above / 20 % below the log's.
    """
    overall_value = float(history.occasion_value.mean())
    ordered = sorted(fits, key=lambda f: -f.mean_frequency)
    names: list[str] = []
    for fit in ordered:
        if fit.churn_rate[0] >= _EARLY_CHURN:
            base = "early_churners"
        elif fit.purchase_rate[0] >= _REGULAR_RATE:
            base = "regular_buyers"
        else:
            base = "occasional_buyers"
        ratio = fit.mean_value / overall_value if overall_value > 0 else 1.0
        if ratio >= 1.25:
            base += "_high_value"
        elif ratio <= 0.8:
            base += "_low_value"
        candidate, suffix = base, 2
        while candidate in names:
            candidate, suffix = f"{base}_{suffix}", suffix + 1
        names.append(candidate)
    return [replace(fit, name=name) for fit, name in zip(ordered, names, strict=True)]


def _round(value: float) -> float:
    return float(f"{value:.4g}")


def _population(
    name: str,
    fits: list[SegmentFit],
    sigma_within: float,
    defaults: FitDefaults,
    source: str,
    cycle_days: float,
) -> Population:
    segments = []
    for fit in fits:
        fitted = {
            "purchase_rate": {
                "dist": "gamma",
                "mean": _round(max(fit.purchase_rate[0], 1e-6)),
                "shape": _round(fit.purchase_rate[1]),
            },
            "order_value": {
                "dist": "lognormal",
                "median": _round(fit.order_value[0]),
                "sigma": _round(fit.order_value[1]),
            },
            "churn_rate": {
                "dist": "gamma",
                "mean": _round(fit.churn_rate[0]),
                "shape": _round(fit.churn_rate[1]),
            },
        }
        hidden = {p: fitted[p] if p in fitted else defaults.hidden[p] for p in HIDDEN_PARAMETERS}
        segments.append(
            {
                "name": fit.name,
                "description": fit.description(cycle_days),
                "weight": _round(fit.share),
                "observed": dict(defaults.observed),
                "hidden": hidden,
            }
        )
    return Population.model_validate(
        {
            "name": name,
            "description": (
                f"Fitted to the purchase log {source}: customers from their first purchase on, "
                f"in {len(fits)} segments whose purchase rates, churn rates and order values are "
                "fitted to the log; documented defaults for everything else."
            ),
            "contact_tolerance": defaults.contact_tolerance,
            "order_value_sigma": _round(sigma_within),
            "history_strength": defaults.history_strength,
            "segments": segments,
        }
    )


class _FlowMapping(dict):  # type: ignore[type-arg]
    """A mapping written on one line (``{dist: gamma, mean: 2, shape: 1}``)."""


class _PopulationDumper(yaml.SafeDumper):
    """Writes distributions on one line, like the shipped population files."""


_PopulationDumper.add_representer(
    _FlowMapping,
    lambda dumper, data: dumper.represent_mapping(
        "tag:yaml.org,2002:map", data.items(), flow_style=True
    ),
)


def _population_document(population: Population) -> dict[str, Any]:
    data = population.model_dump()

    def flow(value: Any) -> Any:
        if isinstance(value, dict):
            if "dist" in value:
                return _FlowMapping(
                    (k, v)
                    for k, v in value.items()
                    if not (k in ("low", "high") and isinstance(v, float) and math.isinf(v))
                )
            return {k: flow(v) for k, v in value.items()}
        if isinstance(value, list):
            return [flow(v) for v in value]
        return value

    return flow(data)

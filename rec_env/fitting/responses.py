r"""Calibrate the response side of a population from a randomised e-mail campaign (Hillstrom).

``recenv profiles fit ORDERS --campaigns hillstrom`` and :func:`fit_campaign_responses` read a
randomised campaign log (one row per customer: features, the arm it was assigned, and visit,
conversion and spend over the campaign window) and fit, per segment, what such a log identifies.
:func:`rec_env.fitting.response_check.check_responses` fits on half of the customers and
simulates the campaign on the other half's twins, against the held-out real uplift and its 95 % CI.

**The campaign in the simulator.** Each arm's e-mail is the catalog's ``recommendation_email``:
a merchandise e-mail showing products, the nearest action of the strategy catalog to Hillstrom's
Mens / Womens e-mails (no discount, no free shipping), and the action the ``default`` population
was calibrated with. The two-week window is **one cycle of 14 days** (``cycle_days`` = window),
not two 7-day cycles: then the simulator's closed-form one-cycle expectations are exactly what
the fit matches, with no approximation for the state change between two cycles. The fitted
quantities are rates per year and probabilities per message, so they carry over to 7-day cycles
(``click_conversion``, "purchase in the cycle after engaging", assumes the e-mail's purchases
come within a week).

**Twins** and **segments**: :mod:`rec_env.fitting.campaign_log`.

**Fit (deterministic, closed form; the seed only splits customers).** Segment cells are small
(one conversion in 170 customers), so each arm's visit and conversion rates per cell are a
log-linear main-effects model in buyer, newbie and channel, fitted by iterative proportional
fitting (the Poisson maximum likelihood; it reproduces every level's observed total). With
window ``y`` years, a twin's engagement ``e``, and the simulator's formulas
(:mod:`rec_env._kernels`):

* control visits ``v0``: ``1 − E[exp(−visit_rate · y)] = v0`` with a gamma ``visit_rate``, whose
  Laplace transform gives the mean in closed form;
* control conversion ``c0``: mean over the cell's twins of ``1 − S_i`` with
  ``S_i = E[exp(−purchase_rate (0.5 + e_i) y)]`` (gamma; solved by bisection, monotone);
* each e-mail arm's visits ``v1 = 1 − (1 − r)(1 − v0)`` gives ``email_responsiveness`` ``r``;
* its conversion ``c1 = 1 − mean S_i (1 − r · click_conversion · (1 + ρ e_i))``, linear in
  ``click_conversion``, with ``ρ`` the mean default ``recommendation_affinity``;
* ``order_value``: spend per conversion (all arms: an e-mail does not change order values in the
  simulator), main effects again; its spread gives ``order_value_sigma``.

**Identification.** One channel, one e-mail per arm and no offer varied: per segment and arm the
data identify the organic visit and purchase rates, the e-mail's visit lift (``r``) and the
product ``r × click_conversion × (1 + recommendation_affinity · e)``. ``click_conversion`` is
fitted given the default ``recommendation_affinity``; SMS and push responsiveness, discount and
shipping elasticities, fatigue, unsubscribes, irritation, discount habituation and churn are not
identified and keep their defaults (:data:`UNIDENTIFIED`); the spread within a segment (gamma
shapes, beta concentrations) is a default too. The population records every source in its
``fitted_from`` block.

**Arms.** The simulator has one e-mail; a log with several e-mail arms gives one set of responses
per arm. The population file describes one of them (``arm``), by default ``any_email``: all
e-mail arms pooled, the campaign's average e-mail.

**Check** (:mod:`rec_env.fitting.response_check`). ``check_responses`` splits the customers in
two (seeded, stratified by arm), fits on one half and, per arm, simulates every held-out twin
(hidden parameters drawn from its segment, seeded) with and without the e-mail on common random
numbers. The simulated uplift in
visits, conversions and spend per customer is compared with the held-out real difference in
means, treated arm minus control, with a 95 % normal-approximation CI (Welch standard error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from rec_env.features import FEATURE_HIGH, FEATURE_INDEX
from rec_env.fitting.campaign_log import (
    ANY_EMAIL,
    CampaignLog,
    campaign_segments,
    mean_order_value,
    require_arms,
    twin_features,
)

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.distributions import Distribution, ParameterSpec
    from rec_env.fitting.defaults import FitDefaults
    from rec_env.fitting.results import PopulationFit
    from rec_env.population import Population

__all__ = [
    "ANY_EMAIL",
    "EMAIL_ACTION",
    "FITTED_RESPONSE_PARAMETERS",
    "UNIDENTIFIED",
    "ResponseFit",
    "SegmentResponse",
    "churn_from_purchase_fit",
    "fit_campaign_responses",
]

EMAIL_ACTION = "recommendation_email"
"""The strategy catalog's action that stands for each arm's e-mail."""

FITTED_RESPONSE_PARAMETERS: tuple[str, ...] = (
    "visit_rate",
    "purchase_rate",
    "order_value",
    "email_responsiveness",
    "click_conversion",
)
"""Hidden parameters a randomised e-mail campaign identifies per segment."""

UNIDENTIFIED: dict[str, str] = {
    "sms_responsiveness": "no SMS was sent",
    "push_responsiveness": "no push notification was sent",
    "discount_elasticity": "no discount was offered",
    "shipping_elasticity": "no free shipping was offered",
    "recommendation_affinity": "one e-mail per arm: confounded with click_conversion",
    "fatigue_sensitivity": "one e-mail per customer, no contact history",
    "unsubscribe_rate": "unsubscribes are not logged",
    "contact_churn_sensitivity": "one e-mail per customer",
    "discount_habituation": "no discount was offered",
    "irritation": "opens of ignored e-mails are not logged",
    "churn_rate": "a two-week window shows no lapsing",
}
"""Hidden parameters a one-channel, no-offer campaign cannot identify, and why."""

_VISIT_SHAPE = 2.0
_PURCHASE_SHAPE = 2.0
_ORDER_VALUE_SIGMA = 0.3
_CHURN_DEFAULT = {"dist": "gamma", "mean": 0.33, "shape": 3.0}
_RESPONSIVENESS_RANGE = (1e-3, 0.95)
_CONVERSION_RANGE = (1e-4, 0.95)
_IPF_ITERATIONS = 200


# ---------------------------------------------------------------------------- the fit
def _main_effect_rates(levels: np.ndarray, exposure: np.ndarray, events: np.ndarray) -> np.ndarray:
    """Rates per cell of a log-linear main-effects model, by iterative proportional fitting.

    Args:
        levels: ``(n_cells, n_factors)`` level of each factor in each cell.
        exposure: ``(n_cells,)`` customers (or conversions) per cell.
        events: ``(n_cells,)`` events (or dollars) per cell.

    Returns:
        ``(n_cells,)`` rates whose totals over every level of every factor equal the observed.
    """
    total = float(exposure.sum())
    rate = np.full(levels.shape[0], float(events.sum()) / total if total > 0 else 0.0)
    for _ in range(_IPF_ITERATIONS):
        for f in range(levels.shape[1]):
            size = int(levels[:, f].max()) + 1
            observed = np.bincount(levels[:, f], weights=events, minlength=size)
            fitted = np.bincount(levels[:, f], weights=exposure * rate, minlength=size)
            factor = np.divide(observed, fitted, out=np.ones(size), where=fitted > 0)
            rate = rate * factor[levels[:, f]]
    return rate


def _gamma_survival(mean: float, shape: float, exposure: np.ndarray) -> np.ndarray:
    """``E[exp(−λ · exposure)]`` for a gamma ``λ`` (its Laplace transform)."""
    return (1.0 + mean * exposure / shape) ** -shape


def _solve_purchase_rate(target: float, exposure: np.ndarray) -> float:
    """The gamma mean whose mean purchase probability over ``exposure`` is ``target``."""
    if target <= 0.0 or exposure.size == 0:
        return 1e-6

    def gap(mean: float) -> float:
        return float(1.0 - _gamma_survival(mean, _PURCHASE_SHAPE, exposure).mean()) - target

    low, high = 0.0, 1.0
    while gap(high) < 0.0 and high < 1e6:
        high *= 4.0
    for _ in range(80):  # bisection: monotone, deterministic
        middle = (low + high) / 2
        low, high = (middle, high) if gap(middle) < 0.0 else (low, middle)
    return max((low + high) / 2, 1e-6)


@dataclass(frozen=True)
class SegmentResponse:
    """One segment's fitted response, per e-mail arm.

    Attributes:
        name: Segment name.
        customers: Customers of the fitted log in the segment.
        visit_rate: Mean organic visits per year (gamma mean).
        purchase_rate: Mean organic purchases per year at engagement 0.5 (gamma mean).
        order_value: Mean order value, USD.
        email_responsiveness: P(e-mail visit) by arm.
        click_conversion: P(purchase | e-mail visit) of a plain message, by arm.
        targets: The main-effects rates matched: ``{arm: {"visit": v, "conversion": c}}``, the
            control arm under ``"control"``.
        last_purchase_days: Mean and variance of the twins' ``last_purchase_days``.
        engagement: Mean and variance of the twins' ``engagement_score``.
    """

    name: str
    customers: int
    visit_rate: float
    purchase_rate: float
    order_value: float
    email_responsiveness: dict[str, float]
    click_conversion: dict[str, float]
    targets: dict[str, dict[str, float]]
    last_purchase_days: tuple[float, float]
    engagement: tuple[float, float]


@dataclass
class ResponseFit:
    """Fitted responses per segment and arm, and the populations they make.

    Attributes:
        segments: One entry per segment (empty segments keep the main-effects rates).
        arms: The e-mail arms fitted, with :data:`ANY_EMAIL` last.
        source: The campaign file's name.
        n_customers: Customers fitted.
        window_days: Outcome window, days (the population's cycle).
        order_value_sigma: Within-customer sigma of log order value.
        defaults: What the campaign cannot identify.
        churn_rate: Gamma spec of the churn rate (not identified by a campaign).
        churn_source: Where ``churn_rate`` came from.
    """

    segments: list[SegmentResponse]
    arms: tuple[str, ...]
    source: str
    n_customers: int
    window_days: float
    order_value_sigma: float
    defaults: FitDefaults
    churn_rate: dict[str, Any] = field(default_factory=lambda: dict(_CHURN_DEFAULT))
    churn_source: str = ""

    def fitted_from(self, arm: str = ANY_EMAIL) -> dict[str, str]:
        """Where each hidden parameter and ``order_value_sigma`` of :meth:`population` came from."""
        window = f"{self.window_days:g}-day"
        per_segment = "per segment, main effects of buyer, newbie and channel"
        data = f"data: {self.source}"
        sources = {
            "visit_rate": f"{data}, control arm's {window} visit rate, {per_segment}; "
            f"gamma shape {_VISIT_SHAPE:g} is a default",
            "purchase_rate": f"{data}, control arm's {window} conversion rate, {per_segment}; "
            f"gamma shape {_PURCHASE_SHAPE:g} is a default",
            "order_value": f"{data}, spend per conversion (all arms), {per_segment}; "
            f"sigma {_ORDER_VALUE_SIGMA:g} is a default",
            "email_responsiveness": f"{data}, visit uplift of {arm} over the control, "
            f"{per_segment}; concentration is a default",
            "click_conversion": f"{data}, conversion uplift of {arm} over the control, "
            f"{per_segment}, given the default recommendation_affinity (only their product "
            "with email_responsiveness is identified); concentration is a default",
            "order_value_sigma": f"{data}, spread of spend per conversion",
        }
        for name, why in UNIDENTIFIED.items():
            if name == "churn_rate" and self.churn_source:
                sources[name] = self.churn_source
            elif name == "churn_rate":
                sources[name] = f"default: not identified ({why}); the default population's mean"
            else:
                sources[name] = f"default: not identified ({why})"
        return sources

    def population(
        self,
        arm: str = ANY_EMAIL,
        name: str | None = None,
        responses: Literal["fitted", "default"] = "fitted",
    ) -> Population:
        """The population whose e-mail responds like ``arm``'s.

        Args:
            arm: An e-mail arm of :attr:`arms`.
            name: Population name (default: the campaign file's stem and the arm).
            responses: ``"default"`` keeps ``email_responsiveness`` and ``click_conversion`` at
                their defaults (the uncalibrated baseline of :func:`check_responses`).

        Raises:
            ValueError: If ``arm`` is not one of :attr:`arms`.
        """
        from rec_env.population import Population

        if arm not in self.arms:
            raise ValueError(f"unknown arm {arm!r}; choose one of {', '.join(self.arms)}")
        total = sum(s.customers for s in self.segments)
        segments = [
            self._segment(s, arm, responses, s.customers / total)
            for s in self.segments
            if s.customers > 0
        ]
        fitted_from = self.fitted_from(arm)
        if responses == "default":
            for p in ("email_responsiveness", "click_conversion"):
                fitted_from[p] = "default: the uncalibrated baseline"
        stem = self.source.split(".")[0]
        return Population.model_validate(
            {
                "name": name or f"{stem}_{arm}",
                "description": (
                    f"Responses fitted to the randomised campaign {self.source} ({arm}'s e-mail "
                    f"as {EMAIL_ACTION}, {self.window_days:g}-day window): {len(segments)} "
                    "segments by buyer, newbie and channel; documented defaults for what one "
                    "e-mail campaign cannot identify (see fitted_from)."
                ),
                "contact_tolerance": self.defaults.contact_tolerance,
                "order_value_sigma": _round(self.order_value_sigma),
                "history_strength": self.defaults.history_strength,
                "segments": segments,
                "fitted_from": fitted_from,
            }
        )

    def _segment(
        self, s: SegmentResponse, arm: str, responses: str, share: float
    ) -> dict[str, Any]:
        hidden: dict[str, Any] = dict(self.defaults.hidden)
        hidden["churn_rate"] = self.churn_rate
        hidden["visit_rate"] = _gamma(s.visit_rate, _VISIT_SHAPE)
        hidden["purchase_rate"] = _gamma(s.purchase_rate, _PURCHASE_SHAPE)
        hidden["order_value"] = {
            "dist": "lognormal",
            "median": _round(s.order_value * math.exp(-(_ORDER_VALUE_SIGMA**2) / 2)),
            "sigma": _ORDER_VALUE_SIGMA,
        }
        if responses == "fitted":
            for p, values in (
                ("email_responsiveness", s.email_responsiveness),
                ("click_conversion", s.click_conversion),
            ):
                concentration = self.defaults.hidden[p].concentration  # type: ignore[union-attr]
                hidden[p] = {
                    "dist": "beta",
                    "mean": _round(values[arm]),
                    "concentration": concentration,
                }
        observed: dict[str, Any] = dict(self.defaults.observed)
        mean, var = s.last_purchase_days
        observed["last_purchase_days"] = {
            "dist": "gamma",
            "mean": _round(max(mean, 1.0)),
            "shape": _round(min(max(mean**2 / max(var, 1e-9), 0.5), 50.0)),
            "high": FEATURE_HIGH["last_purchase_days"],
        }
        mean, var = s.engagement
        mean = min(max(mean, 1e-3), 1 - 1e-3)
        observed["engagement_score"] = {
            "dist": "beta",
            "mean": _round(mean),
            "concentration": _round(min(max(mean * (1 - mean) / max(var, 1e-9) - 1, 1.0), 200.0)),
        }
        for flag in (
            "discount_sensitive",
            "free_shipping_preferred",
            "consent_sms",
            "consent_push",
        ):
            observed[flag] = {"dist": "bernoulli", "p": 0.0}
        observed["consent_email"] = {"dist": "bernoulli", "p": 1.0}
        return {
            "name": s.name,
            "description": _segment_description(s, arm, self.window_days),
            "weight": _round(share),
            "observed": observed,
            "hidden": hidden,
        }

    def to_yaml(self, arm: str = ANY_EMAIL, name: str | None = None) -> str:
        """The population file of :meth:`population`, with a header saying how it was fitted."""
        import yaml

        from rec_env.fitting.results import _population_document, _PopulationDumper

        population = self.population(arm, name)
        document = _population_document(population)
        document["fitted_from"] = dict(population.fitted_from or {})
        header = [
            f"Responses fitted by `recenv profiles fit --campaigns` from {self.source}: "
            f"{self.n_customers:,} customers,",
            f"{self.window_days:g}-day window as one cycle; {arm}'s e-mail is {EMAIL_ACTION}.",
            "Segments: buyer x newbie x channel. fitted_from says where each parameter came from.",
        ]
        body = yaml.dump(
            document, Dumper=_PopulationDumper, sort_keys=False, width=100, allow_unicode=True
        )
        return "".join(f"# {line}\n" for line in header) + body

    def write(self, path: str | Path, arm: str = ANY_EMAIL, name: str | None = None) -> Path:
        """Write :meth:`to_yaml` to ``path``."""
        path = Path(path)
        path.write_text(self.to_yaml(arm, name), encoding="utf-8")
        return path


def _segment_description(s: SegmentResponse, arm: str, window_days: float) -> str:
    control, treated = s.targets["control"], s.targets[arm]
    return (
        f"{s.customers:,} campaign customers; in {window_days:g} days the control visits "
        f"{control['visit']:.1%} and buys {control['conversion']:.2%}, {arm} "
        f"{treated['visit']:.1%} and {treated['conversion']:.2%} (main effects)."
    )


def _round(value: float) -> float:
    return float(f"{value:.4g}")


def _gamma(mean: float, shape: float) -> dict[str, Any]:
    return {"dist": "gamma", "mean": _round(max(mean, 1e-6)), "shape": shape}


def _mean(spec: ParameterSpec) -> float:
    """Mean of a default's distribution (before clipping); a conditional one for untagged twins."""
    from rec_env.distributions import Bernoulli, Beta, Conditional, Constant, Gamma, LogNormal

    dist: Distribution = spec.if_0 if isinstance(spec, Conditional) else spec
    match dist:
        case Constant():
            return dist.value
        case LogNormal():
            return dist.median * math.exp(dist.sigma**2 / 2)
        case Gamma() | Beta():
            return dist.mean
        case Bernoulli():
            return dist.p
    return float(
        getattr(dist, "mean", (getattr(dist, "low", 0.0) + getattr(dist, "high", 0.0)) / 2)
    )


def fit_campaign_responses(
    log: CampaignLog,
    defaults: FitDefaults | None = None,
    churn_rate: dict[str, Any] | None = None,
    churn_source: str = "",
) -> ResponseFit:
    """Fit each segment's response to every e-mail arm of a randomised campaign.

    Deterministic: no random draw depends on the data (see the module docstring).

    Args:
        log: The campaign (all of it, or the fitting half of :func:`split_campaign`).
        defaults: Values of what the campaign cannot identify; the shipped fit defaults if
            omitted.
        churn_rate: Gamma spec (``{"dist": "gamma", "mean": …, "shape": …}``) of the churn rate,
            e.g. from a purchase-log fit; the default population's mean if omitted.
        churn_source: Where ``churn_rate`` came from (for ``fitted_from``).

    Raises:
        CampaignLogError: If an arm has no customers.
    """
    from rec_env.fitting.defaults import load_fit_defaults

    require_arms(log)
    defaults = defaults or load_fit_defaults()
    codes, names, levels = campaign_segments(log)
    n_cells = len(names)
    twins = twin_features(log)
    engagement = twins[:, FEATURE_INDEX["engagement_score"]]
    days = twins[:, FEATURE_INDEX["last_purchase_days"]]
    years = log.window_days / 365.0
    rho = _mean(defaults.hidden["recommendation_affinity"])
    arms = (*log.treated_arms, ANY_EMAIL)

    def rates(
        mask: np.ndarray, outcome: np.ndarray, exposure: np.ndarray | None = None
    ) -> np.ndarray:
        base = np.bincount(codes[mask], minlength=n_cells).astype(float)
        exposure = base if exposure is None else exposure
        events = np.bincount(codes[mask], weights=outcome[mask], minlength=n_cells)
        return _main_effect_rates(levels, exposure, events)

    control = log.arm == log.control
    targets = {
        arm: {o: rates(m, log.outcome(o)) for o in ("visit", "conversion")}
        for arm, m in (("control", control), *((a, log.treated(a)) for a in arms))
    }
    bought = log.conversion > 0.5
    conversions = np.bincount(codes[bought], minlength=n_cells).astype(float)
    order_value = rates(bought, log.spend, conversions)
    segments = []
    for k in range(n_cells):
        rows = codes == k
        exposure = (0.5 + engagement[rows]) * years
        v0 = min(targets["control"]["visit"][k], 0.99)
        visit_rate = _VISIT_SHAPE / years * ((1.0 - v0) ** (-1.0 / _VISIT_SHAPE) - 1.0)
        purchase_rate = _solve_purchase_rate(targets["control"]["conversion"][k], exposure)
        survival = _gamma_survival(purchase_rate, _PURCHASE_SHAPE, exposure)
        lift = (1.0 + rho * engagement[rows]) * survival
        responsiveness, conversion = {}, {}
        for arm in arms:
            v1, c1 = targets[arm]["visit"][k], targets[arm]["conversion"][k]
            r = float(np.clip((v1 - v0) / (1.0 - v0), *_RESPONSIVENESS_RANGE))
            organic = (
                1.0 - float(survival.mean()) if rows.any() else targets["control"]["conversion"][k]
            )
            denominator = r * (float(lift.mean()) if rows.any() else 1.0 + rho * 0.3)
            responsiveness[arm] = r
            conversion[arm] = float(np.clip((c1 - organic) / denominator, *_CONVERSION_RANGE))
        segments.append(
            SegmentResponse(
                name=names[k],
                customers=int(rows.sum()),
                visit_rate=float(visit_rate),
                purchase_rate=purchase_rate,
                order_value=float(order_value[k]) if order_value[k] > 0 else mean_order_value(log),
                email_responsiveness=responsiveness,
                click_conversion=conversion,
                targets={a: {o: float(t[o][k]) for o in t} for a, t in targets.items()},
                last_purchase_days=_moments(days[rows]),
                engagement=_moments(engagement[rows]),
            )
        )
    return ResponseFit(
        segments=segments,
        arms=arms,
        source=log.source,
        n_customers=log.n,
        window_days=log.window_days,
        order_value_sigma=_order_value_sigma(log.spend[bought]),
        defaults=defaults,
        churn_rate=dict(churn_rate or _CHURN_DEFAULT),
        churn_source=churn_source,
    )


def churn_from_purchase_fit(fit: PopulationFit) -> tuple[dict[str, Any], str]:
    """One gamma churn rate for a purchase log's segments, and its ``fitted_from`` source.

    The segments' mixture of gamma churn rates is skewed (CDNOW: early churners at 8 and 32 a
    year next to regular buyers at 0.3), so its mean says little. The gamma returned has the
    mixture's survival ``E[exp(−λ t)]`` at 3 and 12 months (least squares on the log of mean
    and shape from a fixed start: deterministic).

    Args:
        fit: The purchase-log fit (:func:`rec_env.fitting.fit_population`).
    """
    from scipy.optimize import least_squares

    horizons = np.array([0.25, 1.0])
    total = sum(s.share for s in fit.segments) or 1.0
    target = sum(
        s.share / total * _gamma_survival(s.churn_rate[0], s.churn_rate[1], horizons)
        for s in fit.segments
    )

    def gap(log_params: np.ndarray) -> np.ndarray:
        mean, shape = np.exp(log_params)
        return np.log(_gamma_survival(mean, shape, horizons)) - np.log(target)

    mean, shape = np.exp(least_squares(gap, x0=np.log([1.0, 1.0])).x)
    source = (
        f"data: purchase log {fit.source}, one gamma with its {len(fit.segments)} segments' "
        f"survival at 3 and 12 months ({target[0]:.0%}, {target[1]:.0%}); the logs share no "
        "customers"
    )
    return {"dist": "gamma", "mean": _round(float(mean)), "shape": _round(float(shape))}, source


def _moments(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return 1.0, 1.0
    return float(values.mean()), float(values.var())


def _order_value_sigma(spend: np.ndarray) -> float:
    """Within-customer sigma: the log spread of order values less the between-customer part."""
    spend = spend[spend > 0]
    if spend.size < 2:
        return 0.5
    cv2 = float(spend.var() / spend.mean() ** 2)
    total = math.log1p(cv2)
    return float(min(max(math.sqrt(max(total - _ORDER_VALUE_SIGMA**2, 0.0)), 0.05), 2.0))

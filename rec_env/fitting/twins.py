r"""Customer twins: each real customer as a simulated one, drawn from their own posterior.

A twin of customer ``i`` is a simulator customer whose observed features are ``i``'s, built
from their logs by :func:`~rec_env.fitting.builder.build_features`, and whose hidden parameters
are drawn from ``i``'s posterior given their purchase history:

1. **Purchase timing** comes from the Pareto/NBD model with the first purchase's value as a
   time-invariant covariate (:mod:`rec_env.fitting.lifetime`; why that model is explained
   there), fitted on every customer's weekly purchase occasions up to ``as_of``. Given the
   history, ``i`` is alive with probability :math:`P_i(\text{alive})`; if alive, the weekly
   purchase rate is :math:`\lambda_i \sim \mathrm{Gamma}(r + x_i, \alpha_i + T_i)` and the death
   rate :math:`\mu_i \sim \mathrm{Gamma}(s, \beta_i + T_i)`, independently (exact for
   Pareto/NBD). A twin draws alive-or-not, then both rates.
2. **Order value** is the gamma-gamma posterior mean (:func:`~rec_env.fitting.lifetime.
   fit_spend_model`) of the customer's repeat orders.
3. **Everything else** (channel responsiveness, offer lifts, fatigue …) is drawn from the
   population segment that best explains the drawn purchase rate (the segment's prior density of
   ``purchase_rate`` times its weight), so customers no longer all fall into the largest
   segment.

**How the rates map onto the simulator.** A simulated customer buys in a cycle with probability
:math:`1 - e^{-\text{purchase\_rate}\,(0.5 + e)\,d/365}` (``e`` engagement, ``d`` days per
cycle), at most once; the model expects :math:`\lambda d / 7` purchase occasions a cycle, so
``purchase_rate`` = :math:`-\log(1 - \lambda d/7)\,365 / (d\,(0.5 + \bar e))` keeps that
expectation. Engagement moves (it rises after a purchase and decays in quiet weeks), so
:math:`\bar e` is the twin's engagement averaged over the forecast horizon; the churn hazard
``churn_rate · (1 + last_purchase_days / 365)`` per year is matched to :math:`\mu` at the
horizon's average ``last_purchase_days`` in the same way. A dead twin never buys. A log without
visits shows no engagement from them, so twins built from orders alone start no lower than the
engagement the population's visit rate holds (:func:`stationary_engagement`; 0.5 in the fitted
populations). These approximate a constant-rate process by the simulator's engagement-driven
one: how far the twins' simulated forecast lands from the model's own is measured in
``benchmarks/cdnow_holdout.py`` (the ``recenv twins`` row) and ``docs/benchmarks/cdnow.md``.

Every draw comes from the seeded generator passed in; the fit itself has no randomness.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rec_env.features import FEATURE_HIGH, FEATURE_INDEX
from rec_env.fitting.purchase_log import PurchaseLog
from rec_env.parameters import HIDDEN_PARAMETERS

__all__ = [
    "TWINS_FORMAT",
    "TwinDraws",
    "TwinPool",
    "Twins",
    "fit_twins",
    "load_twins",
    "simulate_twins",
    "stationary_engagement",
]

_HIDDEN = {name: j for j, name in enumerate(HIDDEN_PARAMETERS)}
DEFAULT_HORIZON_WEEKS = 26
"""Forecast horizon the rate mapping averages engagement and days since purchase over."""

TWINS_FORMAT = "recenv-twins/1"
"""The ``format`` written into a twins file by :meth:`Twins.save`."""

_UNITS = ("weeks", "days")


@dataclass(frozen=True)
class TwinDraws:
    """Simulator customers drawn from the twins' posteriors, ``draws`` per customer.

    Attributes:
        observed: ``(m, 16)`` observed features (row ``k`` is customer ``k % n``).
        hidden: ``(m, P)`` hidden parameters.
        segments: ``(m,)`` segment indices.
        alive: ``(m,)`` whether the twin is alive at ``as_of``.
        customer: ``(m,)`` index of the customer each twin is of.
        weekly_rate: ``(m,)`` the drawn purchase rate, weekly occasions per week.
        death_rate: ``(m,)`` the drawn death rate, per week.
    """

    observed: np.ndarray
    hidden: np.ndarray
    segments: np.ndarray
    alive: np.ndarray
    customer: np.ndarray
    weekly_rate: np.ndarray
    death_rate: np.ndarray


@dataclass(frozen=True)
class Twins:
    """Real customers' observed features and purchase posteriors, ready to be simulated.

    Attributes:
        customer_ids: ``(n,)`` ids, sorted.
        features: ``(n, 16)`` observed features at ``as_of``.
        lifetime: The fitted :class:`~rec_env.fitting.lifetime.LifetimeFit` (weeks).
        order_value: ``(n,)`` posterior mean order value.
        as_of: Last day of the history (days since 1970-01-01).
        population: The population the other hidden parameters come from.
        cycle_days: Days per simulated cycle.
        unit: ``"weeks"``: the model counts weekly purchase occasions and the twins buy at most
            once a cycle; ``"days"``: it counts purchase days and the twins are simulated with
            purchases at day resolution (``EnvSettings(purchase_days=True)``).
        engagement_mean: ``(n,)`` each customer's twins' average ``engagement_score`` over
            ``calibration_weeks`` in the simulator (:meth:`calibrated`), or ``None``: the rate
            mapping then uses the starting engagement's decay.
        last_mean: ``(n,)`` the same average of ``last_purchase_days``, or ``None``.
        calibration_weeks: The horizon those averages are over (0: not calibrated).
    """

    customer_ids: np.ndarray
    features: np.ndarray
    lifetime: Any
    order_value: np.ndarray
    as_of: int
    population: str
    cycle_days: int = 7
    unit: str = "weeks"
    engagement_mean: np.ndarray | None = None
    last_mean: np.ndarray | None = None
    calibration_weeks: int = 0

    @property
    def n(self) -> int:
        """Number of customers."""
        return int(self.customer_ids.shape[0])

    def p_alive(self) -> np.ndarray:
        """``(n,)`` P(alive at ``as_of`` | history)."""
        return self.lifetime.p_alive()

    def pool(self, rng: np.random.Generator, chunk: int = 256) -> TwinPool:
        """A source of new simulator customers for the envs: random customers' twins."""
        return TwinPool(self, rng, chunk)

    def calibrated(
        self, weeks: int = 52, *, seed: int = 0, draws: int = 16, rounds: int = 3
    ) -> Twins:
        """These twins with the rate mapping fitted per customer in the simulator.

        :func:`simulate_twins` refines each simulated twin's mapping on its own path; the envs
        draw new twins one at a time and cannot. This runs ``draws`` twins of every customer for
        ``weeks`` with no message, refining the mapping ``rounds`` times, and keeps each
        customer's average engagement and days since purchase: twins drawn later (by
        :meth:`draw`, the envs' pools, ``EnvSettings(customers=...)``) then buy at about their
        model's rate on average over that horizon, instead of the uncalibrated mapping's
        engagement feedback (which buys 40 % or more above it on CDNOW).

        Raises:
            ValueError: If ``weeks``, ``draws`` or ``rounds`` is below 1.
        """
        if min(weeks, draws, rounds) < 1:
            raise ValueError("weeks, draws and rounds must be at least 1")
        drawn, _, _, _, engagement, last = _calibration(self, weeks, seed, draws, rounds, None)
        # A twin's purchases scale with rate * (0.5 + its engagement) / (0.5 + the mean), so the
        # mean that keeps the customer's expected purchases is weighted by the drawn rates (and
        # the churn side's by the death rates).
        return replace(
            self,
            engagement_mean=_weighted_mean(
                drawn.customer, engagement, drawn.weekly_rate * drawn.alive, self.n
            ),
            last_mean=_weighted_mean(drawn.customer, last, drawn.death_rate, self.n),
            calibration_weeks=int(weeks),
        )

    def with_consent(self, channels: tuple[str, ...] | list[str]) -> Twins:
        """These twins with consent on ``channels`` for every customer.

        A purchase log has no consent table, and without one the feature builder gives no
        consent (nothing is ever sent). Simulating what messages would do needs an explicit
        assumption; a real send still needs the real consent.

        Raises:
            ValueError: For an unknown channel.
        """
        from rec_env.features import CHANNELS

        unknown = sorted(set(channels) - set(CHANNELS))
        if unknown:
            raise ValueError(f"unknown channel {unknown[0]!r}; channels: {', '.join(CHANNELS)}")
        features = self.features.copy()
        for channel in channels:
            features[:, FEATURE_INDEX[f"consent_{channel}"]] = 1.0
        return replace(self, features=features)

    def sample(self, rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``k`` twins of customers drawn uniformly: observed, hidden and segments.

        The interface of :meth:`rec_env.population.CustomerSampler.sample`, so a customer model
        whose settings name a twins file (``EnvSettings(customers=...)``) draws cohorts from
        them.
        """
        drawn = self.draw(rng, rows=rng.integers(0, self.n, int(k)))
        return drawn.observed, drawn.hidden, drawn.segments

    def save(self, path: str | Path) -> Path:
        """Write the twins to ``path`` (``.npz``; no pickled objects), atomically.

        ``load_twins`` reads it back; ``EnvSettings(customers=path)`` and ``recenv train
        --customers`` train on it.
        """
        path = Path(path)
        fit = self.lifetime
        meta = {
            "format": TWINS_FORMAT,
            "as_of": int(self.as_of),
            "population": self.population,
            "cycle_days": int(self.cycle_days),
            "unit": self.unit,
            "calibration_weeks": int(self.calibration_weeks),
            "lifetime": fit.to_dict(),
        }
        calibration = {}
        if self.engagement_mean is not None and self.last_mean is not None:
            calibration = {"engagement_mean": self.engagement_mean, "last_mean": self.last_mean}
        ids = self.customer_ids
        if ids.dtype.kind not in "iuU":
            ids = ids.astype(str)
        staged = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        try:
            np.savez_compressed(
                staged,
                meta=np.array(json.dumps(meta)),
                customer_ids=ids,
                features=np.asarray(self.features, dtype=np.float64),
                order_value=np.asarray(self.order_value, dtype=np.float64),
                frequency=fit.frequency,
                recency=fit.recency,
                T=fit.T,
                covariates=fit.covariates,
                **calibration,
            )
            os.replace(staged, path)
        finally:
            staged.unlink(missing_ok=True)
        return path

    def draw(
        self,
        rng: np.random.Generator,
        draws: int = 1,
        horizon_weeks: int = DEFAULT_HORIZON_WEEKS,
        rows: np.ndarray | None = None,
    ) -> TwinDraws:
        """``draws`` simulator customers per real customer from their posteriors.

        Args:
            rng: Generator of every draw.
            draws: Twins per customer.
            horizon_weeks: Horizon the rate mapping averages over.
            rows: The customers (indices) to draw twins of, in order; default all.

        Raises:
            ValueError: If ``draws`` or ``horizon_weeks`` is below 1.
        """
        from rec_env.population import CustomerSampler, load_population

        if draws < 1 or horizon_weeks < 1:
            raise ValueError("draws and horizon_weeks must be at least 1")
        posterior = self.lifetime.rate_posterior()
        rows = np.arange(self.n) if rows is None else np.asarray(rows, dtype=np.intp)
        customer = np.tile(rows, draws)
        m = customer.size
        alive = rng.random(m) < posterior.p_alive[customer]
        weekly_rate = rng.gamma(
            posterior.purchase_shape[customer], 1.0 / posterior.purchase_rate[customer]
        )
        death_rate = rng.gamma(
            posterior.dropout_first[customer], 1.0 / posterior.dropout_second[customer]
        )
        observed = self.features[customer]
        days = float(self.cycle_days)
        if self.engagement_mean is not None and self.last_mean is not None:
            mean_engagement = self.engagement_mean[customer]
            mean_last = self.last_mean[customer]
        else:
            steps = np.arange(max(1, round(7 * horizon_weeks / days)))
            engagement = observed[:, FEATURE_INDEX["engagement_score"]]
            mean_engagement = engagement * np.exp(-steps * days / 90.0).mean()
            last = observed[:, FEATURE_INDEX["last_purchase_days"]]
            mean_last = np.minimum(last + 3.5 * horizon_weeks, FEATURE_HIGH["last_purchase_days"])
        hazard = _hazard(weekly_rate, days, self.unit)
        purchase_rate = hazard * 365.0 / days / (0.5 + mean_engagement)
        churn_rate = death_rate * 365.0 / 7.0 / (1.0 + mean_last / 365.0)

        sampler = CustomerSampler(load_population(self.population))
        segments = _segments(sampler, purchase_rate, rng)
        _, hidden, _ = sampler.sample(rng, m, segments)
        hidden[:, _HIDDEN["purchase_rate"]] = np.where(alive, purchase_rate, 0.0)
        hidden[:, _HIDDEN["churn_rate"]] = churn_rate
        hidden[:, _HIDDEN["order_value"]] = self.order_value[customer]
        return TwinDraws(observed, hidden, segments, alive, customer, weekly_rate, death_rate)


class TwinPool:
    """New simulator customers for the envs: twins of customers drawn uniformly, in chunks.

    It has the interface of :class:`~rec_env.dynamics.CustomerPool` (``rng``, ``take``), so an
    env, a vector env or :func:`rec_env.make_vec_env` given ``customers=twins`` starts every
    new customer as the twin of one of the retailer's own customers.
    """

    def __init__(self, twins: Twins, rng: np.random.Generator, chunk: int = 256) -> None:
        self.twins = twins
        self.rng = rng
        self.chunk = int(chunk)
        self._left: TwinDraws | None = None
        self._next = 0

    def take(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``k`` new customers: observed ``(k, F)``, hidden ``(k, P)``, segments ``(k,)``."""
        if k <= 0:
            empty = self.twins.draw(self.rng, rows=np.zeros(0, dtype=np.intp))
            return empty.observed, empty.hidden, empty.segments
        parts = []
        while k > 0:
            if self._left is None or self._next >= self._left.observed.shape[0]:
                rows = self.rng.integers(0, self.twins.n, max(self.chunk, k))
                self._left, self._next = self.twins.draw(self.rng, rows=rows), 0
            end = min(self._next + k, self._left.observed.shape[0])
            sl = slice(self._next, end)
            parts.append((self._left.observed[sl], self._left.hidden[sl], self._left.segments[sl]))
            k -= end - self._next
            self._next = end
        return (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
        )


def stationary_engagement(visit_rate: float, cycle_days: float = 7.0) -> float:
    r"""The engagement visits alone hold a customer at, on average (no messages or purchases).

    A cycle with a visit (probability :math:`q = 1 - e^{-v d / 365}`) adds 5 % of the gap to 1;
    one without decays it by :math:`\delta = e^{-d/90}`. Their balance,
    :math:`q \cdot 0.05 (1 - e) = (1 - q)(1 - \delta) e`, gives the level (0.5 at 48 visits a
    year, the fitted populations' rate).
    """
    q = 1.0 - math.exp(-visit_rate * cycle_days / 365.0)
    decay = math.exp(-cycle_days / 90.0)
    return q * 0.05 / (q * 0.05 + (1.0 - q) * (1.0 - decay))


def _hazard(weekly_rate: np.ndarray, days: float, unit: str = "weeks") -> np.ndarray:
    """The per-cycle organic hazard that gives the model's expected purchases a cycle.

    Weekly occasions: the simulator buys at most once a cycle, so ``1 - exp(-h) = rate · d / 7``
    (capped at 0.95). Purchase days: it buys on each of the ``d`` days with probability
    ``1 - exp(-h / d)``, so that is set to ``rate / 7`` (capped at 0.95).
    """
    if unit == "days":
        return -days * np.log1p(-np.minimum(weekly_rate / 7.0, 0.95))
    expected = np.minimum(weekly_rate * days / 7.0, 0.95)
    return -np.log1p(-expected)


def _segments(sampler: Any, purchase_rate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A segment for each twin, drawn from weight × the segment's prior density of the rate."""
    scores = np.tile(np.log(sampler.segment_probabilities), (purchase_rate.shape[0], 1))
    for k, segment in enumerate(sampler.population.segments):
        spec = segment.hidden["purchase_rate"]
        if hasattr(spec, "logpdf"):
            scores[:, k] += spec.logpdf(np.maximum(purchase_rate, 1e-9))
    scores -= scores.max(axis=1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(axis=1, keepdims=True)
    return (rng.random((p.shape[0], 1)) > p.cumsum(axis=1)).sum(axis=1).clip(0, p.shape[1] - 1)


_ARRAYS = ("customer_ids", "features", "order_value", "frequency", "recency", "T", "covariates")


def load_twins(path: str | Path) -> Twins:
    """Read twins written by :meth:`Twins.save`, checking every array.

    Raises:
        ValueError: If the file is missing, not a twins file, or an array is malformed; the
            message names the file and the array.
    """
    from rec_env.fitting.lifetime import LifetimeFit

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise ValueError(f"{path}: no such twins file") from None
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(
            f"{path}: not a twins file (.npz from recenv profiles twins): {exc}"
        ) from None
    missing = [name for name in ("meta", *_ARRAYS) if name not in arrays]
    if missing:
        raise ValueError(f"{path}: not a twins file; it lacks {', '.join(missing)}")
    try:
        meta = json.loads(str(arrays["meta"]))
        if not isinstance(meta, dict) or meta.get("format") != TWINS_FORMAT:
            raise ValueError(f"format is not {TWINS_FORMAT!r}")
        if meta.get("unit") not in _UNITS:
            raise ValueError(f"unit must be one of {', '.join(_UNITS)}")
        lifetime = dict(meta["lifetime"])
        lifetime["customers"] = {k: arrays[k] for k in ("frequency", "recency", "T", "covariates")}
        fit = LifetimeFit.from_dict(lifetime)
        twins = Twins(
            customer_ids=arrays["customer_ids"],
            features=np.asarray(arrays["features"], dtype=np.float64),
            lifetime=fit,
            order_value=np.asarray(arrays["order_value"], dtype=np.float64),
            as_of=int(meta["as_of"]),
            population=str(meta["population"]),
            cycle_days=int(meta["cycle_days"]),
            unit=str(meta["unit"]),
            engagement_mean=arrays.get("engagement_mean"),
            last_mean=arrays.get("last_mean"),
            calibration_weeks=int(meta.get("calibration_weeks", 0)),
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        what = f"lacks {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
        raise ValueError(f"{path}: bad twins metadata: {what}") from None
    n = twins.n
    checks = {
        "customer_ids": twins.customer_ids.ndim == 1 and n > 0,
        "features": twins.features.shape == (n, len(FEATURE_INDEX)),
        "order_value": twins.order_value.shape == (n,),
        "frequency": fit.n_customers == n,
    }
    for name, ok in checks.items():
        if not ok:
            raise ValueError(f"{path}: {name} has the wrong shape for {n} customers")
    calibration = (twins.engagement_mean, twins.last_mean)
    if (calibration[0] is None) != (calibration[1] is None) or any(
        a is not None and a.shape != (n,) for a in calibration
    ):
        raise ValueError(f"{path}: engagement_mean and last_mean need one value per customer")
    for name in ("features", "order_value", "engagement_mean", "last_mean"):
        values = getattr(twins, name)
        if values is not None and not np.isfinite(values).all():
            raise ValueError(f"{path}: {name} has missing or infinite values")
    return twins


def fit_twins(
    orders: PurchaseLog,
    as_of: str | int,
    *,
    population: str | Path = "default",
    events: Any = None,
    unit: str = "weeks",
) -> Twins:
    """Fit every customer's posterior from their orders (and, if given, their other logs).

    Args:
        orders: The purchase log (only orders up to ``as_of`` are used).
        as_of: The last day of the history.
        population: Population the parameters a purchase log cannot identify come from.
        events: :class:`~rec_env.fitting.builder.CustomerEvents` with contacts, visits,
            consents and tags for the observed features (default: the orders alone).
        unit: ``"weeks"`` (weekly purchase occasions) or ``"days"`` (purchase days).

    Raises:
        ValueError: If no customer bought on or before ``as_of``, or the unit is unknown.
    """
    from rec_env.fitting.builder import (
        CustomerEvents,
        _Table,
        build_features,
        parse_day,
        population_mean,
    )
    from rec_env.fitting.holdout import calibration_holdout
    from rec_env.fitting.lifetime import fit_lifetime_model, fit_spend_model

    last = parse_day(as_of)
    if unit not in ("weeks", "days"):
        raise ValueError(f"unit must be 'weeks' or 'days', got {unit!r}")
    summary = calibration_holdout(orders, last, last + 7, unit=unit)
    fit = fit_lifetime_model(
        summary.frequency,
        summary.recency,
        summary.T,
        np.log1p(np.asarray(summary.first_value, dtype=np.float64))[:, None],
        covariate_names=("log_first_value",),
        unit_days=7.0,
    )
    spend = fit_spend_model(summary.frequency, summary.monetary_repeat)
    order_value = spend.expected_value(summary.frequency, summary.monetary_repeat)
    if events is None:
        events = CustomerEvents(_Table(orders.customer, orders.day, {"value": orders.amount}))
    built = build_features(events, last, customers=summary.customer_ids)
    features = built.observations
    if events.visits is None:
        # Visits lift engagement, and a log without them shows none: start no lower than the
        # level the population's visit rate keeps engagement at.
        visit_rate = population_mean("visit_rate", population)
        column = features[:, FEATURE_INDEX["engagement_score"]]
        np.maximum(column, stationary_engagement(visit_rate), out=column)
    return Twins(
        customer_ids=np.asarray(summary.customer_ids),
        features=features,
        lifetime=fit,
        order_value=order_value,
        as_of=last,
        population=str(population),
        unit=unit,
    )


def simulate_twins(
    twins: Twins,
    weeks: int,
    *,
    seed: int = 0,
    draws: int = 10,
    policy: Any = None,
    calibration_rounds: int = 3,
) -> np.ndarray:
    """Simulate the customer base forward: ``(draws, n, cycles)`` purchases of each twin.

    Each real customer gets ``draws`` twins; they run ``weeks`` of cycles under ``policy``
    (anything with ``predict(obs, action_masks)``; default: no message), and a twin counts no
    purchase once it has churned (or if it was dead at ``as_of``).

    The simulator's purchase and churn hazards move with engagement and days since the last
    purchase, where the fitted model's rates are constant. So the mapping of each twin's drawn
    rates onto ``purchase_rate`` and ``churn_rate`` is refined ``calibration_rounds`` times:
    each round simulates the horizon with the same random numbers and divides the drawn rate by
    the twin's own average of ``0.5 + engagement`` (and of ``1 + last_purchase_days / 365``)
    over its simulated alive cycles, so that on average each twin buys and dies at its drawn
    rates.

    Raises:
        ValueError: If ``weeks`` or ``draws`` is below 1, or ``calibration_rounds`` below 0.
    """
    if weeks < 1:
        raise ValueError("weeks must be at least 1")
    if calibration_rounds < 0:
        raise ValueError("calibration_rounds must be at least 0")
    drawn, model, hidden, cycles, _, _ = _calibration(
        twins, weeks, seed, draws, calibration_rounds, policy
    )
    bought, _, _ = _run(model, drawn, hidden, cycles, seed, policy)
    return bought.reshape(draws, twins.n, cycles)


def _weighted_mean(
    group: np.ndarray, values: np.ndarray, weights: np.ndarray, n: int
) -> np.ndarray:
    """Per-group weighted mean of ``values``; the plain mean where a group's weights are 0."""
    total = np.bincount(group, weights, n)
    plain = np.bincount(group, values, n) / np.maximum(np.bincount(group, minlength=n), 1)
    weighted = np.bincount(group, values * weights, n) / np.where(total > 0, total, 1.0)
    return np.where(total > 0, weighted, plain)


def _calibration(
    twins: Twins, weeks: int, seed: int, draws: int, rounds: int, policy: Any
) -> tuple[TwinDraws, Any, np.ndarray, int, np.ndarray | None, np.ndarray | None]:
    """Draw ``draws`` twins per customer and refine their rate mapping ``rounds`` times.

    Returns:
        The draws, the model, their refined hidden parameters, the cycles of ``weeks``, and the
        last round's averages of engagement and days since purchase (None without a round).
    """
    drawn = twins.draw(np.random.default_rng(seed), draws, horizon_weeks=weeks)
    model = _twin_model(twins)
    days = float(twins.cycle_days)
    cycles = max(1, round(7 * weeks / days))
    hidden = drawn.hidden.copy()
    engagement = last = None
    for _ in range(rounds):
        engagement, last = _refine(model, drawn, hidden, cycles, seed, policy, twins.unit, days)
    return drawn, model, hidden, cycles, engagement, last


def _twin_model(twins: Twins) -> Any:
    """The bare customer model the twins are simulated in (no twins file attached)."""
    from rec_env.settings import EnvSettings

    return EnvSettings(
        profile=twins.population,
        cycle_days=float(twins.cycle_days),
        purchase_days=twins.unit == "days",
    ).build_model()


def _refine(
    model: Any,
    drawn: TwinDraws,
    hidden: np.ndarray,
    cycles: int,
    seed: int,
    policy: Any,
    unit: str,
    days: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One calibration round: simulate, then map the drawn rates through the path's averages.

    Writes ``purchase_rate`` and ``churn_rate`` of ``hidden`` in place; returns the averages of
    engagement and days since purchase the mapping used.
    """
    _, engagement, last = _run(model, drawn, hidden, cycles, seed, policy)
    hazard = _hazard(drawn.weekly_rate, days, unit) * 365.0 / days
    hidden[:, _HIDDEN["purchase_rate"]] = np.where(drawn.alive, hazard / (0.5 + engagement), 0.0)
    hidden[:, _HIDDEN["churn_rate"]] = drawn.death_rate * 365.0 / 7.0 / (1.0 + last / 365.0)
    return engagement, last


def _run(
    model: Any, drawn: TwinDraws, hidden: np.ndarray, cycles: int, seed: int, policy: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One simulation: purchases ``(m, cycles)``, each twin's mean engagement and days.

    The means are of ``engagement_score`` and ``last_purchase_days`` over its alive cycles.
    """
    m = drawn.observed.shape[0]
    rng = np.random.default_rng([seed, 1])  # the same random numbers in every round
    batch = model.new_batch(m)
    model.set_customers(batch, np.arange(m), drawn.observed, hidden, drawn.segments)
    alive = drawn.alive.copy()
    bought = np.zeros((m, cycles))
    engagement_sum, last_sum, n_alive = np.zeros(m), np.zeros(m), np.zeros(m)
    for t in range(cycles):
        engagement_sum += alive * batch.feature("engagement_score")
        last_sum += alive * batch.feature("last_purchase_days")
        n_alive += alive
        if policy is None:
            actions = np.full(m, model.actions.no_action)
        else:
            obs = model.observe(batch)
            actions = np.asarray(policy.predict(obs, model.action_masks(batch)), dtype=np.intp)
            actions = np.where(alive, actions, model.actions.no_action)
        out = model.step(batch, actions, rng)
        bought[:, t] = out.orders * alive
        alive &= ~out.terminated
    seen = np.maximum(n_alive, 1.0)
    start = drawn.observed
    engagement = np.where(
        n_alive > 0, engagement_sum / seen, start[:, FEATURE_INDEX["engagement_score"]]
    )
    last = np.where(n_alive > 0, last_sum / seen, start[:, FEATURE_INDEX["last_purchase_days"]])
    return bought, engagement, last

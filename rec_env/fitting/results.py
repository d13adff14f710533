"""Fitted segments and populations, and the population file they are written to.

:class:`PopulationFit` holds what :func:`rec_env.fitting.fit_population` found; its
:meth:`~PopulationFit.to_yaml` writes a population file in the style of the shipped ones
(distributions on one line) with a header comment saying how it was fitted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from rec_env.fitting.defaults import DEFAULTS_RESOURCE, FitDefaults
from rec_env.fitting.rfm import PurchaseHistory
from rec_env.parameters import HIDDEN_PARAMETERS
from rec_env.population import Population

__all__ = ["PopulationFit", "SegmentFit", "name_segments", "population_from_fits"]

_EARLY_CHURN = 4.0
_REGULAR_RATE = 2.0


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


def name_segments(fits: list[SegmentFit], history: PurchaseHistory) -> list[SegmentFit]:
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


def population_from_fits(
    name: str,
    fits: list[SegmentFit],
    sigma_within: float,
    defaults: FitDefaults,
    source: str,
    cycle_days: float,
) -> Population:
    """Build the population: fitted parameters per segment, defaults for everything else.

    Args:
        name: Population name.
        fits: The segments.
        sigma_within: Within-customer sigma of log order values (``order_value_sigma``).
        defaults: Values of the parameters a log cannot identify.
        source: The log's file name, for the description.
        cycle_days: Cycle length in days, for the segment descriptions.

    Raises:
        pydantic.ValidationError: If a fitted value is out of its valid range.
    """
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

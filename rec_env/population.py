"""Customer populations as data: segments, observed-feature distributions, hidden parameters.

A population file (``profiles/*.yaml``) lists segments. Each segment has a weight, distributions
for the observed features the simulator cannot derive, and distributions for every hidden
parameter (:data:`HIDDEN_PARAMETERS`). The remaining observed features are derived from the hidden
parameters, so that what the agent sees is informative but noisy:

* ``frequency`` ~ Poisson(purchase_rate × (0.5 + engagement_score)), the purchases of the past year;
* ``monetary_value`` = order_value × LogNormal(0, 0.25), an estimate from past orders;
* ``email_opens`` / ``sms_response`` / ``push_response`` ~ Beta around the true responsiveness
  with ``history_strength`` pseudo-messages of history;
* ``recency`` = last_purchase_days × U(0.2, 1) (a visit or an open came after the purchase);
* ``contacts_last_30d`` and ``discounts_last_90d`` start at 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from rec_env.config import load_model, resolve_data_file
from rec_env.distributions import Conditional, Distribution, ParameterSpec
from rec_env.features import FEATURE_HIGH, FEATURE_INDEX, FEATURE_NAMES
from rec_env.parameters import HIDDEN_PARAMETERS, SAMPLED_FEATURES

__all__ = [
    "HIDDEN_PARAMETERS",
    "SAMPLED_FEATURES",
    "CustomerSampler",
    "Population",
    "Segment",
    "list_populations",
    "load_population",
]

_FLAG_FEATURES = ("discount_sensitive", "free_shipping_preferred")
_PROBABILITIES = (
    "email_responsiveness",
    "sms_responsiveness",
    "push_responsiveness",
    "click_conversion",
    "unsubscribe_rate",
    "irritation",
)
_HIDDEN_LOW = np.zeros(len(HIDDEN_PARAMETERS))
_PURCHASE_RATE = list(HIDDEN_PARAMETERS).index("purchase_rate")
_ORDER_VALUE = list(HIDDEN_PARAMETERS).index("order_value")
_LIKELIHOOD_SAMPLE = 2048
"""Hidden-parameter draws per segment that integrate the derived features' likelihood."""
_HIDDEN_HIGH = np.array([1.0 if p in _PROBABILITIES else np.inf for p in HIDDEN_PARAMETERS])
"""Hidden parameters are clipped after sampling: all are non-negative, probabilities <= 1."""


class Segment(BaseModel):
    """One customer segment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    weight: float = Field(gt=0, description="Relative share of the population.")
    observed: dict[str, Distribution]
    hidden: dict[str, ParameterSpec]

    @model_validator(mode="after")
    def _check_keys(self) -> Segment:
        _check_exact_keys("observed", self.observed, SAMPLED_FEATURES)
        _check_exact_keys("hidden", self.hidden, tuple(HIDDEN_PARAMETERS))
        for flag in _FLAG_FEATURES:
            if isinstance(self.observed[flag], Conditional):  # pragma: no cover - schema forbids
                raise ValueError(f"observed.{flag} cannot be conditional")
        return self


def _check_exact_keys(section: str, given: dict[str, Any], expected: tuple[str, ...]) -> None:
    missing = [k for k in expected if k not in given]
    unknown = [k for k in given if k not in expected]
    problems = []
    if missing:
        problems.append(f"{section} is missing {', '.join(missing)}")
    if unknown:
        problems.append(f"{section} has unknown keys {', '.join(unknown)}")
    if problems:
        raise ValueError("; ".join(problems) + f" (expected: {', '.join(expected)})")


class Population(BaseModel):
    """A customer population: weighted segments and a few population-wide constants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    contact_tolerance: float = Field(
        2.0, ge=0, description="Messages per 30 days a customer tolerates before churn rises."
    )
    order_value_sigma: float = Field(
        0.5, gt=0, le=2, description="Sigma of log order value around the customer's mean."
    )
    history_strength: float = Field(
        20.0, gt=0, description="Pseudo-messages behind the initial observed response rates."
    )
    segments: list[Segment] = Field(min_length=1)
    fitted_from: dict[str, str] | None = Field(
        None,
        description="Where fitted values came from: hidden parameter or constant -> source "
        "(data or a default, and why); absent for hand-written populations.",
    )

    @model_validator(mode="after")
    def _unique_segments(self) -> Population:
        names = [s.name for s in self.segments]
        if len(set(names)) != len(names):
            raise ValueError("segment names must be unique")
        known = (*HIDDEN_PARAMETERS, "contact_tolerance", "order_value_sigma", "history_strength")
        unknown = [key for key in self.fitted_from or {} if key not in known]
        if unknown:
            raise ValueError(
                f"fitted_from has unknown keys {', '.join(unknown)} (expected hidden parameters "
                "or population constants)"
            )
        return self

    @model_serializer(mode="wrap")
    def _omit_absent_provenance(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # hand-written and purchase-log populations dump exactly as before the field existed
        data = handler(self)
        if self.fitted_from is None:
            data.pop("fitted_from", None)
        return data


def list_populations() -> list[str]:
    """Names of the populations shipped in ``rec_env.profiles``."""
    from importlib import resources

    root = resources.files("rec_env.profiles")
    names = (p.name.rsplit(".", 1)[0] for p in root.iterdir() if p.name.endswith((".yaml", ".yml")))
    return sorted(names)


def load_population(population: str | Path | Population = "default") -> Population:
    """Load a population by shipped name (``"default"``) or from a YAML path.

    Raises:
        ConfigError: If the file is missing or invalid; the message names file, field and problem.
    """
    if isinstance(population, Population):
        return population
    path = resolve_data_file(population, "rec_env.profiles", (".yaml", ".yml"))
    return load_model(path, Population)


@dataclass
class CustomerSampler:
    """Draws new customers (observed features and hidden parameters) from a population."""

    population: Population

    def __post_init__(self) -> None:
        weights = np.array([s.weight for s in self.population.segments])
        self.segment_probabilities = weights / weights.sum()
        self.segment_names = tuple(s.name for s in self.population.segments)

    @property
    def n_segments(self) -> int:
        """Number of segments."""
        return len(self.segment_names)

    def sample(
        self,
        rng: np.random.Generator,
        n: int,
        segments: np.ndarray | None = None,
        fixed: dict[str, float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw ``n`` customers.

        Args:
            rng: Source of all randomness.
            n: Number of customers.
            segments: Optional segment index per customer; drawn from the weights if omitted.
            fixed: Observed features to impose on every customer (e.g. a given customer's
                profile). Hidden parameters are drawn conditionally on the imposed flags.

        Returns:
            ``(observed, hidden, segments)``: arrays of shape ``(n, n_features)`` (float64),
            ``(n, n_hidden)`` and ``(n,)``.
        """
        if segments is None:
            segments = rng.choice(self.n_segments, size=n, p=self.segment_probabilities)
        observed = np.zeros((n, len(FEATURE_NAMES)))
        hidden = np.zeros((n, len(HIDDEN_PARAMETERS)))
        for k, segment in enumerate(self.population.segments):
            rows = np.flatnonzero(segments == k)
            if rows.size:
                observed[rows], hidden[rows] = self._sample_segment(
                    rng, segment, rows.size, fixed or {}
                )
        return observed, hidden, segments

    def _sample_segment(
        self, rng: np.random.Generator, segment: Segment, n: int, fixed: dict[str, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        obs = np.zeros((n, len(FEATURE_NAMES)))
        for name in SAMPLED_FEATURES:
            obs[:, FEATURE_INDEX[name]] = segment.observed[name].sample(rng, n)
        for name, value in fixed.items():
            obs[:, FEATURE_INDEX[name]] = value
        hidden = np.zeros((n, len(HIDDEN_PARAMETERS)))
        for j, name in enumerate(HIDDEN_PARAMETERS):
            spec = segment.hidden[name]
            if isinstance(spec, Conditional):
                hidden[:, j] = spec.sample_given(rng, obs[:, FEATURE_INDEX[spec.given]])
            else:
                hidden[:, j] = spec.sample(rng, n)
        np.clip(hidden, _HIDDEN_LOW, _HIDDEN_HIGH, out=hidden)
        self._derive_features(rng, obs, hidden)
        for name, value in fixed.items():
            obs[:, FEATURE_INDEX[name]] = value
        return obs, hidden

    def _derive_features(
        self, rng: np.random.Generator, obs: np.ndarray, hidden: np.ndarray
    ) -> None:
        n = obs.shape[0]
        hp = {name: hidden[:, j] for j, name in enumerate(HIDDEN_PARAMETERS)}
        col = FEATURE_INDEX
        for flag in ("discount_sensitive", "free_shipping_preferred"):
            obs[:, col[flag]] = (obs[:, col[flag]] > 0.5).astype(np.float64)
        for consent in ("consent_email", "consent_sms", "consent_push"):
            obs[:, col[consent]] = (obs[:, col[consent]] > 0.5).astype(np.float64)
        obs[:, col["engagement_score"]] = np.clip(obs[:, col["engagement_score"]], 0.0, 1.0)
        lpd = np.clip(obs[:, col["last_purchase_days"]], 0.0, FEATURE_HIGH["last_purchase_days"])
        obs[:, col["last_purchase_days"]] = lpd
        obs[:, col["days_since_contact"]] = np.clip(
            obs[:, col["days_since_contact"]], 0.0, FEATURE_HIGH["days_since_contact"]
        )
        annual = hp["purchase_rate"] * (0.5 + obs[:, col["engagement_score"]])
        obs[:, col["frequency"]] = np.minimum(rng.poisson(annual), FEATURE_HIGH["frequency"])
        noise = rng.lognormal(0.0, 0.25, n)
        obs[:, col["monetary_value"]] = np.clip(
            hp["order_value"] * noise, 1.0, FEATURE_HIGH["monetary_value"]
        )
        strength = self.population.history_strength
        for feature, param in (
            ("email_opens", "email_responsiveness"),
            ("sms_response", "sms_responsiveness"),
            ("push_response", "push_responsiveness"),
        ):
            mean = np.clip(hp[param], 1e-3, 1 - 1e-3)
            obs[:, col[feature]] = rng.beta(mean * strength, (1 - mean) * strength)
        obs[:, col["recency"]] = lpd * rng.uniform(0.2, 1.0, n)

    def most_likely_segment(self, features: dict[str, float]) -> int:
        """The segment under which the given observed features are most likely (MAP).

        The sampled features (:data:`SAMPLED_FEATURES`) count with their segment
        distributions; ``frequency`` and ``monetary_value`` count with the distributions
        :meth:`sample` derives them from (a Poisson count at the segment's purchase rate, the
        segment's order value with log-normal noise), integrated over the segment's hidden
        parameters by a fixed sample. Segments that differ only in purchase rate and order
        value (a fitted purchase log's) are told apart by them.

        Args:
            features: Observed feature values by name (any subset).
        """
        scores = np.log(self.segment_probabilities)
        for k, segment in enumerate(self.population.segments):
            for name in SAMPLED_FEATURES:
                if name in features:
                    x = np.array([float(features[name])])
                    scores[k] += float(segment.observed[name].logpdf(x)[0])
            scores[k] += self._derived_log_likelihood(k, features)
        return int(np.argmax(scores))

    def _derived_log_likelihood(self, k: int, features: dict[str, float]) -> float:
        """The log-likelihood of frequency and monetary_value under segment ``k`` (as derived)."""
        if "frequency" not in features and "monetary_value" not in features:
            return 0.0
        hidden = self._hidden_sample(k)
        log_terms = np.zeros(hidden.shape[0])
        if "frequency" in features:
            engagement = float(features.get("engagement_score", 0.5))
            rate = np.maximum(hidden[:, _PURCHASE_RATE] * (0.5 + engagement), 1e-12)
            count = float(features["frequency"])
            log_terms += count * np.log(rate) - rate - math.lgamma(count + 1.0)
        if "monetary_value" in features:
            value = max(float(features["monetary_value"]), 1.0)
            z = (math.log(value) - np.log(np.maximum(hidden[:, _ORDER_VALUE], 1e-12))) / 0.25
            log_terms += -0.5 * z * z - math.log(0.25 * value * math.sqrt(2 * math.pi))
        top = log_terms.max()
        return float(top + np.log(np.mean(np.exp(log_terms - top))))

    def _hidden_sample(self, k: int) -> np.ndarray:
        """A fixed sample of segment ``k``'s hidden parameters (seeded, drawn once)."""
        cache = self.__dict__.setdefault("_hidden_samples", {})
        if k not in cache:
            rng = np.random.default_rng([0, k])
            segment = self.population.segments[k]
            cache[k] = self._sample_segment(rng, segment, _LIKELIHOOD_SAMPLE, {})[1]
        return cache[k]

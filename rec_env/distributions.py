"""Probability distributions that population files use, as validated pydantic models.

Every distribution can ``sample(rng, n)`` from a seeded ``np.random.Generator`` and evaluate its
``logpdf(x)`` (used to infer the most likely segment of a given customer). Parameters are given
in the units people think in: a mean and a concentration for beta, a mean and a shape for gamma,
a median and a sigma for log-normal.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

__all__ = [
    "Bernoulli",
    "Beta",
    "Conditional",
    "Constant",
    "Distribution",
    "Gamma",
    "LogNormal",
    "Normal",
    "ParameterSpec",
    "Uniform",
]

_LOG_TINY = -1e9


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:  # pragma: no cover
        """Draw ``n`` values."""
        raise NotImplementedError

    def logpdf(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover
        """Log density (or log mass for discrete distributions) at ``x``."""
        raise NotImplementedError


class Constant(_Dist):
    """A fixed value."""

    dist: Literal["constant"]
    value: float

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` values."""
        return np.full(n, self.value)

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        """Log density: 0 at the value, very negative elsewhere."""
        return np.where(np.isclose(x, self.value), 0.0, _LOG_TINY)


class Uniform(_Dist):
    """Uniform on ``[low, high]``."""

    dist: Literal["uniform"]
    low: float
    high: float

    @model_validator(mode="after")
    def _check(self) -> Uniform:
        if self.high <= self.low:
            raise ValueError("high must be greater than low")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` values."""
        return rng.uniform(self.low, self.high, n)

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        """Log density."""
        inside = (x >= self.low) & (x <= self.high)
        return np.where(inside, -math.log(self.high - self.low), _LOG_TINY)


class Normal(_Dist):
    """Normal with mean and standard deviation, clipped to ``[low, high]`` if given."""

    dist: Literal["normal"]
    mean: float
    std: float = Field(gt=0)
    low: float = -math.inf
    high: float = math.inf

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` values."""
        return np.clip(rng.normal(self.mean, self.std, n), self.low, self.high)

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        """Log density of the unclipped normal."""
        z = (x - self.mean) / self.std
        return -0.5 * z * z - math.log(self.std * math.sqrt(2 * math.pi))


class LogNormal(_Dist):
    """Log-normal given by its median and the standard deviation of its logarithm."""

    dist: Literal["lognormal"]
    median: float = Field(gt=0)
    sigma: float = Field(gt=0)
    high: float = math.inf

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` values (clipped at ``high``)."""
        return np.minimum(rng.lognormal(math.log(self.median), self.sigma, n), self.high)

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        """Log density."""
        safe = np.maximum(x, 1e-12)
        z = (np.log(safe) - math.log(self.median)) / self.sigma
        return -0.5 * z * z - np.log(safe * self.sigma * math.sqrt(2 * math.pi))


class Gamma(_Dist):
    """Gamma given by its mean and shape (scale = mean / shape)."""

    dist: Literal["gamma"]
    mean: float = Field(gt=0)
    shape: float = Field(gt=0)
    high: float = math.inf

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` values (clipped at ``high``)."""
        return np.minimum(rng.gamma(self.shape, self.mean / self.shape, n), self.high)

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        """Log density."""
        k, theta = self.shape, self.mean / self.shape
        safe = np.maximum(x, 1e-12)
        return (k - 1) * np.log(safe) - safe / theta - math.lgamma(k) - k * math.log(theta)


class Beta(_Dist):
    """Beta given by its mean and concentration (a = mean·c, b = (1 − mean)·c)."""

    dist: Literal["beta"]
    mean: float = Field(gt=0, lt=1)
    concentration: float = Field(gt=0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` values."""
        a = self.mean * self.concentration
        return rng.beta(a, self.concentration - a, n)

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        """Log density."""
        a = self.mean * self.concentration
        b = self.concentration - a
        safe = np.clip(x, 1e-9, 1 - 1e-9)
        norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
        return (a - 1) * np.log(safe) + (b - 1) * np.log1p(-safe) + norm


class Bernoulli(_Dist):
    """0/1 with ``P(1) = p``."""

    dist: Literal["bernoulli"]
    p: float = Field(ge=0, le=1)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` values."""
        return (rng.random(n) < self.p).astype(np.float64)

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        """Log mass."""
        p = min(max(self.p, 1e-9), 1 - 1e-9)
        return np.where(x > 0.5, math.log(p), math.log(1 - p))


Distribution = Annotated[
    Constant | Uniform | Normal | LogNormal | Gamma | Beta | Bernoulli,
    Field(discriminator="dist"),
]


class Conditional(BaseModel):
    """A distribution that depends on a binary observed feature (e.g. ``discount_sensitive``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    given: Literal["discount_sensitive", "free_shipping_preferred"]
    if_1: Distribution
    if_0: Distribution

    def sample_given(self, rng: np.random.Generator, flag: np.ndarray) -> np.ndarray:
        """Draw one value per entry of ``flag`` from ``if_1`` or ``if_0``.

        Both branches are drawn for every entry so that the number of random draws does not
        depend on the flags (this keeps streams aligned across customers).
        """
        n = flag.shape[0]
        return np.where(flag > 0.5, self.if_1.sample(rng, n), self.if_0.sample(rng, n))


def _parameter_kind(value: object) -> str:
    if isinstance(value, dict):
        return "conditional" if "given" in value else "distribution"
    return "conditional" if isinstance(value, Conditional) else "distribution"


ParameterSpec = Annotated[
    Annotated[Distribution, Tag("distribution")] | Annotated[Conditional, Tag("conditional")],
    Discriminator(_parameter_kind),
]
"""A hidden parameter: a distribution, or one per value of a flag (a mapping with ``given``)."""

"""A single customer's observed features, as given by a user (JSON file, API request, reset)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rec_env.config import load_model
from rec_env.errors import ConfigError
from rec_env.features import FEATURE_NAMES, FEATURES

__all__ = ["CustomerProfile", "load_customer", "validate_features"]

_BY_NAME = {f.name: f for f in FEATURES}


def validate_features(features: dict[str, Any]) -> dict[str, float]:
    """Check feature names, types and ranges; return them as floats.

    Raises:
        ValueError: Naming the first offending feature and the problem.
    """
    unknown = [k for k in features if k not in _BY_NAME]
    if unknown:
        raise ValueError(
            f"unknown feature {unknown[0]!r}; valid features: {', '.join(FEATURE_NAMES)}"
        )
    clean: dict[str, float] = {}
    for name, raw in features.items():
        spec = _BY_NAME[name]
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ValueError(f"{name}: expected a number, got {raw!r}")
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(f"{name}: must be finite, got {raw!r}")
        if not spec.low <= value <= spec.high:
            raise ValueError(
                f"{name}: {value:g} is outside [{spec.low:g}, {spec.high:g}] ({spec.unit})"
            )
        if spec.binary and value not in (0.0, 1.0):
            raise ValueError(f"{name}: must be 0 or 1, got {value:g}")
        clean[name] = value
    return clean


class CustomerProfile(BaseModel):
    """An example customer, as stored in ``profiles/users/*.json``.

    Attributes:
        customer_id: Identifier (free text).
        description: What kind of customer this is.
        segment: Optional segment name; if omitted the most likely segment is inferred.
        features: Observed features by name. Features left out are drawn from the segment.
    """

    model_config = ConfigDict(extra="forbid")

    customer_id: str = "anonymous"
    description: str = ""
    segment: str | None = None
    features: dict[str, Any] = Field(min_length=1)

    @field_validator("features")
    @classmethod
    def _check_features(cls, value: dict[str, Any]) -> dict[str, float]:
        return validate_features(value)


def load_customer(path: str | Path) -> CustomerProfile:
    """Load and validate a customer JSON file.

    Raises:
        ConfigError: Naming the file, the field and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    return load_model(path, CustomerProfile)

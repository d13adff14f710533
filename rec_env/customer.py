"""A single customer's observed features, as given by a user (JSON file, API request, reset)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rec_env.config import load_model
from rec_env.errors import ConfigError
from rec_env.features import FEATURE_NAMES, FEATURES

__all__ = [
    "CustomerProfile",
    "load_customer",
    "load_customers_csv",
    "observation_of",
    "validate_features",
]

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


def observation_of(profile: CustomerProfile, source: str | Path = "customer") -> np.ndarray:
    """The ``(16,)`` float32 observation of a customer that gives every feature.

    Simulation fills in features a profile leaves out; a trained policy cannot, so explaining
    or serving a decision needs all of them.

    Raises:
        ConfigError: Naming the source and the first missing feature.
    """
    missing = [name for name in FEATURE_NAMES if name not in profile.features]
    if missing:
        raise ConfigError(
            f"{source}: features.{missing[0]}: missing (all {len(FEATURE_NAMES)} features are "
            f"needed; also missing: {', '.join(missing[1:]) or 'none'})"
        )
    return np.array([profile.features[name] for name in FEATURE_NAMES], dtype=np.float32)


def load_customers_csv(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read customers from a CSV file with one column per feature (and optional ``customer_id``).

    Returns:
        The customer ids (row numbers if there is no ``customer_id`` column) and the
        ``(n, 16)`` float32 observations.

    Raises:
        ConfigError: Naming the file, the row or column, and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path}: cannot read CSV ({exc})") from None
    missing = [name for name in FEATURE_NAMES if name not in columns]
    if missing:
        raise ConfigError(f"{path}: column {missing[0]!r} is missing")
    extra = [c for c in columns if c not in FEATURE_NAMES and c != "customer_id"]
    if extra:
        raise ConfigError(f"{path}: unknown column {extra[0]!r}")
    if not rows:
        raise ConfigError(f"{path}: no customers (the file has only a header)")
    ids: list[str] = []
    obs = np.empty((len(rows), len(FEATURE_NAMES)), dtype=np.float32)
    for i, row in enumerate(rows):
        line = i + 2  # the header is line 1
        values: dict[str, Any] = {}
        for name in FEATURE_NAMES:
            raw = (row.get(name) or "").strip()
            try:
                values[name] = float(raw)
            except ValueError:
                raise ConfigError(f"{path}: line {line}: {name}: not a number ({raw!r})") from None
        try:
            clean = validate_features(values)
        except ValueError as exc:
            raise ConfigError(f"{path}: line {line}: {exc}") from None
        obs[i] = [clean[name] for name in FEATURE_NAMES]
        ids.append(row.get("customer_id") or str(i + 1))
    return ids, obs
